"""Saad & Solla's symmetric reduction of the flows, for any K (K a symbol).

The ansatz: a realizable setting (K = M) with T = I, in which student unit j and teacher unit j
share the *label* j and every overlap depends only on the networks of its two units and on
whether their labels agree:

    Q_jj = Q,  Q_jk = C,  R_jj = R,  R_jk = S,  T_jj = 1,  T_jk = 0   (j ≠ k),
    v_j = v,  v*_j = v*.

Relabelling the students and the teachers together is a symmetry of the model and of such a
state, so the flows of derive/flows.py keep the ansatz and those of Q, C, R, S, v close: each is
the flow of one representative entry (Q_00, Q_01, R_00, R_01, v_0), and ε_g is ε_g.

A term's sum over units becomes a sum over *patterns*: each summed index takes a network (both,
for an index over all units) and a label, one of the free indices' labels, one taken by an
earlier summed index, or a new one. A pattern's value is one integral on one block of
(Q, C, R, S, 1, 0); its multiplicity is the number of ways to give its b new labels distinct
values apart from the f labels of the free indices, the falling factorial
(K − f)(K − f − 1)⋯(K − f − b + 1), a polynomial in K. Patterns on the same block (up to the
integral's symmetric slots) are collected, so each target is a short sum of
polynomial-in-K coefficients times distinct integrals, whatever K is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import sympy as sp

from . import flows
from .integrals import DEFINITIONS, block_entries, slot_symmetries

K = sp.Symbol("K", positive=True, integer=True)
kappa_star = sp.Symbol("kappa_star", positive=True)
v_star = sp.Symbol("v_star", real=True)
#: The reduced state, in order.
STATE = sp.symbols("Q C R S v", real=True)
Q, C, R, S, v = STATE
#: Everything a coefficient may depend on besides the flow parameters.
EXTRA = (K, kappa_star, v_star)

#: A unit: its network ("S" student, "T" teacher) and its label.
Unit = tuple[str, int]

#: The reduced targets: name -> (the flow's target, the unit of each of its free indices).
TARGETS: dict[str, tuple[str, dict[str, Unit]]] = {
    "Q": ("Q", {"i": ("S", 0), "k": ("S", 0)}),
    "C": ("Q", {"i": ("S", 0), "k": ("S", 1)}),
    "R": ("R", {"i": ("S", 0), "n": ("T", 0)}),
    "S": ("R", {"i": ("S", 0), "n": ("T", 1)}),
    "v": ("v", {"i": ("S", 0)}),
    "eg": ("eg", {}),
}

#: The overlap of two units by their networks: (same label, different labels).
_OVERLAPS = {"SS": (Q, C), "ST": (R, S), "TT": (sp.Integer(1), sp.Integer(0))}


def overlap(first: Unit, second: Unit) -> sp.Expr:
    """The covariance of the local fields of two units on the ansatz."""
    (network, label), (other, other_label) = sorted((first, second))
    return _OVERLAPS[network + other][0 if label == other_label else 1]


def _weight(name: str, units: tuple[Unit, ...]) -> sp.Expr:
    """A readout or order parameter of derive/flows.py on the ansatz: a = (−κ v, κ* v*) by
    network, e = κ v (backpropagation), Q and R the overlap of their two units, v its value."""
    if name == "a":
        return -flows.kappa * v if units[0][0] == "S" else kappa_star * v_star
    if name == "e":
        return flows.kappa * v
    if name == "v":
        return v
    return overlap(*units)


def patterns(summed: str, free: dict[str, Unit]) -> Iterator[tuple[dict[str, Unit], sp.Expr]]:
    """Every assignment of units to the `summed` index letters, given the units of the `free`
    ones, with its multiplicity (a polynomial in K)."""
    taken = len({label for _, label in free.values()})

    def extend(position: int, units: dict[str, Unit], new: int):
        if position == len(summed):
            yield dict(units), sp.Mul(*(K - taken - j for j in range(new)))
            return
        letter = summed[position]
        span = flows.INDEX_RANGES[letter]
        for network in ("S", "T") if span == "J" else (span,):
            for label in range(taken + new + 1):
                units[letter] = (network, label)
                yield from extend(position + 1, units, new + (label == taken + new))
        units.pop(letter, None)

    yield from extend(0, dict(free), 0)


@dataclass(frozen=True, order=True)
class Call:
    """One integral on one block of the ansatz: `signature` a letter per slot ("s" student,
    "t" teacher, "-" the u slot), `entries` the block's entries (c_pq, p ≤ q, row-major) as names
    of the state or "1", "0"; the canonical one among the integral's symmetric slot orders."""

    integral: str
    signature: str
    entries: tuple[str, ...]


def call(integral: str, units: tuple[Unit, ...]) -> Call:
    """The canonical `Call` of `integral` with its slots filled by `units`."""
    options = []
    for order in slot_symmetries(integral):
        ordered = [units[p] for p in order]
        signature = "".join("-" if factor == "u" else network.lower()
                            for factor, (network, _) in zip(DEFINITIONS[integral], ordered))
        entries = tuple(str(overlap(ordered[p], ordered[q])) for p, q in block_entries(len(ordered)))
        options.append(Call(integral, signature, entries))
    return min(options)


def reduce_flows() -> dict[str, dict[Call | None, sp.Expr]]:
    """The reduced flows: per target of TARGETS, each distinct `Call` (None for the state terms,
    whose coefficient holds the state) with its coefficient, a polynomial in K times the flow
    parameters (and v, κ*, v*), factored."""
    reduced = {}
    for name, (target, free) in TARGETS.items():
        sums: dict[Call | None, sp.Expr] = defaultdict(lambda: sp.Integer(0))
        for term in flows.derive_flows():
            if term.target != target:
                continue
            for units, multiplicity in patterns(term.summed, free):
                weight = sp.Mul(*(_weight(kind, tuple(units[letter] for letter in letters))
                                  for kind, letters in term.weights))
                key = None if term.integral is None else call(term.integral, tuple(units[i] for i in term.indices))
                sums[key] += multiplicity * term.scalar * weight
        reduced[name] = {key: sp.factor(value) for key, value in sums.items() if sp.expand(value) != 0}
    return reduced
