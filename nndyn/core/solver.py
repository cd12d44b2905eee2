"""The one set-up of an ODE solve (Diffrax) of the flows: `ODEOptions`, the pure, jitted,
vmappable `solve` of one state, and `solve_many`, many of them (stacked) through the persistent cache.
`integrate`, a protocol's phases, the verdict's restarts, the tail refinement, the symmetric
reduction, the linear-noise covariance (`nndyn.core.fluctuations`) and the SDE of SGD
(`nndyn.core.sde`, a `Flows` with noise) all solve through it."""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nndyn.core import cache, schema
from nndyn.core.errors import Status
from nndyn.core.kernels import load
from nndyn.core.schema import parameter
from nndyn.core.setting import Setting

ORDER_PARAMETERS = ("Q", "R", "v")
ADAPTIVE_MAX_STEPS = 1_000_000  # the adaptive solver's default step budget
EULER_MAX_STEPS = 1 << 24  # one compiled Euler program serves every span and dt below this


@dataclass(frozen=True)
class ODEOptions:
    """How to integrate. Each field is a parameter of the schema (`nndyn.core.schema`).

    **Arguments:**

    - `method`: "adaptive" (Tsit5 with a PID step-size controller), "implicit" (Kvaerno5, for
      stiff flows, with the same controller and a Chord root finder at 100·rtol and atol/100:
      Diffrax's default cannot meet the controller's tolerances near a fixed point, where the
      flows are round-off) or "euler" (a fixed step dt, passed to `solve` separately; with
      dt = 1/N it mirrors discrete SGD step by step).
    - `rtol`, `atol`: the adaptive controller's tolerances.
    - `max_steps`: the most solver steps; by default ADAPTIVE_MAX_STEPS for the adaptive
      method, and for Euler in `integrate` EULER_MAX_STEPS or the next power of two above the
      span's steps (so that runs share compiled programs).
    - `divergence_threshold`: |order parameter| above which the solve stops as diverged.
    - `refine_tail`: in `integrate` (adaptive or implicit), when ε_g falls below TAIL_TRIGGER and the
      run ends near a stable fixed point, re-integrate from where ε_g < TAIL_START in the
      deviation from that point, so that the error control is relative to the deviation and ε_g
      keeps its relative accuracy in the exponential tail (see `integrate`).
    """

    method: str = parameter("adaptive", doc="adaptive (Tsit5, PID controller), implicit (Kvaerno5, PID controller; "
                                            "stiff flows) or euler (fixed step dt)",
                            choices=("adaptive", "implicit", "euler"))
    rtol: float = parameter(1e-8, doc="relative tolerance of the adaptive controller", above=0, below=1)
    atol: float = parameter(1e-10, doc="absolute tolerance of the adaptive controller", above=0, below=1)
    max_steps: int | None = parameter(None, doc="the most solver steps; default: 1e6 (adaptive), the span's (Euler)",
                                      minimum=1)
    divergence_threshold: float = parameter(1e6, doc="|order parameter| above which a solve counts as diverged",
                                            above=0)
    refine_tail: bool = parameter(True, doc="re-integrate a tail converging to a stable fixed point about it "
                                            "(integrate, adaptive or implicit)")

    def __post_init__(self) -> None:
        schema.validate(self)

    #: The fields a solve takes as traced data (`tolerances`): programs apart only in them are one.
    TRACED = ("rtol", "atol", "divergence_threshold")

    def tolerances(self) -> dict:
        """The `TRACED` fields, as float64 scalars for `solve`'s `tolerances`."""
        return {name: jnp.asarray(getattr(self, name), jnp.float64) for name in self.TRACED}

    def program(self) -> "ODEOptions":
        """What of these options shapes a compiled solve: the method and the step budget (the
        other fields at their defaults; `solve` takes the tolerances as data, and `refine_tail` is
        `integrate`'s)."""
        return ODEOptions(method=self.method, max_steps=self.max_steps)


@dataclass(frozen=True)
class Flows:
    """The flows a `solve` integrates, of the full order parameters y = {"Q", "R", "v"} (per
    level with structured inputs): `field(kernels)` is f(t, y, args), `error(kernels)` is
    ε_g(y, args) and `noise(kernels)` None (an SDE's flows give their noise).
    `nndyn.core.symmetric.REDUCED` is the symmetric reduction's."""

    def field(self, kernels):
        return kernels.rhs

    def error(self, kernels):
        return kernels.eg

    def noise(self, kernels) -> tuple[Callable, Callable] | None:
        """None for an ODE; for an SDE dy = f dt + S dW (`nndyn.core.sde`), (size, S): the
        dimension of W, size(y), and S(t, y, args), a linear operator (lineax) from dW to dy."""
        return None

    @property
    def sources(self) -> tuple[str, ...]:
        """The files whose code `field`, `error` and `noise` run beyond the kernels' (for cache keys)."""
        return ()


#: The full flows (`Flows`).
FULL = Flows()


class Solution(NamedTuple):
    """What `solve` returns.

    **Fields:** `ys`, the states at the save times (like y0, with a leading axis n); `eg` (n,);
    `status`, a `Status` value; `failed_at`, the time of the last accepted step (the end
    time when it succeeded); `bad` (3,), which of Q, R, v went non-finite or too large; `steps`,
    the solver steps taken, accepted and rejected.
    """

    ys: dict
    eg: jax.Array
    status: jax.Array
    failed_at: jax.Array
    bad: jax.Array
    steps: jax.Array


def _bad(y, threshold: float) -> jax.Array:
    """Per order parameter (Q, R, v of a full state; every field of a reduced one): non-finite or
    above the threshold in magnitude."""
    fields = [y[name] for name in ORDER_PARAMETERS] if isinstance(y, dict) else list(y)
    return jnp.stack([jnp.logical_not(jnp.all(jnp.isfinite(x))) | (jnp.max(jnp.abs(x)) > threshold) for x in fields])


def _at_floor(w) -> jax.Array:
    """Whether a deviation w = (y − center)/scale has fallen below half its scale (see
    `_refine_tail`: the scale is then TAIL_DEVIATION, below which the flows are round-off)."""
    return jnp.max(jnp.stack([jnp.max(jnp.abs(leaf)) for leaf in jax.tree_util.tree_leaves(w)])) < 0.5


def _affine(center, scale):
    """The map from the solved variable to the state: w ↦ center + scale · w leaf by leaf, or
    the identity when there is no `center`."""
    if center is None:
        return lambda y: y
    return lambda w: jax.tree_util.tree_map(lambda c, x: c + scale * x, center, w)


@functools.cache
def compiled(flows: Flows, kernels) -> tuple[Callable, Callable]:
    """`flows`' field and error of `kernels` (`load` returns one object per model), each jitted
    once per process. A solver evaluates the field at every stage of a step, and every solve
    program (another shape, method or batch, the verdict's restarts, a fixed point's Newton
    steps) calls it again: a jitted function is traced once per signature and its later calls
    reuse that trace (the ReLU flows' trace takes seconds)."""
    return jax.jit(flows.field(kernels)), jax.jit(flows.error(kernels))


@functools.partial(jax.jit, static_argnames=("activation", "options", "teacher", "flows"))
def solve(activation: str, y0: dict, args: dict, ts: jax.Array, options: ODEOptions, dt=None,
          teacher: str | None = None, center: dict | None = None, scale=1.0, flows: Flows = FULL,
          tolerances: dict | None = None):
    """The flows of `activation` (the student's; the teacher's `teacher`, default the same) from
    y0 at t = ts[0], saved at `ts`; pure, jitted, vmappable.

    **Arguments:** `y0` = {"Q": (K, K), "R": (K, M), "v": (K,)} (or the state of another
    `flows`, e.g. a `SymmetricState`); `args` as for `Kernels.rhs` (with "key", a PRNG key, for
    the Brownian path of flows with noise: an SDE, method euler)
    (`Setting.ode_args`; arrays under vmap over η, σ, …), with "t_start" and "tau" for a
    protocol's phase annealed as η(t) = η/(1 + (t − t_start)/τ) (τ = inf: none); `ts` (n,)
    increasing; `dt` the Euler step (traced: changing it does not recompile; ignored by the
    adaptive method); `center`, like y0, or None: integrate the deviation (y − center)/`scale`
    instead of y, so that the error control is relative to the deviation (the tail near a
    stable fixed point, see `integrate`); the solve then stops, with status ok, where the
    deviation falls below `scale`/2; `tolerances`, None or `ODEOptions.tolerances()` (traced:
    they then replace `options`' rtol, atol and divergence threshold, so that solves apart only
    in them share one program).

    **Returns:** a `Solution`.
    """
    import diffrax  # imported when tracing: a process that loads an exported solve never needs it (0.4 s)
    import optimistix

    kernels = load(activation, teacher)
    adaptive = options.method != "euler"
    tolerance = {name: getattr(options, name) for name in ODEOptions.TRACED} if tolerances is None else tolerances
    rtol, atol, threshold = (tolerance[name] for name in ODEOptions.TRACED)
    state = _affine(center, scale)
    field, error = compiled(flows, kernels)

    def annealed(t, args):
        if "tau" in args:  # a protocol's phase: η(t) = η/(1 + (t − t_start)/τ), η_v likewise
            anneal = 1.0 / (1.0 + (t - args["t_start"]) / args["tau"])
            args = {**args, "lr": anneal * args["lr"], "lr_v": anneal * args["lr_v"]}
        return args

    def rhs(t, y, args):
        return field(t, y, annealed(t, args))

    if center is None:
        vector_field, start = rhs, y0
    else:
        def scaled(t, w, args):
            return jax.tree_util.tree_map(lambda value: value / scale, rhs(t, state(w), args))
        vector_field, start = scaled, jax.tree_util.tree_map(lambda y, c: (y - c) / scale, y0, center)
    methods = {"adaptive": diffrax.Tsit5, "euler": diffrax.Euler,
               "implicit": lambda: diffrax.Kvaerno5(root_finder=optimistix.Chord(rtol=100 * rtol, atol=atol / 100))}
    terms, adjoint = diffrax.ODETerm(vector_field), diffrax.RecursiveCheckpointAdjoint()
    noise = flows.noise(kernels)
    if noise is not None:  # an SDE: Euler–Maruyama on one Brownian path per key
        if adaptive or center is not None:
            raise ValueError("an SDE is solved by the euler method, without a center")
        size, operator = noise
        brownian = diffrax.UnsafeBrownianPath(shape=(size(y0),), key=args["key"])
        terms = diffrax.MultiTerm(terms, diffrax.ControlTerm(lambda t, y, args: operator(t, y, annealed(t, args)),
                                                             brownian))
        adjoint = diffrax.ForwardMode()  # the path is drawn as the solve steps: no reverse pass
    solution = diffrax.diffeqsolve(
        terms,
        methods[options.method](),
        t0=ts[0], t1=ts[-1], dt0=None if adaptive else dt, y0=start, args=args,
        saveat=diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts), diffrax.SubSaveAt(t1=True)]),
        stepsize_controller=(
            diffrax.PIDController(rtol=rtol, atol=atol)
            if adaptive else diffrax.ConstantStepSize()
        ),
        event=diffrax.Event(lambda t, y, args, **_: jnp.any(_bad(state(y), threshold))
                            | (False if center is None else _at_floor(y))),
        max_steps=ADAPTIVE_MAX_STEPS if options.max_steps is None else options.max_steps,
        adjoint=adjoint,
        throw=False,
    )
    assert solution.ys is not None and solution.ts is not None and solution.stats is not None  # saved by SaveAt
    ys, last = solution.ys[0], jax.tree_util.tree_map(lambda value: value[-1], solution.ys[1])
    floor = False if center is None else _at_floor(last)
    ys, last = state(ys), state(last)
    bad = _bad(last, threshold)
    status = jnp.where((solution.result == diffrax.RESULTS.successful) | (floor & ~jnp.any(bad)), Status.ok,
                       jnp.where(jnp.any(bad), Status.diverged, Status.max_steps))
    eg = jax.vmap(lambda y: error(y, args))(ys)
    steps = solution.stats["num_accepted_steps"] + solution.stats["num_rejected_steps"]
    return Solution(ys, eg, status, solution.ts[1][-1], bad, steps)


def resolve_options(options: ODEOptions, ts: np.ndarray, dt: float | None) -> ODEOptions:
    """`options` with the default step budget of its method for the times `ts` (n,): for Euler
    (which needs a finite step `dt` > 0 no longer than the span) EULER_MAX_STEPS or the next power
    of two above the span's steps, so that runs share compiled programs; a warning where dt does
    not divide the spacing of ts."""
    if options.method == "euler":
        if not (dt is not None and math.isfinite(dt) and dt > 0):
            raise ValueError(f"method 'euler' needs a finite step dt > 0, got dt={dt!r}")
        if dt > ts[-1] - ts[0]:
            raise ValueError(f"the Euler step dt = {dt:g} is longer than the span of t ({ts[-1] - ts[0]:g})")
        steps = np.diff(ts) / dt
        if np.any(np.abs(steps - np.round(steps)) > 1e-6 * np.maximum(1.0, steps)):
            warnings.warn(f"the Euler step dt = {dt:g} does not divide the spacing of t: saves between two steps "
                          "are interpolated, not Euler steps", RuntimeWarning, stacklevel=3)
        if options.max_steps is None:
            span_steps = math.ceil((ts[-1] - ts[0]) / dt * (1 + 1e-9)) + 1
            options = dataclasses.replace(options, max_steps=max(EULER_MAX_STEPS, 1 << (span_steps - 1).bit_length()))
    elif options.max_steps is None:
        options = dataclasses.replace(options, max_steps=ADAPTIVE_MAX_STEPS)
    return options


#: The arguments of `solve` that differ between the elements of a stack (`solve_many`): the
#: teacher, the feedback vector, a protocol phase's start and an SDE's random key.
PER_ELEMENT = ("T", "v_star", "b", "t_start", "key")


def bucket(n: int) -> int:
    """The size a stack of `n` states or saves is padded to (`solve_many`): the next of 1, 2, 3,
    4, 6, 8, 12, 16, 24, … (powers of two and their halfway points), so that runs of nearby sizes
    share one compiled program, for at most half as much work again (65 is padded to 96, 97 to
    128)."""
    if n <= 2:
        return n
    power = 1 << (n - 1).bit_length()
    return 3 * power // 4 if n <= 3 * power // 4 else power


def _padded(value, n: int, size: int):
    """`value` (an array, n long along its first axis) padded to `size` with copies of its last
    entry (on the host: an operation between programs would compile a program of its own)."""
    value = np.asarray(value)
    return value if size == n else value[np.minimum(np.arange(size), n - 1)]


def solve_many(setting: Setting, y0, args: dict, ts, options: ODEOptions, dt: float | None = None, *,
               leading: int, flows: Flows = FULL, center: dict | None = None, scale: float = 1.0,
               per_element: tuple[str, ...] = PER_ELEMENT) -> Solution:
    """`solve` of the `flows` of `setting` vmapped over `leading` leading dimensions (0: one
    state) of y0 (`OrderParameters.as_ode_state`, or the state of other flows) and of the
    `per_element` entries of `args` (default `PER_ELEMENT`; a sweep's points differ in every
    entry), the other args shared; saved at `ts` (n,); `center` and `scale` as for `solve` (one
    state: the tail's re-integration about its fixed point). The one set-up of a solve for
    `integrate` and its tail, a protocol's phases, the verdict's restarts, the symmetric
    reduction and a sweep's chunks on one device.

    Programs are shared: the leading dimensions are solved as one stack, which with the save
    times is padded to its `bucket` (copies of the last state and of the last time, solved and
    dropped: each element's solve is its own, so the others' results do not change), and the
    tolerances are data (`ODEOptions.program`); each program is kept in the persistent cache
    (`nndyn.core.cache`), so a fresh process skips its tracing.
    """
    teacher = None if setting.teacher_activation == setting.activation else setting.teacher_activation
    if center is not None and leading:
        raise ValueError("a solve about a center is of one state (leading = 0)")
    ts = np.asarray(ts, dtype=np.float64)
    n = len(ts)
    saves = bucket(n)
    shape = jax.tree_util.tree_leaves(y0)[0].shape[:leading]
    count = math.prod(shape)
    stack = bucket(count) if leading else 0

    def stacked(value):  # the leading dimensions as one, padded
        value = np.asarray(value)
        return _padded(value.reshape((count,) + value.shape[leading:]), count, stack)

    if leading:
        y0 = jax.tree_util.tree_map(stacked, y0)
        args = {name: stacked(value) if name in per_element else value for name, value in args.items()}
    program_options = options.program()

    def program(y0, args, ts, dt, center, scale, tolerances):
        solver = functools.partial(solve, setting.activation, ts=ts, options=program_options, dt=dt, teacher=teacher,
                                   flows=flows, center=center, scale=scale, tolerances=tolerances)
        if leading:
            solver = jax.vmap(solver, in_axes=(0, {name: 0 if name in per_element else None for name in args}))
        return tuple(solver(y0, args))

    sources = (__file__, *setting.kernels.sources, *flows.sources)
    arguments = (y0, args, _padded(ts, n, saves), dt, center,
                 None if center is None else jnp.asarray(scale, jnp.float64), options.tolerances())
    solution = Solution(*cache.call(program, arguments, static=(setting.activation, teacher, program_options,
                                                                 bool(leading), flows, per_element),
                                    sources=sources))

    def unstacked(value, saved: bool):  # the padding dropped (on the host), the leading dimensions restored
        # (back with device_put: jnp.asarray of a host array compiles a program per shape, JAX 0.10)
        if (stack, saves) == (count, n) and leading <= 1:
            return value
        value = np.asarray(value)
        value = value[:count].reshape(shape + value.shape[1:]) if leading else value
        return jax.device_put(value[(slice(None),) * len(shape) + (slice(0, n),)] if saved else value)

    return Solution(jax.tree_util.tree_map(lambda value: unstacked(value, True), solution.ys),
                    unstacked(solution.eg, True), *(unstacked(value, False) for value in solution[2:]))
