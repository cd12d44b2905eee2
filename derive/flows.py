"""The order-parameter flows as sums of Gaussian integrals: the ODEs' intermediate form.

The model (docs/conventions.md) is declared by its online-SGD step for one minibatch of B
samples (dt = 1/N), in `updates`:

    w_i ← w_i + (1/√N) ⟨F_i x⟩_B − (λ/N) w_i,    F_i = η e_i Δ g'(λ_i),
    v_i ← v_i + (1/N) ⟨G_i⟩_B − (λ_v/N) v_i,      G_i = η_v κ Δ g(λ_i),

with Δ = Σ_c a_c g_c(u_c) + σ ξ over the joint index c (students then teachers; g_c the
activation of unit c's network), a = (−κ v, κ* v*) the signed readout scaled by the output
scalings κ, κ*, and e the feedback vector that carries the error to the first layer: e = κ v
for backpropagation, κ b for feedback alignment. Every variant of the model is a value of these
symbols, so one table serves them all.

Projecting the step on w*_n/N gives ΔR_in = (1/N)[⟨F_i ρ_n⟩_B − λ R_in]; on w_k/N, and adding
the square of the step, ΔQ_ik = (1/N)[⟨F_i λ_k⟩_B + ⟨F_k λ_i⟩_B − 2λ Q_ik] + (1/N²) ⟨F_i x⟩_B·⟨F_k x⟩_B,
in which only the B same-sample pairs (x·x/N → 1) survive as N → ∞, leaving (1/(B N)) ⟨F_i F_k⟩
(the λ² and λη cross terms are O(1/N²)). Dividing by dt:

    dR_in/dt = ⟨F_i u_n⟩ − λ R_in
    dQ_ik/dt = ⟨F_i u_k⟩ + ⟨F_k u_i⟩ + (1/B) ⟨F_i F'_k⟩ − 2λ Q_ik
    dv_i/dt  = ⟨G_i⟩ − λ_v v_i
    ε_g      = ½ ⟨Δ₀ Δ₀'⟩

F' is F with its own joint index (d for c), Δ₀ the noise-free part of Δ.

With structured inputs x ~ N(0, Σ) (docs/conventions.md, "Structured inputs") the overlaps are
kept per level ℓ of Σ's spectrum: R^ℓ = W P_ℓ W*ᵀ/N, Q^ℓ = W P_ℓ Wᵀ/N. Projecting the same step
on P_ℓ w*_n/N replaces the field u_n by its level-ℓ part u^ℓ_n = w*_n P_ℓ x/√N, and the square of
the step keeps x P_ℓ x/N → ρ_ℓ f_ℓ (the *level weight*) in place of x·x/N → 1:

    dR^ℓ_in/dt = ⟨F_i u^ℓ_n⟩ − λ R^ℓ_in
    dQ^ℓ_ik/dt = ⟨F_i u^ℓ_k⟩ + ⟨F_k u^ℓ_i⟩ + (ρ_ℓ f_ℓ/B) ⟨F_i F'_k⟩ − 2λ Q^ℓ_ik

(`flow_expectations(levels=True)`, the table the generator writes). u^ℓ is jointly Gaussian with
the fields u, so ⟨F_i u^ℓ_n⟩ is I3 with a *projected* u slot, on the joint covariance of u and
u^ℓ (Stein's lemma: linear in the slot's covariances ρ_ℓ Ω^ℓ with the other slots). One level of
eigenvalue 1 (u^ℓ = u, ρ_ℓ f_ℓ = 1) is the isotropic model, the flows above. This module expands
those expectations by linearity (⟨ξ⟩ = 0, ⟨ξ²⟩ = 1, ξ independent of u) and names each
monomial's integral, giving a list of `FlowTerm`; monomials without a random factor are
*state terms* (the decay), a coefficient times an order parameter.

Index letters: i, k run over student units, n over teacher units, c, d over all K + M units.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

lr, lr_v, sigma, batch = sp.symbols("lr lr_v sigma batch", positive=True)
kappa = sp.Symbol("kappa", positive=True)
weight_decay, weight_decay_v = sp.symbols("weight_decay weight_decay_v", nonnegative=True)
#: The flow parameters the coefficients are written in, named as the vector field receives them:
#: the fields of nndyn.Setting declared with flow=True, and κ, the student's output scaling.
PARAMETERS = (lr, lr_v, sigma, batch, kappa, weight_decay, weight_decay_v)
#: ρ_ℓ f_ℓ = ⟨x P_ℓ x⟩/N of one level of the input spectrum (1 for isotropic inputs).
level_weight = sp.Symbol("level_weight", positive=True)
xi = sp.Symbol("xi", real=True)
g, g_prime, u = sp.Function("g"), sp.Function("g_prime"), sp.Function("u")
#: The local field of a unit projected on one level of the input spectrum, u^ℓ = w P_ℓ x/√N.
u_level = sp.Function("u_level")
#: Readouts: a the signed scaled readout (K+M,), e the feedback vector (K,).
a, e = sp.IndexedBase("a"), sp.IndexedBase("e")
#: The order parameters, for state terms.
Q, R, v = sp.IndexedBase("Q"), sp.IndexedBase("R"), sp.IndexedBase("v")
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
_KIND_ORDER = {"g_prime": 0, "u": 1, "u_level": 1, "g": 2}


def error_signal(index: sp.Symbol, noise: bool = True) -> sp.Expr:
    """Δ = Σ_index a_index g(u_index) + σ ξ (the sum over the joint index is implicit)."""
    return a[index] * g(index) + (sigma * xi if noise else 0)


def updates(index: sp.Symbol, error: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    """The model: (F, G) of student unit `index` with the error's joint index `error`."""
    return (lr * e[index] * error_signal(error) * g_prime(index),
            lr_v * kappa * error_signal(error) * g(index))


#: The decay rates of the step: w ← w − (λ/N) w, v ← v − (λ_v/N) v.
DECAYS = {"w": weight_decay, "v": weight_decay_v}

#: The names the simulator's step is printed in (arrays of one minibatch, broadcast): the
#: noise-free error s = Σ_c a_c g_c(u_c) (B, 1), the noise ξ (`xi`, B, 1), the error Δ (B, 1), the
#: student's g(λ_i), g'(λ_i) (B, K) and the feedback vector e (K,).
signal, error, g_i, g_prime_i, e_i = sp.symbols("signal delta g g_prime e", real=True)


def sgd_step() -> dict[str, sp.Expr]:
    """The SGD step of one minibatch as the simulator evaluates it (module docstring), from the
    same `updates`, `error_signal` and `DECAYS` as the flows: "delta" Δ of the noise-free error
    and the noise; "F" and "G" of every student unit given Δ; "decay" and "decay_v"."""
    F_i, G_i = updates(i, c)
    on_arrays = {error_signal(c): error, e[i]: e_i, g(i): g_i, g_prime(i): g_prime_i}
    return {
        "delta": error_signal(c).subs(a[c] * g(c), signal),
        "F": F_i.subs(on_arrays),
        "G": G_i.subs(on_arrays),
        "decay": DECAYS["w"],
        "decay_v": DECAYS["v"],
    }


def flow_expectations(levels: bool = False) -> dict[str, sp.Expr]:
    """The flows before expansion: integrands (whose expectations are taken) plus state terms
    (the decays: Q = W Wᵀ/N decays at twice w's rate). With `levels`, those of one level of a
    structured input (module docstring): the fields projected on the level, u^ℓ, and the square
    of the step weighted by the level weight ρ_ℓ f_ℓ."""
    F_i, G_i = updates(i, c)
    F_k = updates(k, c)[0]
    F_k_other = updates(k, d)[0]
    field, weight = (u_level, level_weight) if levels else (u, 1)
    return {
        "R": F_i * field(n) - DECAYS["w"] * R[i, n],
        "Q": F_i * field(k) + F_k * field(i) + weight * F_i * F_k_other / batch - 2 * DECAYS["w"] * Q[i, k],
        "v": G_i - DECAYS["v"] * v[i],
        "eg": sp.Rational(1, 2) * error_signal(c, noise=False) * error_signal(d, noise=False),
    }


#: The names the random increments are printed in (`increments`): the step's updates of student
#: units i and k (F, G of `sgd_step`, per sample) and the fields of student units i, k and teacher
#: unit n.
INCREMENT_NAMES = {name: sp.Symbol(name, real=True) for name in ("F_i", "F_k", "G_i", "u_i", "u_k", "u_n")}


def increments() -> dict[str, sp.Expr]:
    """The random part ζ of one sample's contribution to N ΔX, per target R, Q, v (docs/conventions.md,
    "Finite N: fluctuations"): the integrand of `flow_expectations` whose expectation is the flow,
    without the decays (deterministic, not part of ζ), with the step's updates and fields named
    per unit (`INCREMENT_NAMES`). A minibatch's ζ is the mean of B samples', so the diffusion
    matrix is D = Cov[ζ]/B over the fields and the noise of one sample."""
    F_i, G_i = updates(i, c)
    F_k, F_k_other = updates(k, c)[0], updates(k, d)[0]
    names = INCREMENT_NAMES
    named = {F_i: names["F_i"], F_k: names["F_k"], F_k_other: names["F_k"], G_i: names["G_i"],
             u(i): names["u_i"], u(k): names["u_k"], u(n): names["u_n"]}
    deterministic = {rate: 0 for rate in DECAYS.values()}
    increment = {target: integrand.subs(deterministic).subs(named)
                 for target, integrand in flow_expectations().items() if target != "eg"}
    for target, expression in increment.items():  # every random factor named: nothing of the step left over
        assert expression.free_symbols <= {*names.values(), batch}, (target, expression)
    return increment


@dataclass(frozen=True)
class FlowTerm:
    """One term of a flow: ``scalar · Σ_summed Π weights · integral(indices)``, or for a state
    term (`integral` None) ``scalar · weights``.

    **Arguments:**

    - `target`: "R", "Q", "v" or "eg".
    - `integral`: "I2", "J2", "I3", "I4", or None for a state term.
    - `indices`: one index letter per slot of the integral's block, e.g. ("i", "n", "c").
    - `weights`: indexed readouts or order parameters with their indices, e.g.
      (("e", "i"), ("a", "c")) or (("Q", "ik"),).
    - `scalar`: the coefficient in the flow parameters (and the level weight).
    - `projected`: the slot of the integral holding a field projected on a level of the input
      spectrum (u^ℓ; `flow_expectations(levels=True)`), or None.
    """

    target: str
    integral: str | None
    indices: tuple[str, ...]
    weights: tuple[tuple[str, str], ...]
    scalar: sp.Expr
    projected: int | None = None

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
            weights.extend([(str(base.base), "".join(map(str, base.indices)))] * int(power))
        elif isinstance(base, sp.core.function.AppliedUndef):
            random_factors.extend([(base.func.__name__, str(base.args[0]))] * int(power))
        else:
            scalar *= factor
    moment = _noise_moment(noise_power)
    if moment == 0:
        return None
    random_factors.sort(key=lambda factor: _KIND_ORDER[factor[0]])
    kinds = tuple(kind for kind, _ in random_factors)
    plain = tuple("u" if kind == "u_level" else kind for kind in kinds)
    return FlowTerm(
        target=target,
        integral=INTEGRALS[plain] if kinds else None,
        indices=tuple(index for _, index in random_factors),
        weights=tuple(weights),
        scalar=scalar * moment,
        projected=kinds.index("u_level") if "u_level" in kinds else None,
    )


def derive_flows(levels: bool = False) -> list[FlowTerm]:
    """All flow terms, target by target, in a deterministic order; with `levels`, those of one
    level of a structured input (`flow_expectations`), which are the isotropic ones where the
    level is the whole input (u^ℓ = u, level weight 1)."""
    terms = []
    for target, integrand in flow_expectations(levels).items():
        for monomial in sp.Add.make_args(sp.expand(integrand)):
            term = _term(target, monomial)
            if term is not None:
                terms.append(term)
    return terms
