"""Kernels: a model's generated closed forms bound to the flow table, once.

`load` finds the generated module of an activation (a built-in by name, or a user's module
written by ``python -m nndyn.derive --name NAME --expr EXPR --out DIR``, by its path), with a
teacher activation apart also the teacher's and their pair module of mixed integrals, and
returns a `Kernels`, which evaluates the integrals on covariance blocks and the flows and
ε_g of a state, with the vector field in Diffrax's signature ``rhs(t, y, args)``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

# nndyn.generated is mapped from generated/ by setuptools' package-dir, which pyright does not follow
import jax
import jax.numpy as jnp

from nndyn import generated  # pyright: ignore[reportAttributeAccessIssue]
from nndyn.core import blocks, flows, mixture, quadrature, special

#: The layout of kernel modules this runtime reads (derive/render.py's KERNEL_FORMAT).
KERNEL_FORMAT = 2
#: The flow targets of the vector field, in the order `flows` returns them.
FLOW_TARGETS = ("Q", "R", "v")
#: The values of the flow arguments that a vector field's `args` may omit: the plain model (no
#: output scaling, no weight decay).
FLOW_DEFAULTS = {"kappa": 1.0, "kappa_star": 1.0, "weight_decay": 0.0, "weight_decay_v": 0.0, "level_weight": 1.0}


@dataclass(frozen=True, eq=False)
class Kernels:
    """The kernels of a model: the student's activation and, when apart, the teacher's.

    **Fields:** `name`, the student's activation as given to `load`; `module`, its
    generated module (closed forms g, g_prime, INTEGRALS, and the records EXPRESSION,
    PROVENANCE, VERIFICATION; its input hash is in its header's comments, so that a change
    of the derivation that prints the same code keeps the exported programs' cache keys);
    `teacher`, the teacher activation's Kernels when it
    differs (else None: the teacher has g too); `pair`, then, the generated pair module of their
    mixed integrals (INTEGRALS keyed by (integral, signature), docs/conventions.md).

    Shapes: Q (K, K), R (K, M), v (K,), T (M, M), v_star (M,), b (K,); covariance blocks C (..., r, r).
    """

    name: str
    module: ModuleType
    teacher: "Kernels | None" = None
    pair: ModuleType | None = None

    @property
    def g(self):
        """The student's activation, elementwise."""
        return self.module.g

    @property
    def g_prime(self):
        """The student's activation's derivative, elementwise."""
        return self.module.g_prime

    @property
    def g_star(self):
        """The teacher's activation, elementwise."""
        return self.g if self.teacher is None else self.teacher.g

    @property
    def smooth(self) -> bool:
        """Whether the flows are differentiable also where units coincide: none of the model's
        modules has coincidence variants (those of an activation whose derivative is a step, e.g.
        ReLU, whose flows have kinks where a student unit meets a teacher or another student)."""
        modules = (self.module,) if self.teacher is None else (self.module, self.teacher.module, self.pair)
        return not any(getattr(module, "COINCIDENT", None) for module in modules)

    @property
    def sources(self) -> tuple[str, ...]:
        """The files whose code these kernels run (for cache keys)."""
        own = (blocks, flows, mixture, mixture.erf, quadrature, special, _flow_table())
        return (__file__, *map(_file, (*own, *self._modules)))

    @property
    def _modules(self) -> tuple:
        """The generated modules these kernels bind: the student's, and where apart the teacher's
        and the pair's, each followed by the built-in module whose closed forms it sums over a
        mixture's terms (its MIXTURE_BASE: relu__erf for a ReLU student on a tanh teacher, relu
        for softplus)."""
        modules = (self.module,) if self.teacher is None else (self.module, self.teacher.module, self.pair)
        with_bases = []
        for module in modules:
            if module is not None:
                base = getattr(module, "MIXTURE_BASE", None)
                with_bases += [module] if base is None else [module, base]
        return tuple(with_bases)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the contents of the generated modules these kernels bind (the activations'
        closed forms, a pair's mixed integrals, the modules whose closed forms a mixture sums, the
        flow table): what a stored result depends on beyond its setting. A module re-derived with
        another expression, or in another format (its input hash), changes it; where the module
        lives does not."""
        digest = hashlib.sha256()
        for module in (*self._modules, _flow_table()):
            digest.update(Path(_file(module)).read_bytes())
        return digest.hexdigest()

    def integral(self, name: str, C, signature: str | None = None):
        """Integral `name` ("I2", "J2", "I3", "I4") on covariance blocks C (..., r, r); returns
        shape (...). Only the upper triangle of C is read. `signature` (a letter per slot: "s"
        student, "t" teacher, "-" the u slot) picks the activations; default: the student's.
        Compiled once per integral and block shape (op by op, a long closed form, such as ReLU's
        I4 summed over a mixture's terms, takes seconds to dispatch the first time)."""
        return _on_blocks(self.closed_form(name, signature), C)

    def closed_form(self, name: str, signature: str | None = None) -> Callable:
        """The generated function of integral `name` of `signature` (see `integral`), taking
        the block entries c_pq (p ≤ q, row-major) as arguments, elementwise over broadcast arrays."""
        if signature is None or self.teacher is None or set(signature) <= {"s", "-"}:
            return self.module.INTEGRALS[name]
        if set(signature) <= {"t", "-"}:
            return self.teacher.module.INTEGRALS[name]
        assert self.pair is not None  # kernels with a teacher of their own have its pair module
        return self.pair.INTEGRALS[name, signature]

    def split(self, name: str, signature: str | None = None) -> blocks.Split | None:
        """How the blocks of integral `name` of `signature` (see `integral`) are split by their
        units (`nndyn.core.blocks.Split`): its coincidence variants alone (the module's
        COINCIDENT) and its generic form (GENERIC), or that with the sign quadruple shared by a
        set of units (QUADRUPLES); None where it has no variants (smooth activations, a
        signature its pair module computes by exchanging slots). A module derived before GENERIC
        was written has none: its blocks of distinct units take the whole integral."""
        if signature is None or self.teacher is None or set(signature) <= {"s", "-"}:
            module, key = self.module, name
        elif set(signature) <= {"t", "-"}:
            module, key = self.teacher.module, name
        else:
            module, key = self.pair, (name, signature)
        coincident = getattr(module, "COINCIDENT", {}).get(key)
        if coincident is None:
            return None
        generic = getattr(module, "GENERIC", {}).get(key)
        return blocks.Split(coincident, *getattr(module, "QUADRUPLES", {}).get(key, (generic, None)))

    def _evaluate(self, targets, Q, R, v, T, v_star, parameters, feedback=None, level=None, overlaps=None):
        table = _flow_table()
        weights = {**flows.readouts(v, v_star, feedback, parameters.get("kappa", 1.0),
                                    parameters.get("kappa_star", 1.0)), "Q": Q, "R": R, "v": v, **(overlaps or {})}
        return flows.evaluate(table.TERMS, self.closed_form, targets, Q, R, T, weights, parameters,
                              None if self.teacher is None else table.FACTORS, self.split, level)

    def flows(self, Q, R, v, T, v_star, feedback=None, **parameters) -> tuple:
        """(dQ/dt (K, K), dR/dt (K, M), dv/dt (K,)), the N → ∞ flows; `parameters` are the flow
        arguments by name (lr, lr_v, sigma, batch, kappa, kappa_star, weight_decay,
        weight_decay_v: `Setting.ode_args`; those of FLOW_DEFAULTS may be omitted); `feedback`
        is b (K,) for feedback alignment, None for backpropagation. dv/dt is the flow of a
        trained second layer."""
        return self._evaluate(FLOW_TARGETS, Q, R, v, T, v_star, {**FLOW_DEFAULTS, **parameters}, feedback)

    def level_flows(self, Q, R, v, T, v_star, rho, fraction, feedback=None, **parameters) -> tuple:
        """The flows of structured inputs (docs/conventions.md), per level of the input spectrum:
        (dQ/dt (L, K, K), dR/dt (L, K, M), dv/dt (K,)) of the level overlaps Q (L, K, K),
        R (L, K, M), T (L, M, M), with the levels' eigenvalues `rho` (L,) and fractions
        `fraction` (L,); the rest as for `flows`. The fields' covariance is Σ_ℓ ρ_ℓ Ω^ℓ; the terms
        that do not depend on the level (ε_g's and the η² terms' integrals) are evaluated once
        (they do not vary under the vmap over levels)."""
        parameters = {**FLOW_DEFAULTS, **parameters}
        scale = rho[:, None, None]
        Q_total, R_total, T_total = (jnp.sum(scale * overlap, axis=0) for overlap in (Q, R, T))

        def one_level(Q_level, R_level, T_level, rho_level, weight):
            level = rho_level * blocks.joint_covariance(Q_level, R_level, T_level)
            return self._evaluate(("Q", "R"), Q_total, R_total, v, T_total, v_star,
                                  {**parameters, "level_weight": weight}, feedback, level,
                                  {"Q": Q_level, "R": R_level})

        dQ, dR = jax.vmap(one_level)(Q, R, T, rho, rho * fraction)
        (dv,) = self._evaluate(("v",), Q_total, R_total, v, T_total, v_star, parameters, feedback)
        return dQ, dR, dv

    def generalisation_error(self, Q, R, v, T, v_star, kappa=1.0, kappa_star=1.0):
        """ε_g = ½ <(ŷ − y)²> without label noise, a scalar (κ, κ* the output scalings)."""
        (eg,) = self._evaluate(("eg",), Q, R, v, T, v_star, {"kappa": kappa, "kappa_star": kappa_star})
        return eg

    def rhs(self, t, y, args) -> dict:
        """The vector field in Diffrax's signature f(t, y, args).

        y = {"Q": (K, K), "R": (K, M), "v": (K,)}; args = `Setting.ode_args(T, v_star)`: "T",
        "v_star", the flow arguments (those of FLOW_DEFAULTS may be omitted), "b" (K,) for
        feedback alignment, and "train_v" (1 for a trained second layer, 0 for a fixed one), the
        scalars possibly arrays under vmap. Returns dy/dt like y; dQ/dt is symmetrised (its two
        triangles are sums in different orders), so that an integrated Q stays symmetric to
        round-off instead of accumulating an antisymmetric part.

        Structured inputs: with "rho" and "fraction" (L,) in args, y's Q (L, K, K) and R
        (L, K, M) and args' T (L, M, M) are per level (`level_flows`).
        """
        parameters = {name: args.get(name, FLOW_DEFAULTS.get(name)) for name in (*_flow_table().PARAMETERS,
                                                                                 "kappa_star")}
        if "rho" in args:
            parameters.pop("level_weight")
            dQ, dR, dv = self.level_flows(y["Q"], y["R"], y["v"], args["T"], args["v_star"], args["rho"],
                                          args["fraction"], args.get("b"), **parameters)
        else:
            dQ, dR, dv = self.flows(y["Q"], y["R"], y["v"], args["T"], args["v_star"], args.get("b"), **parameters)
        return {"Q": 0.5 * (dQ + jnp.swapaxes(dQ, -1, -2)), "R": dR, "v": args["train_v"] * dv}

    def eg(self, y, args):
        """ε_g of the state y (see `rhs` for y and args), a scalar."""
        Q, R, T = y["Q"], y["R"], args["T"]
        if "rho" in args:  # structured inputs: the fields' covariance Σ_ℓ ρ_ℓ Ω^ℓ
            scale = args["rho"][:, None, None]
            Q, R, T = (jnp.sum(scale * overlap, axis=0) for overlap in (Q, R, T))
        return self.generalisation_error(Q, R, y["v"], T, args["v_star"],
                                         args.get("kappa", 1.0), args.get("kappa_star", 1.0))


#: `blocks.on_blocks` compiled per integral function (static) and block shape.
_on_blocks = jax.jit(blocks.on_blocks, static_argnums=0)


@functools.cache
def _flow_table() -> ModuleType:
    """The generated flow table, imported on first use (so that the generator, which imports
    nndyn, runs before it exists)."""
    return importlib.import_module("nndyn.generated.flows")


def step_table() -> dict:
    """The generated SGD step (`nndyn.generated.flows.STEP`): name -> (arguments, function)."""
    return _flow_table().STEP


def increment_table() -> dict:
    """The generated random increments of one sample (`nndyn.generated.flows.INCREMENTS`):
    target -> (arguments, function)."""
    return _flow_table().INCREMENTS


def load(activation: str, teacher: str | None = None) -> Kernels:
    """The kernels of a student `activation` and, when it differs, a `teacher` activation: each
    the built-in module `nndyn.generated.<name>` for a built-in name, or the module file at the
    path when it ends in ".py", and for two apart their pair module (`nndyn.generated.S__T`
    for built-ins, else the file S__T.py next to the user's module). A ValueError of one line
    otherwise (an unknown name, a missing file, a file not written by nndyn.derive or written by
    an older version, a missing or stale pair module, each naming the command that writes it)."""
    student = _single(activation)
    if teacher is None or teacher == activation:
        return student
    return _mixed(activation, teacher)


def _file(module: ModuleType) -> str:
    """The file `module` was loaded from (every kernel module and helper has one)."""
    if module.__file__ is None:
        raise ValueError(f"the module {module.__name__} has no file")
    return module.__file__


@functools.cache
def _mixed(activation: str, teacher: str) -> Kernels:
    student = _single(activation)
    taught = _single(teacher)
    if Path(_file(student.module)).resolve() == Path(_file(taught.module)).resolve():
        return student
    return Kernels(student.name, student.module, taught, _pair(activation, teacher, student, taught))


def _single(activation: str) -> Kernels:
    if activation.endswith(".py"):
        return _load_file(str(Path(activation).resolve()))
    if activation not in generated.MODULES:
        known = ", ".join(generated.MODULES)
        raise ValueError(
            f"unknown activation {activation!r}: generated kernels exist for {known}; for your own "
            "g, run `python -m nndyn.derive --name NAME --expr EXPR --out DIR` and pass DIR/NAME.py"
        )
    return _builtin(activation)


def _pair(activation: str, teacher: str, student: Kernels, taught: Kernels) -> ModuleType:
    """The pair module of a student and a teacher activation, checked against their expressions."""
    names = (student.module.ACTIVATION, taught.module.ACTIVATION)
    if (activation, teacher) in generated.PAIRS:
        return importlib.import_module(f"nndyn.generated.{names[0]}__{names[1]}")
    folders = [Path(name).resolve().parent for name in (activation, teacher) if name.endswith(".py")]
    command = (f"python -m nndyn.derive --name {names[0]} [--expr EXPR] --teacher-name {names[1]} "
               f"[--teacher-expr EXPR] --out {folders[0]}")
    for folder in folders:
        path = folder / f"{names[0]}__{names[1]}.py"
        if path.is_file():
            pair = _load_file(str(path), pair=True).module
            if (pair.EXPRESSION, pair.TEACHER_EXPRESSION) != (student.module.EXPRESSION, taught.module.EXPRESSION):
                raise ValueError(f"the pair module {path} was written for other activations (g = {pair.EXPRESSION}, "
                                 f"g* = {pair.TEACHER_EXPRESSION}); regenerate it with: {command}")
            return pair
    raise ValueError(
        f"no mixed integrals for the student activation {names[0]} with the teacher activation "
        f"{names[1]}; write them with: {command}"
    )


@functools.cache
def _builtin(name: str) -> Kernels:
    return Kernels(name, importlib.import_module(f"nndyn.generated.{name}"))


@functools.cache
def _load_file(path: str, pair: bool = False) -> Kernels:
    if not Path(path).is_file():
        raise ValueError(f"activation module {path} does not exist")
    try:
        header = Path(path).read_text(encoding="utf-8").splitlines()[:3]
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"activation module {path} cannot be read: {error}") from None
    command = re.match(r"# Generated by `(python -m nndyn\.derive [^`]*)`", header[0]) if header else None
    if command is None:
        raise ValueError(f"{path} is not a module generated by nndyn.derive")
    if len(header) < 3 or header[2] != f"# Kernel format: {KERNEL_FORMAT}":
        raise ValueError(
            f"{path} was written by an older nndyn; regenerate it with: {command.group(1)} --out {Path(path).parent}"
        )
    spec = importlib.util.spec_from_file_location(f"nndyn_user_kernels_{Path(path).stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # an edited or damaged file: one line, not a traceback
        raise ValueError(
            f"activation module {path} cannot be loaded ({type(error).__name__}: {error}); "
            f"regenerate it with: {command.group(1)} --out {Path(path).parent}"
        ) from None
    if hasattr(module, "TEACHER_EXPRESSION") != pair:
        raise ValueError(f"{path} holds the mixed integrals of a student and a teacher activation (a pair module), "
                         "not an activation: pass the student's module as activation and the teacher's as "
                         "teacher_activation" if not pair else f"{path} is not a pair module")
    return Kernels(path, module)
