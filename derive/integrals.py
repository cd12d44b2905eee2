"""The four Gaussian integrals of the flows, derived in closed form on symbolic covariance blocks.

With u ~ N(0, C) for an r×r block C (docs/conventions.md):

- I2(C) = ⟨g(u_0) g(u_1)⟩,            r = 2
- J2(C) = ⟨g'(u_0) g'(u_1)⟩,          r = 2
- I3(C) = ⟨g'(u_0) u_1 g(u_2)⟩,       r = 3
- I4(C) = ⟨g'(u_0) g'(u_1) g(u_2) g(u_3)⟩, r = 4

A repeated index (I3(a, a, c), I4(a, b, a, b), …) is the same expression on a block with
repeated rows; for smooth activations the closed forms hold on such singular blocks too. For a
step-function g' (ReLU) they do not: the generic closed form, derived with distinct variables,
conditions on δ(u_a) and then meets the other copies of u_a with zero conditional variance, where
terms like δ(u) H(u)ⁿ⁻¹ are ambiguous (H(0) = ½ makes n = 2 right and n ≥ 3 wrong) and the
guarded 0/0 limits are noise-sensitive. So non-smooth integrals get *coincidence variants*: for
every pattern of repeated units, the closed form with those slots' variables identified
(H(u)² = H(u) exactly), selected at run time where the slots hold one unit (equal block entries).

With the teacher's activation g* apart from the student's g, each slot's g or g' is that of its
unit's network: an integral's *signature* has a letter per slot, "s" (student, g), "t" (teacher,
g*) or "-" (the u slot of I3), e.g. I3 "s-t" = ⟨g'(u_0) u_1 g*(u_2)⟩. A student slot and a
teacher slot hold different units, so their coincidence variants are only needed when both
activations are non-smooth (when the student matches the teacher, they are the same function).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import sympy as sp

from .activations import Activation
from .gaussian import NoClosedForm, block_entries, expectation
from .quadrature import NON_SMOOTH, QuadratureTerm, lower_dimension
from .special import PLACKETT_ORDER, SignQuadruple

#: name -> the factor of each slot of its block: g, g' (of the slot's unit's activation) or u.
DEFINITIONS: dict[str, tuple[str, ...]] = {
    "I2": ("g", "g"),
    "J2": ("g_prime", "g_prime"),
    "I3": ("g_prime", "u", "g"),
    "I4": ("g_prime", "g_prime", "g", "g"),
}


def integrand(name: str, activations: tuple[Activation | None, ...], u: tuple[sp.Expr, ...]) -> sp.Expr:
    """The integrand of integral `name` with slot p's factor taken of `activations[p]` (None
    for the u slot) at u[p]."""
    factors = []
    for factor, activation, variable in zip(DEFINITIONS[name], activations, u):
        factors.append(variable if factor == "u" else getattr(activation, factor)(variable))
    return sp.Mul(*factors)


#: Slot pairs whose exchange leaves each integral unchanged, whatever g is.
SYMMETRIC_SLOTS: dict[str, tuple[tuple[int, int], ...]] = {
    "I2": ((0, 1),),
    "J2": ((0, 1),),
    "I3": (),
    "I4": ((0, 1), (2, 3)),
}


def slot_symmetries(name: str) -> list[tuple[int, ...]]:
    """The slot permutations that leave integral `name` unchanged (products of its symmetric
    pair exchanges), the identity first."""
    size = len(DEFINITIONS[name])
    permutations = []
    for chosen in itertools.product((False, True), repeat=len(SYMMETRIC_SLOTS[name])):
        order = list(range(size))
        for (p, q), swap in zip(SYMMETRIC_SLOTS[name], chosen):
            if swap:
                order[p], order[q] = order[q], order[p]
        permutations.append(tuple(order))
    return permutations


def block_symbol(p: int, q: int) -> sp.Symbol:
    """The symbol of entry (p, q), p ≤ q; diagonal entries are variances, hence non-negative."""
    return sp.Symbol(f"c{p}{q}", real=True, nonnegative=(p == q) or None)


def symbolic_block(size: int) -> sp.Matrix:
    """A symmetric size×size matrix of entry symbols c{p}{q}."""
    block = sp.zeros(size, size)
    for p, q in block_entries(size):
        block[p, q] = block[q, p] = block_symbol(p, q)
    return block


def variables(size: int) -> tuple[sp.Symbol, ...]:
    """The block's Gaussian variables u0, …"""
    return sp.symbols(f"u0:{size}", real=True)


@dataclass(frozen=True)
class DerivedIntegral:
    """One integral's closed form on a symbolic block.

    **Arguments:**

    - `name`: "I2", "J2", "I3" or "I4".
    - `size`: the block size r.
    - `integrand`: f(u0, …, u_{r-1}).
    - `expression`: ⟨f⟩ in the entry symbols c{p}{q}, p ≤ q; None when there is no closed form.
    - `provenance`: how the expression was obtained ("derived", and how any special function
      in it is evaluated).
    - `labels`: for a coincidence variant, each slot's representative slot (slots with one label
      hold one unit); empty for the generic form.
    - `variants`: the coincidence variants of a non-smooth integral (see the module docstring).
    - `quadrature`: without a closed form, the quadrature terms whose sum is ⟨f⟩
      (`.quadrature`; their steps are chosen by `.verify.verify_quadrature`).
    """

    name: str
    size: int
    integrand: sp.Expr
    expression: sp.Expr | None
    provenance: str
    labels: tuple[int, ...] = ()
    variants: tuple["DerivedIntegral", ...] = ()
    quadrature: tuple[QuadratureTerm, ...] = ()

    @property
    def arguments(self) -> list[sp.Symbol]:
        return [block_symbol(p, q) for p, q in block_entries(self.size)]


def coincidences(size: int, networks: str | None = None) -> list[tuple[int, ...]]:
    """Labellings of the slots (each slot's representative, the smallest slot of its class) of
    the set partitions with a repeated unit, finest first: a block of the pattern of a labelling
    also satisfies the equalities of every finer one, so applied in this order the last that
    holds is its own. With `networks` (a letter per slot: "s" a student unit, "t" a teacher
    unit, "-" either), no class joins a student slot with a teacher slot."""
    labellings = []
    for assignment in itertools.product(range(size), repeat=size):
        labels = tuple(min(s for s in range(size) if assignment[s] == assignment[slot]) for slot in range(size))
        mixed = networks is not None and any({networks[p], networks[q]} == {"s", "t"}
                                             for p in range(size) for q in range(size) if labels[p] == labels[q])
        if labels not in labellings and len(set(labels)) < size and not mixed:
            labellings.append(labels)
    return sorted(labellings, key=lambda labels: (len(set(labels)), labels), reverse=True)


def _provenance(expression: sp.Expr) -> str:
    if expression.has(SignQuadruple):
        return (
            "derived (with the sign quadruple, an orthant probability, by Plackett's 1-D "
            f"reduction on a {PLACKETT_ORDER}-point Gauss-Legendre rule)"
        )
    return "derived"


def derive_integral(name: str, activations: tuple[Activation | None, ...], networks: str | None = None,
                    key: str | None = None) -> DerivedIntegral:
    """Derive integral `name` with slot p's factor of `activations[p]` (None for the u slot) by
    the rules of `.gaussian`, with its coincidence variants when the integrand is non-smooth
    (restricted by `networks`, see `coincidences`), or, when the rules find no closed
    form, as quadrature terms (the numerical fallback). `key` names it (default `name`)."""
    key = key or name
    size = len(DEFINITIONS[name])
    u = variables(size)
    block = symbolic_block(size)
    f = integrand(name, activations, u)
    try:
        expression = expectation(f, u, block)
    except NoClosedForm as reason:
        terms = tuple(lower_dimension(f, u, block))
        return DerivedIntegral(key, size, f, None, f"quadrature: {reason}", quadrature=terms)
    variants = []
    if f.has(*NON_SMOOTH):
        for labels in coincidences(size, networks):
            identified = integrand(name, activations, tuple(u[label] for label in labels))
            variant = expectation(identified, u, block)
            variants.append(DerivedIntegral(key, size, identified, variant, _provenance(variant), labels))
    return DerivedIntegral(key, size, f, expression, _provenance(expression), (), tuple(variants))
