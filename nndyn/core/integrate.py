"""Integrating the generated flows with Diffrax: adaptive (default) or fixed-step Euler."""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from nndyn.core import cache, schema
from nndyn.core.errors import DivergenceError, Status
from nndyn.core.kernels import load
from nndyn.core.schema import parameter
from nndyn.core.setting import Setting
from nndyn.core.state import OrderParameters
from nndyn.core.trajectory import Trajectory

ORDER_PARAMETERS = ("Q", "R", "v")
#: ε_g below which a run's tail is re-integrated about its fixed point, and from where.
TAIL_TRIGGER, TAIL_START = 1e-7, 1e-4
#: The deviation from the fixed point (largest entry) below which a tail's re-integration
#: stops: ε_g is then ~1e-12, and the flows, sums of O(1) terms each rounded at ~1e-16, soon
#: stop resolving the deviation, which scaled by 1/deviation no step size can control.
TAIL_DEVIATION = 1e-6
#: The re-integrated tail's step budget (a few hundred steps suffice; a tail that needs more is
#: kept as the first solve gave it).
TAIL_MAX_STEPS = 100_000
ADAPTIVE_MAX_STEPS = 1_000_000  # the adaptive solver's default step budget
EULER_MAX_STEPS = 1 << 24  # one compiled Euler program serves every span and dt below this


@dataclass(frozen=True)
class ODEOptions:
    """How to integrate. Each field is a parameter of the schema (`nndyn.core.schema`).

    **Arguments:**

    - `method`: "adaptive" (Tsit5 with a PID step-size controller) or "euler" (a fixed step dt,
      passed to `solve` separately; with dt = 1/N it mirrors discrete SGD step by step).
    - `rtol`, `atol`: the adaptive controller's tolerances.
    - `max_steps`: the most solver steps; by default ADAPTIVE_MAX_STEPS for the adaptive
      method, and for Euler in `integrate` EULER_MAX_STEPS or the next power of two above the
      span's steps (so that runs share compiled programs).
    - `divergence_threshold`: |order parameter| above which the solve stops as diverged.
    - `refine_tail`: in `integrate` (adaptive), when ε_g falls below TAIL_TRIGGER and the
      run ends near a stable fixed point, re-integrate from where ε_g < TAIL_START in the
      deviation from that point, so that the error control is relative to the deviation and ε_g
      keeps its relative accuracy in the exponential tail (see `integrate`).
    """

    method: str = parameter("adaptive", doc="adaptive (Tsit5, PID controller) or euler (fixed step dt)",
                            choices=("adaptive", "euler"))
    rtol: float = parameter(1e-8, doc="relative tolerance of the adaptive controller", above=0, below=1)
    atol: float = parameter(1e-10, doc="absolute tolerance of the adaptive controller", above=0, below=1)
    max_steps: int | None = parameter(None, doc="the most solver steps; default: 1e6 (adaptive), the span's (Euler)",
                                      minimum=1)
    divergence_threshold: float = parameter(1e6, doc="|order parameter| above which a solve counts as diverged",
                                            above=0)
    refine_tail: bool = parameter(True, doc="re-integrate a tail converging to a stable fixed point about it "
                                            "(integrate, adaptive only)")

    def __post_init__(self) -> None:
        schema.validate(self)


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


def _bad(y: dict, threshold: float) -> jax.Array:
    """Per order parameter (Q, R, v): non-finite or above the threshold in magnitude."""
    return jnp.stack([
        jnp.logical_not(jnp.all(jnp.isfinite(y[name]))) | (jnp.max(jnp.abs(y[name])) > threshold)
        for name in ORDER_PARAMETERS
    ])


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


@functools.partial(jax.jit, static_argnames=("activation", "options", "teacher"))
def solve(activation: str, y0: dict, args: dict, ts: jax.Array, options: ODEOptions, dt=None,
          teacher: str | None = None, center: dict | None = None, scale=1.0):
    """The flows of `activation` (the student's; the teacher's `teacher`, default the same) from
    y0 at t = ts[0], saved at `ts`; pure, jitted, vmappable.

    **Arguments:** `y0` = {"Q": (K, K), "R": (K, M), "v": (K,)}; `args` as for `Kernels.rhs`
    (`Setting.ode_args`; arrays under vmap over η, σ, …), with "t_start" and "tau" for a
    protocol's phase annealed as η(t) = η/(1 + (t − t_start)/τ) (τ = inf: none); `ts` (n,)
    increasing; `dt` the Euler step (traced: changing it does not recompile; ignored by the
    adaptive method); `center`, like y0, or None: integrate the deviation (y − center)/`scale`
    instead of y, so that the error control is relative to the deviation (the tail near a
    stable fixed point, see `integrate`); the solve then stops, with status ok, where the
    deviation falls below `scale`/2.

    **Returns:** a `Solution`.
    """
    import diffrax  # imported when tracing: a process that loads an exported solve never needs it (0.4 s)

    kernels = load(activation, teacher)
    adaptive = options.method == "adaptive"
    state = _affine(center, scale)

    def rhs(t, y, args):
        if "tau" in args:  # a protocol's phase: η(t) = η/(1 + (t − t_start)/τ), η_v likewise
            anneal = 1.0 / (1.0 + (t - args["t_start"]) / args["tau"])
            args = {**args, "lr": anneal * args["lr"], "lr_v": anneal * args["lr_v"]}
        return kernels.rhs(t, y, args)

    if center is None:
        field, start = rhs, y0
    else:
        def scaled(t, w, args):
            return jax.tree_util.tree_map(lambda value: value / scale, rhs(t, state(w), args))
        field, start = scaled, jax.tree_util.tree_map(lambda y, c: (y - c) / scale, y0, center)
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Tsit5() if adaptive else diffrax.Euler(),
        t0=ts[0], t1=ts[-1], dt0=None if adaptive else dt, y0=start, args=args,
        saveat=diffrax.SaveAt(subs=[diffrax.SubSaveAt(ts=ts), diffrax.SubSaveAt(t1=True)]),
        stepsize_controller=(
            diffrax.PIDController(rtol=options.rtol, atol=options.atol)
            if adaptive else diffrax.ConstantStepSize()
        ),
        event=diffrax.Event(lambda t, y, args, **_: jnp.any(_bad(state(y), options.divergence_threshold))
                            | (False if center is None else _at_floor(y))),
        max_steps=ADAPTIVE_MAX_STEPS if options.max_steps is None else options.max_steps,
        throw=False,
    )
    assert solution.ys is not None and solution.ts is not None and solution.stats is not None  # saved by SaveAt
    ys, last = solution.ys[0], jax.tree_util.tree_map(lambda value: value[-1], solution.ys[1])
    floor = False if center is None else _at_floor(last)
    ys, last = state(ys), state(last)
    bad = _bad(last, options.divergence_threshold)
    status = jnp.where((solution.result == diffrax.RESULTS.successful) | (floor & ~jnp.any(bad)), Status.ok,
                       jnp.where(jnp.any(bad), Status.diverged, Status.max_steps))
    eg = jax.vmap(lambda y: kernels.eg(y, args))(ys)
    steps = solution.stats["num_accepted_steps"] + solution.stats["num_rejected_steps"]
    return Solution(ys, eg, status, solution.ts[1][-1], bad, steps)


def integrate(setting: Setting, init: OrderParameters, t: ArrayLike, *, dt: float | None = None,
              **options) -> Trajectory:
    """Integrate the flows of `setting` from `init` and return the trajectory at times `t`.

    **Arguments:**

    - `setting`: the `Setting`.
    - `init`: the `OrderParameters` at t[0]; leading batch dimensions (e.g. one
      state per seed, from `Trajectory.initial_state()`) are integrated in one vmapped call.
    - `t` (n,): increasing save times, t[0] the start.
    - `dt`: the step of method="euler" (e.g. 1/N for parity with SGD).
    - `options`: fields of `ODEOptions` (method, rtol, atol, max_steps,
      divergence_threshold).

    **Returns:** a `Trajectory`. Raises `DivergenceError` with the time and
    the order parameter when the solution blows up or goes non-finite, never returning NaNs;
    warns (`RuntimeWarning`) where ε_g goes negative, i.e. is round-off there.
    """
    init.validate()
    if (init.K, init.M) != (setting.K, setting.M):
        raise ValueError(
            f"init has K={init.K}, M={init.M} but the setting has K={setting.K}, M={setting.M}"
        )
    init.require_levels(setting.levels if setting.structured else None)
    ts = np.asarray(t, dtype=np.float64)
    if ts.ndim != 1 or ts.size < 2 or not np.all(np.isfinite(ts)) or np.any(np.diff(ts) <= 0):
        raise ValueError("t must be a 1-d increasing array of at least two finite times")
    options = ODEOptions(**options)
    if options.method == "euler":
        if not (dt is not None and math.isfinite(dt) and dt > 0):
            raise ValueError(f"method 'euler' needs a finite step dt > 0, got dt={dt!r}")
        if dt > ts[-1] - ts[0]:
            raise ValueError(f"the Euler step dt = {dt:g} is longer than the span of t ({ts[-1] - ts[0]:g})")
        steps = np.diff(ts) / dt
        if np.any(np.abs(steps - np.round(steps)) > 1e-6 * np.maximum(1.0, steps)):
            warnings.warn(f"the Euler step dt = {dt:g} does not divide the spacing of t: saves between two steps "
                          "are interpolated, not Euler steps", RuntimeWarning, stacklevel=2)
        if options.max_steps is None:
            span_steps = math.ceil((ts[-1] - ts[0]) / dt * (1 + 1e-9)) + 1
            options = dataclasses.replace(options, max_steps=max(EULER_MAX_STEPS, 1 << (span_steps - 1).bit_length()))
    elif options.max_steps is None:
        options = dataclasses.replace(options, max_steps=ADAPTIVE_MAX_STEPS)
    args = setting.ode_args(init.T_levels if setting.structured else init.T, init.v_star, init.b)
    batch_dims = init.Q.ndim - 2  # batch dimensions of the initial states
    teacher = None if setting.teacher_activation == setting.activation else setting.teacher_activation

    def program(y0, args, ts, dt):
        solver = functools.partial(solve, setting.activation, ts=ts, options=options, dt=dt, teacher=teacher)
        for _ in range(batch_dims):
            batched = {name: 0 if name in ("T", "v_star", "b") else None for name in args}
            solver = jax.vmap(solver, in_axes=(0, batched))
        return tuple(solver(y0, args))

    sources = (__file__, *setting.kernels.sources)
    solution = Solution(*cache.call(program, (init.as_ode_state(), args, jnp.asarray(ts), dt),
                                    static=(setting.activation, teacher, options, batch_dims), sources=sources))
    _raise_if_failed(np.asarray(solution.status), np.asarray(solution.failed_at), np.asarray(solution.bad), options)
    ys, eg = solution.ys, solution.eg
    if (options.method == "adaptive" and options.refine_tail and not setting.structured
            and np.min(np.asarray(eg)) < TAIL_TRIGGER):
        ys, eg = _refine_tail(setting, init, ts, ys, eg, options, teacher)
    _warn_if_unresolved(ts, np.asarray(eg))
    if setting.structured:
        return Trajectory(jnp.asarray(ts), eg, jnp.sum(ys["Q"], axis=-3), jnp.sum(ys["R"], axis=-3), ys["v"], init.T,
                          init.v_star, b=init.b, Q_levels=ys["Q"], R_levels=ys["R"], T_levels=init.T_levels)
    return Trajectory(jnp.asarray(ts), eg, ys["Q"], ys["R"], ys["v"], init.T, init.v_star, b=init.b)



def _refine_tail(setting: Setting, init: OrderParameters, ts, ys: dict, eg, options: ODEOptions, teacher):
    """ys, eg with the convergent tail of each batch element re-integrated about its fixed point.

    The adaptive controller keeps errors below rtol relative to |Q|, |R|, |v| = O(1), while in the
    tail ε_g = O(δ²) for a deviation δ from the fixed point it approaches: its relative error
    grows like 1/δ (10 % at ε_g = 1e-8, 9× at 1e-10 for K = M = 2). Here, where ε_g falls below
    TAIL_TRIGGER, Newton's method finds the fixed point y* from the last state; if it is stable
    and the run ends within 1e-3 of it, the run is integrated again from where ε_g < TAIL_START
    in w = (y − y*)/s, s the final deviation or TAIL_DEVIATION if larger, with rtol/10 and atol
    rtol/100: the control is then relative to the deviation (tests/test_tail.py holds ε_g to 1e-3
    relative down to 1e-10). That solve stops where the deviation falls below s/2; saves after
    it (ε_g ≲ 1e-12, where the flows are round-off) keep the first solve's values.
    Elements that do not qualify (no stable fixed point nearby, e.g. an overparameterised
    student's manifold of them) are kept as they are.
    """
    from nndyn.core.fixed_points import FixedPointError, fixed_point  # only for runs with a tail

    ys = {name: np.array(value) for name, value in ys.items()}
    eg = np.array(eg)
    tail_options = dataclasses.replace(options, rtol=0.1 * options.rtol, atol=0.01 * options.rtol,
                                       max_steps=TAIL_MAX_STEPS)
    for index in np.ndindex(*eg.shape[:-1]):
        if not np.min(eg[index]) < TAIL_TRIGGER:
            continue
        T, v_star, b = (
            np.asarray(init.T)[index],
            np.asarray(init.v_star)[index],
            None if init.b is None else np.asarray(init.b)[index],
        )
        end = OrderParameters(ys["Q"][index][-1], ys["R"][index][-1], T, ys["v"][index][-1], v_star, b)
        try:
            point = fixed_point(setting, end)
        except (FixedPointError, ValueError):
            continue
        center = {"Q": np.asarray(point.state.Q), "R": np.asarray(point.state.R), "v": np.asarray(point.state.v)}
        first = int(np.argmax(eg[index] < TAIL_START))
        scale = max(TAIL_DEVIATION, *(float(np.max(np.abs(ys[name][index][-1] - center[name]))) for name in center))
        if point.kind != "stable" or not scale < 1e-3:
            continue
        tail = solve(
            setting.activation,
            {name: ys[name][index][first] for name in ys},
            setting.ode_args(T, v_star, b),
            jnp.asarray(np.maximum(ts, ts[first])),
            tail_options,
            teacher=teacher,
            center=center,
            scale=scale,
        )
        if int(tail.status) != Status.ok:
            continue
        done = (np.arange(len(ts)) >= first) & (ts <= float(tail.failed_at))  # saves it re-integrated
        for name in ys:
            ys[name][index][done] = np.asarray(tail.ys[name])[done]
        eg[index][done] = np.asarray(tail.eg)[done]
    return {name: jnp.asarray(value) for name, value in ys.items()}, jnp.asarray(eg)


def _warn_if_unresolved(ts: np.ndarray, eg: np.ndarray) -> None:
    """A `RuntimeWarning` where ε_g (..., n) goes negative: it is a sum of O(1) terms, and where
    round-off outweighs it (ReLU's tail near perfect learning, whose kinks no re-integration can
    resolve: from ε_g ~ 1e-9 on, docs/api.md) its values are not the dynamics."""
    negative = np.any(eg < 0, axis=tuple(range(eg.ndim - 1)))
    if np.any(negative):
        warnings.warn(f"ε_g goes negative from t = {ts[np.argmax(negative)]:g} (down to {np.min(eg):.1g}): values "
                      f"of that size are below what the solve resolves (its tolerances, and the round-off of the "
                      f"O(1) terms ε_g sums), not the dynamics", RuntimeWarning,
                      stacklevel=3)


def _raise_if_failed(status, failed_at, bad, options: ODEOptions) -> None:
    failed = status != Status.ok
    if not np.any(failed):
        return
    index = np.unravel_index(np.argmax(failed), failed.shape)
    where = f" (batch element {tuple(int(i) for i in index)})" if failed.ndim else ""
    if status[index] == Status.diverged:
        parameter = ORDER_PARAMETERS[int(np.argmax(bad[index]))]
        reason = f"went non-finite or exceeded {options.divergence_threshold:g} in magnitude{where}"
    else:
        parameter = None
        reason = f"the solver used up its {options.max_steps} steps{where} (raise max_steps, or loosen rtol/atol)"
    raise DivergenceError(float(failed_at[index]), parameter, reason)
