"""The order-parameter flows as sums of Gaussian integrals: the ODEs' intermediate form.

Starting point, the online-SGD step of docs/conventions.md for one minibatch of B samples (dt = 1/N):

    w_i ← w_i + (η/√N) v_i ⟨Δ g'(λ_i) x⟩_B,     v_i ← v_i + (η_v/N) ⟨Δ g(λ_i)⟩_B.

Projecting the step on w*_n/N gives ΔR_in = (η/N) v_i ⟨Δ g'(λ_i) ρ_n⟩_B; on w_k/N, and adding the
square of the step, ΔQ_ik = (η/N)[v_i ⟨Δ g'(λ_i) λ_k⟩_B + v_k ⟨Δ g'(λ_k) λ_i⟩_B]
+ (η²/N²) v_i v_k ⟨Δ g'(λ_i) x⟩_B·⟨Δ g'(λ_k) x⟩_B, in which only the B same-sample pairs
(x·x/N → 1) survive as N → ∞, leaving (η²/(B N)) v_i v_k ⟨Δ² g'(λ_i) g'(λ_k)⟩. Dividing by dt:

    dR_in/dt = η v_i ⟨Δ g'(u_i) u_n⟩
    dQ_ik/dt = η v_i ⟨Δ g'(u_i) u_k⟩ + η v_k ⟨Δ g'(u_k) u_i⟩ + (η²/B) v_i v_k ⟨Δ Δ' g'(u_i) g'(u_k)⟩
    dv_i/dt  = η_v ⟨Δ g(u_i)⟩
    ε_g      = ½ ⟨Δ₀ Δ₀'⟩

with Δ = Σ_c a_c g(u_c) + σ ξ over the joint index c (students then teachers, a = (−v, v*)),
Δ' the same sum over a second joint index d, and Δ₀ the noise-free part. This module expands
those expectations by linearity (⟨ξ⟩ = 0, ⟨ξ²⟩ = 1, ξ independent of u) and names each monomial's
integral, giving a list of :class:`FlowTerm`.

Index letters: i, k run over student units, n over teacher units, c, d over all K + M units.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

lr, lr_v, sigma, batch = sp.symbols("lr lr_v sigma batch", positive=True)
#: The flow parameters the coefficients are written in, named as the fields of nndyn.Setting
#: declared with flow=True (the vector field receives them by these names).
PARAMETERS = (lr, lr_v, sigma, batch)
xi = sp.Symbol("xi", real=True)
g, g_prime, u = sp.Function("g"), sp.Function("g_prime"), sp.Function("u")
v, a = sp.IndexedBase("v"), sp.IndexedBase("a")
i, k, n, c, d = sp.symbols("i k n c d", integer=True)

#: The range of each index letter: "S" student units, "T" teacher units, "J" all units.
INDEX_RANGES = {"i": "S", "k": "S", "n": "T", "c": "J", "d": "J"}

#: Free indices of each target, in the order of its array axes.
TARGETS = {"R": "in", "Q": "ik", "v": "i", "eg": ""}

#: Targets that are symmetric matrices.
SYMMETRIC_TARGETS = ("Q",)

#: Factor kinds of each integral, in the order of its block (docs/conventions.md).
INTEGRALS = {
    ("g", "g"): "I2",
    ("g_prime", "g_prime"): "J2",
    ("g_prime", "u", "g"): "I3",
    ("g_prime", "g_prime", "g", "g"): "I4",
}
_KIND_ORDER = {"g_prime": 0, "u": 1, "g": 2}


def error_signal(index: sp.Symbol) -> sp.Expr:
    """Δ = Σ_index a_index g(u_index) + σ ξ (the sum over the joint index is implicit)."""
    return a[index] * g(index) + sigma * xi


def flow_expectations() -> dict[str, sp.Expr]:
    """The integrands whose expectations are the flows, before expansion."""
    return {
        "R": lr * v[i] * error_signal(c) * g_prime(i) * u(n),
        "Q": lr * v[i] * error_signal(c) * g_prime(i) * u(k)
        + lr * v[k] * error_signal(c) * g_prime(k) * u(i)
        + lr**2 / batch * v[i] * v[k] * error_signal(c) * error_signal(d) * g_prime(i) * g_prime(k),
        "v": lr_v * error_signal(c) * g(i),
        "eg": sp.Rational(1, 2) * (a[c] * g(c)) * (a[d] * g(d)),
    }


@dataclass(frozen=True)
class FlowTerm:
    """One term of a flow: ``scalar · Σ_summed Π weights · integral(indices)``.

    **Arguments:**

    - `target`: "R", "Q", "v" or "eg".
    - `integral`: "I2", "J2", "I3" or "I4".
    - `indices`: one index letter per slot of the integral's block, e.g. ("i", "n", "c").
    - `weights`: indexed second-layer weights, e.g. (("v", "i"), ("a", "c")).
    - `scalar`: the coefficient in lr, lr_v, sigma, batch.
    """

    target: str
    integral: str
    indices: tuple[str, ...]
    weights: tuple[tuple[str, str], ...]
    scalar: sp.Expr

    @property
    def summed(self) -> str:
        """Index letters summed over (those not free in the target)."""
        letters = "".join(self.indices) + "".join(index for _, index in self.weights)
        return "".join(sorted(set(letters) - set(TARGETS[self.target])))


def _noise_moment(power: int) -> int:
    return {0: 1, 1: 0, 2: 1}[power]


def _term(target: str, monomial: sp.Expr) -> FlowTerm | None:
    random_factors, weights, scalar = [], [], sp.Integer(1)
    noise_power = 0
    for factor in sp.Mul.make_args(monomial):
        base, power = factor.as_base_exp()
        if base == xi:
            noise_power += int(power)
        elif isinstance(base, sp.Indexed):
            weights.extend([(str(base.base), str(base.indices[0]))] * int(power))
        elif isinstance(base, sp.core.function.AppliedUndef):
            random_factors.extend([(base.func.__name__, str(base.args[0]))] * int(power))
        else:
            scalar *= factor
    moment = _noise_moment(noise_power)
    if moment == 0:
        return None
    random_factors.sort(key=lambda factor: _KIND_ORDER[factor[0]])
    kinds = tuple(kind for kind, _ in random_factors)
    return FlowTerm(
        target=target,
        integral=INTEGRALS[kinds],
        indices=tuple(index for _, index in random_factors),
        weights=tuple(weights),
        scalar=scalar * moment,
    )


def derive_flows() -> list[FlowTerm]:
    """All flow terms, target by target, in a deterministic order."""
    terms = []
    for target, integrand in flow_expectations().items():
        for monomial in sp.Add.make_args(sp.expand(integrand)):
            term = _term(target, monomial)
            if term is not None:
                terms.append(term)
    return terms
