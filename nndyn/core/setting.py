"""A teacher–student setting: everything the flows depend on except the state."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from nndyn.core import schema
from nndyn.core.kernels import Kernels, load
from nndyn.core.schema import parameter


@dataclass(frozen=True)
class Setting:
    """A teacher–student setting (docs/conventions.md). Each field is a parameter of the schema
    (:mod:`nndyn.core.schema`): `nndyn run` configs and `nndyn sweep` grids take the same names
    and check them the same way.

    **Arguments:**

    - `K`: student hidden units (≥ 1).
    - `M`: teacher hidden units (≥ 1).
    - `lr`: first-layer learning rate η (the SGD step is η/√N).
    - `lr_v`: second-layer learning rate η_v (the SGD step is η_v/N); defaults to `lr`.
    - `sigma`: label-noise standard deviation σ ≥ 0.
    - `batch`: minibatch size B ≥ 1.
    - `train_second_layer`: False for the soft committee machine (v = v* = 1, fixed), True for
      the two-layer network of Goldt et al. with v trained.
    - `activation`: a built-in activation ("erf" is g(x) = erf(x/√2); "linear", "quadratic", "relu"),
      or the path of a module written by `python -m nndyn.derive --name NAME --expr EXPR --out DIR`.
    """

    K: int = parameter(doc="student hidden units", minimum=1)
    M: int = parameter(doc="teacher hidden units", minimum=1)
    lr: float = parameter(doc="first-layer learning rate η (SGD step η/√N)", above=0, flow=True)
    lr_v: float | None = parameter(None, doc="second-layer learning rate η_v (SGD step η_v/N); default: lr",
                                   minimum=0, flow=True)
    sigma: float = parameter(0.0, doc="label-noise standard deviation σ", minimum=0, flow=True)
    batch: int = parameter(1, doc="minibatch size B", minimum=1, flow=True)
    train_second_layer: bool = parameter(False, doc="train the second layer v (else v = v* = 1, fixed)")
    activation: str = parameter("erf", doc="erf, linear, quadratic, relu, or a module path DIR/NAME.py")

    def __post_init__(self) -> None:
        schema.validate(self)
        if self.lr_v is None:
            object.__setattr__(self, "lr_v", self.lr)
        try:
            load(self.activation)  # an unknown activation fails here, naming the known ones
        except ValueError as error:
            raise schema.ParameterError("activation", f"activation: {error}") from None

    @property
    def kernels(self) -> Kernels:
        """The kernels of the activation."""
        return load(self.activation)

    def replace(self, **changes) -> "Setting":
        """A copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def ode_args(self, T, v_star) -> dict:
        """The `args` of the vector field `rhs(t, y, args)` for teacher overlaps T and readout v*:
        "T", "v_star", every flow parameter of the schema by name (as a float), and "train_v"
        (1.0 when the second layer is trained, else 0.0)."""
        flow = {name: float(getattr(self, name)) for name, rule in schema.parameters(Setting).items() if rule.flow}
        return {"T": T, "v_star": v_star, **flow, "train_v": 1.0 if self.train_second_layer else 0.0}
