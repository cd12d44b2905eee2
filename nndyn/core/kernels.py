"""Kernels: an activation's generated closed forms bound to the flow table, once.

:func:`load` finds the generated module of an activation (a built-in by name, or a user's module
written by ``python -m nndyn.derive --name NAME --expr EXPR --out DIR``, by its path) and returns
a :class:`Kernels`, which evaluates the integrals on covariance blocks and the flows and ε_g of
a state, with the vector field in Diffrax's signature ``rhs(t, y, args)``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from nndyn import generated
from nndyn.core import blocks, flows, quadrature, special

#: The layout of kernel modules this runtime reads (derive/render.py's KERNEL_FORMAT).
KERNEL_FORMAT = 2
#: The flow targets of the vector field, in the order `flows` returns them.
FLOW_TARGETS = ("Q", "R", "v")


@dataclass(frozen=True, eq=False)
class Kernels:
    """The kernels of one activation.

    **Fields:** `name`, the activation as given to :func:`load`; `module`, its generated module
    (closed forms g, g_prime, INTEGRALS, and the records EXPRESSION, INPUT_HASH, PROVENANCE,
    VERIFICATION).

    Shapes: Q (K, K), R (K, M), v (K,), T (M, M), v_star (M,); covariance blocks C (..., r, r).
    """

    name: str
    module: ModuleType

    @property
    def g(self):
        """The activation, elementwise."""
        return self.module.g

    @property
    def g_prime(self):
        """The activation's derivative, elementwise."""
        return self.module.g_prime

    @property
    def sources(self) -> tuple[str, ...]:
        """The files whose code these kernels run (for cache keys)."""
        return (self.module.__file__, __file__, blocks.__file__, flows.__file__, quadrature.__file__,
                special.__file__, _flow_table().__file__)

    def integral(self, name: str, C):
        """Integral `name` ("I2", "J2", "I3", "I4") on covariance blocks C (..., r, r); returns
        shape (...). Only the upper triangle of C is read."""
        return blocks.on_blocks(self.module.INTEGRALS[name], C)

    def flows(self, Q, R, v, T, v_star, **parameters) -> tuple:
        """(dQ/dt (K, K), dR/dt (K, M), dv/dt (K,)), the N → ∞ flows; `parameters` are the flow
        parameters by name (lr, lr_v, sigma, batch: `Setting.ode_args`). dv/dt is the flow of a
        trained second layer."""
        return flows.evaluate(_flow_table().TERMS, self.module.INTEGRALS, FLOW_TARGETS, Q, R, v, T, v_star, parameters)

    def generalisation_error(self, Q, R, v, T, v_star):
        """ε_g = ½ <(ŷ − y)²> without label noise, a scalar."""
        (eg,) = flows.evaluate(_flow_table().TERMS, self.module.INTEGRALS, ("eg",), Q, R, v, T, v_star, {})
        return eg

    def rhs(self, t, y, args) -> dict:
        """The vector field in Diffrax's signature f(t, y, args).

        y = {"Q": (K, K), "R": (K, M), "v": (K,)}; args = `Setting.ode_args(T, v_star)`: "T",
        "v_star", the flow parameters, and "train_v" (1 for a trained second layer, 0 for a
        fixed one), the scalars possibly arrays under vmap. Returns dy/dt like y.
        """
        parameters = {name: args[name] for name in _flow_table().PARAMETERS}
        dQ, dR, dv = self.flows(y["Q"], y["R"], y["v"], args["T"], args["v_star"], **parameters)
        return {"Q": dQ, "R": dR, "v": args["train_v"] * dv}

    def eg(self, y, args):
        """ε_g of the state y (see `rhs` for y and args), a scalar."""
        return self.generalisation_error(y["Q"], y["R"], y["v"], args["T"], args["v_star"])


@functools.cache
def _flow_table() -> ModuleType:
    """The generated flow table, imported on first use (so that the generator, which imports
    nndyn, runs before it exists)."""
    return importlib.import_module("nndyn.generated.flows")


def load(activation: str) -> Kernels:
    """The kernels of `activation`: the built-in module `nndyn.generated.<activation>` for a
    built-in name, or the module file at `activation` when it ends in ".py"; a ValueError of
    one line otherwise (an unknown name, a missing file, a file not written by nndyn.derive or
    written by an older version, which names the command that regenerates it)."""
    if activation.endswith(".py"):
        return _load_file(str(Path(activation).resolve()))
    if activation not in generated.MODULES:
        known = ", ".join(generated.MODULES)
        raise ValueError(
            f"unknown activation {activation!r}: generated kernels exist for {known}; for your own "
            "g, run `python -m nndyn.derive --name NAME --expr EXPR --out DIR` and pass DIR/NAME.py"
        )
    return _builtin(activation)


@functools.cache
def _builtin(name: str) -> Kernels:
    return Kernels(name, importlib.import_module(f"nndyn.generated.{name}"))


@functools.cache
def _load_file(path: str) -> Kernels:
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
        raise ValueError(f"{path} was written by an older nndyn; regenerate it with: {command.group(1)} "
                         f"--out {Path(path).parent}")
    spec = importlib.util.spec_from_file_location(f"nndyn_user_kernels_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # an edited or damaged file: one line, not a traceback
        raise ValueError(f"activation module {path} cannot be loaded ({type(error).__name__}: {error}); "
                         f"regenerate it with: {command.group(1)} --out {Path(path).parent}") from None
    return Kernels(path, module)
