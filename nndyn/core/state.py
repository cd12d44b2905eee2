"""Order parameters: the macroscopic state shared by the ODE and the measured simulation."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from nndyn.core import spectrum as spectra

#: An array field of the state and of trajectories: a JAX array, or a NumPy one (the values a
#: user passes in, or read back from a file).
Array = jax.Array | np.ndarray


def measure_levels(W, W_teacher, indicators) -> tuple[Array, Array, Array]:
    """The overlaps per level of a structured input, Q^ℓ = W P_ℓ Wᵀ/N (..., L, K, K),
    R^ℓ = W P_ℓ W*ᵀ/N (..., L, K, M), T^ℓ = W* P_ℓ W*ᵀ/N (..., L, M, M), of W (..., K, N) and W*
    (..., M, N), P_ℓ the diagonal projector on level ℓ's coordinates given as `indicators` (L, N)
    (`nndyn.core.spectrum.indicators`). Their sums over ℓ are `measure`'s."""
    N = W.shape[-1]

    def overlap(A, B):
        return (A[..., None, :, :] * indicators[:, None, :]) @ B[..., None, :, :].swapaxes(-1, -2) / N

    return overlap(W, W), overlap(W, W_teacher), overlap(W_teacher, W_teacher)


def measure(W, W_teacher) -> tuple[Array, Array, Array]:
    """The overlaps Q = W Wᵀ/N (..., K, K), R = W W*ᵀ/N (..., K, M), T = W* W*ᵀ/N (..., M, M) of
    student weights W (..., K, N) and teacher weights W* (..., M, N), NumPy or JAX arrays (leading
    dimensions broadcast). The one place order parameters are measured from weights."""
    N = W.shape[-1]
    return (W @ W.swapaxes(-1, -2) / N, W @ W_teacher.swapaxes(-1, -2) / N,
            W_teacher @ W_teacher.swapaxes(-1, -2) / N)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class OrderParameters:
    """Order parameters of a teacher–student pair (docs/conventions.md), as one pytree.

    **Fields:** `Q` (K, K) = W Wᵀ/N, `R` (K, M) = W W*ᵀ/N, `T` (M, M) = W* W*ᵀ/N, `v` (K,) the
    student's second layer, `v_star` (M,) the teacher's, and `b` (K,), for feedback alignment,
    the fixed feedback vector that carries the error to the first layer (None for
    backpropagation). With structured inputs (`Setting.input_spectrum`), the overlaps per level
    of the spectrum, `Q_levels` (L, K, K) = W P_ℓ Wᵀ/N, `R_levels` (L, K, M), `T_levels`
    (L, M, M), whose sums over levels are Q, R, T (None for isotropic inputs). `heads` (H, K),
    for a student with a readout per task (a protocol's multi-head student,
    `nndyn.integrate_protocol`), every readout (v is the one in use), else None. Leading
    dimensions are allowed (e.g. one state per seed) and are shared by all fields.
    """

    Q: Array
    R: Array
    T: Array
    v: Array
    v_star: Array
    b: Array | None = None
    Q_levels: Array | None = None
    R_levels: Array | None = None
    T_levels: Array | None = None
    heads: Array | None = None

    def __iter__(self):
        """Deprecated: `init, heads = trajectory.initial_state()` of a protocol's trajectory
        (once a (state, heads) pair) still unpacks, with a DeprecationWarning; the state now
        carries `heads` itself."""
        if self.heads is None:
            raise TypeError("OrderParameters is not iterable")
        warnings.warn("initial_state() of a protocol is one OrderParameters now, carrying its heads: "
                      "`init = sim.initial_state()` (init.heads), not `init, heads = ...`", DeprecationWarning,
                      stacklevel=2)
        return iter((self, self.heads))

    @classmethod
    def from_weights(cls, W, W_teacher, v=None, v_star=None, *, b=None, spectrum=None,
                     v_teacher=None) -> "OrderParameters":
        """Measure the order parameters of weights W (K, N), W* (M, N), v (K,), v* (M,), with
        the feedback vector b (K,) of feedback alignment when given, and with an input
        `spectrum` (`Setting.input_spectrum`) the overlaps per level, W's coordinates grouped by
        level in the eigenbasis (`nndyn.core.spectrum.level_sizes`).

        v and v* default to ones (the soft committee machine); `v_teacher` is the former name
        of `v_star` (deprecated).
        """
        if v_teacher is not None:
            warnings.warn("from_weights(v_teacher=...) is now v_star=...", DeprecationWarning, stacklevel=2)
            v_star = v_teacher if v_star is None else v_star
        # NumPy, not eager JAX: a fresh process would compile every eager operation.
        W, W_teacher = np.asarray(W, dtype=np.float64), np.asarray(W_teacher, dtype=np.float64)
        if W.ndim != 2 or W_teacher.ndim != 2 or W.shape[1] != W_teacher.shape[1]:
            raise ValueError(
                f"W (K, N) and W_teacher (M, N) must share N; got shapes {W.shape} and {W_teacher.shape}"
            )
        v = np.ones(W.shape[0]) if v is None else np.asarray(v, dtype=np.float64)
        v_star = np.ones(W_teacher.shape[0]) if v_star is None else np.asarray(v_star, dtype=np.float64)
        b = None if b is None else jnp.asarray(np.asarray(b, dtype=np.float64))
        Q, R, T = measure(W, W_teacher)
        levels = {}
        if spectrum is not None:
            indicators = spectra.indicators(spectra.check(spectrum), W.shape[1])
            levels = dict(zip(("Q_levels", "R_levels", "T_levels"),
                              map(jnp.asarray, measure_levels(W, W_teacher, indicators))))
        state = cls(jnp.asarray(Q), jnp.asarray(R), jnp.asarray(T), jnp.asarray(v), jnp.asarray(v_star), b, **levels)
        state.validate()
        return state

    @property
    def K(self) -> int:
        return self.Q.shape[-1]

    @property
    def M(self) -> int:
        return self.T.shape[-1]

    @property
    def omega(self) -> jax.Array:
        """The joint covariance of the local fields, [[Q, R], [Rᵀ, T]], shape (..., K+M, K+M)."""
        top = jnp.concatenate([self.Q, self.R], axis=-1)
        bottom = jnp.concatenate([jnp.swapaxes(self.R, -1, -2), self.T], axis=-1)
        return jnp.concatenate([top, bottom], axis=-2)

    @property
    def structured(self) -> bool:
        """Whether the state holds overlaps per level of a structured input."""
        return self.Q_levels is not None

    def require_levels(self, levels: int | None) -> None:
        """Raise ValueError (one line) unless the state has overlaps per level exactly when a
        setting's inputs are structured, `levels` of them (None: isotropic inputs)."""
        if levels is not None and self.Q_levels is None:
            raise ValueError("the setting has an input_spectrum but the state has no overlaps per level: measure "
                             "them with OrderParameters.from_weights(..., spectrum=setting.input_spectrum)")
        if levels is None and self.Q_levels is not None:
            raise ValueError("the state has overlaps per level but the setting's inputs are isotropic (no "
                             "input_spectrum)")
        if levels is not None and self.Q_levels is not None and self.Q_levels.shape[-3] != levels:
            raise ValueError(f"the state has {self.Q_levels.shape[-3]} levels but the setting's input_spectrum "
                             f"has {levels}")

    def as_ode_state(self) -> dict:
        """The `y` of the generated `rhs(t, y, args)`: Q, R and v, with Q and R per level for
        structured inputs."""
        if self.structured:
            return {"Q": self.Q_levels, "R": self.R_levels, "v": self.v}
        return {"Q": self.Q, "R": self.R, "v": self.v}

    def validate(self, tolerance: float = 1e-10) -> None:
        """Raise ValueError naming the problem: inconsistent shapes, non-finite or asymmetric
        entries, or a joint covariance Ω that is not positive semi-definite."""
        K, M = self.Q.shape[-1], self.T.shape[-1]
        leading = self.Q.shape[:-2]
        expected = {"Q": (K, K), "R": (K, M), "T": (M, M), "v": (K,), "v_star": (M,)}
        if self.b is not None:
            expected["b"] = (K,)
        if self.heads is not None:
            expected["heads"] = (self.heads.shape[-2] if self.heads.ndim >= 2 else 0, K)
        levels = (self.Q_levels, self.R_levels, self.T_levels)
        if any(level is None for level in levels) and not all(level is None for level in levels):
            raise ValueError("Q_levels, R_levels and T_levels are given together or not at all")
        if self.Q_levels is not None:
            L = self.Q_levels.shape[-3] if self.Q_levels.ndim >= 3 else 0
            expected |= {"Q_levels": (L, K, K), "R_levels": (L, K, M), "T_levels": (L, M, M)}
        for name, shape in expected.items():
            actual = getattr(self, name).shape
            if actual != leading + shape:
                raise ValueError(f"{name} has shape {actual}; expected {leading + shape} for K={K}, M={M}")
        if K < 1 or M < 1:
            raise ValueError(f"K and M must be >= 1, got K={K}, M={M}")
        for name in expected:
            if not np.all(np.isfinite(np.asarray(getattr(self, name)))):
                raise ValueError(f"{name} has non-finite entries")
        Q, R, T = (np.asarray(getattr(self, name)) for name in ("Q", "R", "T"))
        omega = np.block([[Q, R], [np.swapaxes(R, -1, -2), T]])
        scale = max(1.0, float(np.max(np.abs(omega))))
        if not np.allclose(omega, np.swapaxes(omega, -1, -2), atol=tolerance * scale, rtol=0):
            raise ValueError("Q and T must be symmetric")
        smallest = float(np.min(np.linalg.eigvalsh(omega)))
        if smallest < -tolerance * scale:
            raise ValueError(
                f"the joint covariance Omega = [[Q, R], [R^T, T]] is not positive semi-definite "
                f"(smallest eigenvalue {smallest:.3g}); no weights have these order parameters"
            )
        if self.Q_levels is None:
            return
        Q_l, R_l, T_l = (np.asarray(level) for level in levels)
        for name, total, level in (("Q", Q, Q_l), ("R", R, R_l), ("T", T, T_l)):
            if not np.allclose(level.sum(axis=-3), total, atol=tolerance * scale * level.shape[-3] ** 0.5, rtol=1e-12):
                raise ValueError(f"{name}_levels does not sum over levels to {name}")
        omega_l = np.block([[Q_l, R_l], [np.swapaxes(R_l, -1, -2), T_l]])
        smallest = float(np.min(np.linalg.eigvalsh(0.5 * (omega_l + np.swapaxes(omega_l, -1, -2)))))
        if smallest < -tolerance * scale:
            raise ValueError(f"a level's joint covariance [[Q_l, R_l], [R_l^T, T_l]] is not positive semi-definite "
                             f"(smallest eigenvalue {smallest:.3g}); no weights have these order parameters")
