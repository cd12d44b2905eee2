"""A teacher–student setting: everything the flows depend on except the state."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import ModuleType

from nndyn.kernels import load


@dataclass(frozen=True)
class Setting:
    """A teacher–student setting (DESIGN.md conventions).

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

    K: int
    M: int
    lr: float
    lr_v: float | None = None
    sigma: float = 0.0
    batch: int = 1
    train_second_layer: bool = False
    activation: str = "erf"

    def __post_init__(self) -> None:
        for name in ("K", "M", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.lr_v is None:
            object.__setattr__(self, "lr_v", self.lr)
        if not self.lr_v >= 0:
            raise ValueError(f"lr_v must be >= 0, got {self.lr_v!r}")
        if not self.sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma!r}")
        load(self.activation)  # an unknown activation fails here, naming the known ones

    @property
    def kernels(self) -> ModuleType:
        """The generated kernel module of the activation."""
        return load(self.activation)

    def replace(self, **changes) -> "Setting":
        """A copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def ode_args(self, T, v_star) -> dict:
        """The `args` of the generated `rhs(t, y, args)` for teacher overlaps T and readout v*."""
        return {
            "T": T, "v_star": v_star, "lr": float(self.lr), "lr_v": float(self.lr_v),
            "sigma": float(self.sigma), "batch": float(self.batch),
            "train_v": 1.0 if self.train_second_layer else 0.0,
        }
