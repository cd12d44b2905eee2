"""A teacher–student setting: everything the flows depend on except the state."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from nndyn.core import schema, spectrum
from nndyn.core.kernels import Kernels, load
from nndyn.core.schema import parameter

#: The output scalings κ(width): ŷ = κ Σ_k v_k g(λ_k) (the teacher's with its width M).
SCALINGS = {"1": lambda width: 1.0, "1/K": lambda width: 1.0 / width, "1/sqrt(K)": lambda width: 1.0 / math.sqrt(width)}


@dataclass(frozen=True)
class Setting:
    """A teacher–student setting (docs/conventions.md). Each field is a parameter of the schema
    (`nndyn.core.schema`): `nndyn run` configs and `nndyn sweep` grids take the same names
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
    - `activation`: the student's activation g: a built-in ("erf" is g(x) = erf(x/√2); "linear",
      "quadratic", "relu"), or the path of a module written by
      `python -m nndyn.derive --name NAME --expr EXPR --out DIR`.
    - `teacher_activation`: the teacher's activation g*, like `activation` (default: the same);
      apart from it, the pair's mixed integrals must exist (built-in pairs are generated; for
      others, `python -m nndyn.derive ... --teacher-name TNAME [--teacher-expr EXPR] --out DIR`).
    - `output_scaling`: κ in ŷ = κ Σ_k v_k g(λ_k): "1", "1/K" or "1/sqrt(K)" (nn2pp's
      --normalise and --meanfield); the teacher's κ* is the same with M.
    - `feedback`: "backprop" (the first layer's update of unit k carries κ v_k) or "alignment"
      (feedback alignment: it carries κ b_k, b a fixed vector, part of the state,
      `OrderParameters` `b`).
    - `weight_decay`, `weight_decay_v`: λ, λ_v ≥ 0: each SGD step w ← w − (λ/N) w + …, and
      v ← v − (λ_v/N) v + … when v is trained (nn2pp's --wd).
    - `input_spectrum`: None for isotropic inputs x ~ N(0, I), or the spectrum of structured
      inputs x ~ N(0, Σ): a tuple of levels (eigenvalue ρ_ℓ, fraction f_ℓ), Σ f_ℓ = 1
      (docs/conventions.md; `nndyn.core.spectrum.power_law` builds power laws). The order
      parameters are then kept per level (`OrderParameters.Q_levels`, …).
    - `teacher_spectrum`: with an `input_spectrum`, the variance τ_ℓ of the teacher's weights on
      each level's coordinates (one per level; default: 1 on every level), so that a target can
      be aligned with the top eigen-directions: T^ℓ → τ_ℓ f_ℓ I. Only the teacher's draw uses it.
    """

    K: int = parameter(doc="student hidden units", minimum=1)
    M: int = parameter(doc="teacher hidden units", minimum=1)
    lr: float = parameter(doc="first-layer learning rate η (SGD step η/√N)", above=0, flow=True)
    lr_v: float | None = parameter(None, doc="second-layer learning rate η_v (SGD step η_v/N); default: lr",
                                   minimum=0, flow=True)
    sigma: float = parameter(0.0, doc="label-noise standard deviation σ", minimum=0, flow=True)
    batch: int = parameter(1, doc="minibatch size B", minimum=1, flow=True)
    train_second_layer: bool = parameter(False, doc="train the second layer v (else v = v* = 1, fixed)")
    activation: str = parameter("erf", doc="student's activation: erf, linear, quadratic, relu, or DIR/NAME.py")
    teacher_activation: str | None = parameter(None, doc="teacher's activation, like activation; default: the same")
    output_scaling: str = parameter("1", doc="output scaling κ of the student (κ* of the teacher: the same with M)",
                                    choices=tuple(SCALINGS))
    feedback: str = parameter("backprop", doc="first-layer learning rule: backprop or alignment (feedback alignment)",
                              choices=("backprop", "alignment"))
    weight_decay: float = parameter(0.0, doc="weight decay λ of the first layer (w ← w − (λ/N) w per step)",
                                    minimum=0, flow=True)
    weight_decay_v: float = parameter(0.0, doc="weight decay λ_v of a trained second layer", minimum=0, flow=True)
    input_spectrum: tuple | None = parameter(None, doc="levels [[eigenvalue, fraction], ...] of structured inputs "
                                                       "x ~ N(0, Σ); default: isotropic", convert=spectrum.check,
                                           accepts="a list of [eigenvalue > 0, fraction in (0, 1]] pairs, "
                                                   "fractions summing to 1")
    teacher_spectrum: tuple | None = parameter(None, doc="variance of the teacher's weights on each level of "
                                                         "input_spectrum; default: 1 on every level",
                                               convert=spectrum.check_teacher,
                                               accepts="a list of variances >= 0, one per level, not all 0")

    def __post_init__(self) -> None:
        schema.validate(self)
        if self.lr_v is None:
            object.__setattr__(self, "lr_v", self.lr)
        if self.teacher_activation is None:
            object.__setattr__(self, "teacher_activation", self.activation)
        if self.teacher_spectrum is not None and (self.input_spectrum is None
                                                  or len(self.teacher_spectrum) != len(self.input_spectrum)):
            levels, given = 0 if self.input_spectrum is None else len(self.input_spectrum), len(self.teacher_spectrum)
            raise schema.ParameterError("teacher_spectrum", f"teacher_spectrum must be one variance per level of "
                                                            f"input_spectrum ({levels}), got {given}")
        try:
            load(self.activation)  # an unknown activation fails here, naming the known ones
        except ValueError as error:
            raise schema.ParameterError("activation", f"activation: {error}") from None
        try:
            load(self.activation, self.teacher_activation)
        except ValueError as error:
            raise schema.ParameterError("teacher_activation", f"teacher_activation: {error}") from None

    @property
    def kernels(self) -> Kernels:
        """The kernels of the student's and the teacher's activations."""
        return load(self.activation, self.teacher_activation)

    @property
    def structured(self) -> bool:
        """Whether the inputs are structured (an `input_spectrum` is given): order parameters per level."""
        return self.input_spectrum is not None

    @property
    def levels(self) -> int:
        """L, the number of levels of the input spectrum (1 for isotropic inputs)."""
        return 1 if self.input_spectrum is None else len(self.input_spectrum)

    @property
    def kappa(self) -> float:
        """The student's output scaling κ."""
        return SCALINGS[self.output_scaling](self.K)

    @property
    def kappa_star(self) -> float:
        """The teacher's output scaling κ*."""
        return SCALINGS[self.output_scaling](self.M)

    def check_feedback(self, b, K: int | None = None):
        """The feedback vector `b` (..., K) as a float64 array, checked; None for backpropagation
        (where `b` must be None). Raises a ParameterError naming `b` otherwise."""
        if self.feedback == "backprop":
            if b is not None:
                raise schema.ParameterError("b", "b: a feedback vector is given but feedback is 'backprop'")
            return None
        if b is None:
            raise schema.ParameterError("b", "b: feedback = 'alignment' needs the feedback vector b (K,)")
        b = np.asarray(b, dtype=np.float64)
        if b.ndim < 1 or b.shape[-1] != self.K:
            raise schema.ParameterError("b", f"b must have shape (..., K) = (..., {self.K}), got {b.shape}")
        if not np.all(np.isfinite(b)):
            raise schema.ParameterError("b", "b has non-finite entries")
        return b

    def replace(self, **changes) -> "Setting":
        """A copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def ode_args(self, T, v_star, b=None) -> dict:
        """The `args` of the vector field `rhs(t, y, args)` for teacher overlaps T, readout v*
        and, for feedback alignment, the feedback vector b (K,): "T", "v_star", every flow
        parameter of the schema by name (as a float), "kappa" and "kappa_star", "train_v" (1.0
        when the second layer is trained, else 0.0), and "b" for feedback alignment. With
        structured inputs T is per level (L, M, M), and "rho" and "fraction" (L,) hold the
        spectrum."""
        flow = {name: float(getattr(self, name)) for name, rule in schema.parameters(Setting).items() if rule.flow}
        args = {"T": T, "v_star": v_star, **flow, "kappa": self.kappa, "kappa_star": self.kappa_star,
                "train_v": 1.0 if self.train_second_layer else 0.0}
        if self.input_spectrum is not None:
            levels = self.input_spectrum
            args |= {"rho": spectrum.eigenvalues(levels), "fraction": spectrum.fractions(levels)}
        if (b is None) != (self.feedback == "backprop"):
            self.check_feedback(b)  # raises, naming b
        return args if b is None else {**args, "b": b}
