"""KernelSpec: everything the template needs, printed; the only thing that leaves derive/."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import sympy as sp

from . import flows
from .activations import Activation, x
from .integrals import DEFINITIONS, SYMMETRIC_SLOTS, DerivedIntegral, block_entries, derive_integral
from .printing import HELPERS, PrintedExpression, print_cse, print_scalar
from .quadrature import QuadratureTerm
from .verify import verify, verify_quadrature

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
DERIVE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_ROOT / "templates"


@dataclass(frozen=True)
class VariantSpec:
    """A coincidence variant, printed: its closed form holds where each slot q of `same` (p, q)
    holds the unit of slot p."""

    suffix: str
    same: tuple[tuple[int, int], ...]
    code: PrintedExpression

    @property
    def condition(self) -> str:
        """Code for: every pair of `same` holds one unit."""
        return " & ".join(f"same_unit(c{p}{p}, c{q}{q}, c{min(p, q)}{max(p, q)})" for p, q in self.same)


@dataclass(frozen=True)
class QuadratureSpec:
    """A quadrature term, printed: ``coefficient * trapezoid(integrand, entries, step)`` with
    `entries` the names of its sub-block's entries and `integrand` a function of `variables`."""

    coefficient: str
    entries: tuple[str, ...]
    variables: tuple[str, ...]
    integrand: PrintedExpression
    step: float


@dataclass(frozen=True)
class IntegralSpec:
    """One block integral, printed: a closed form (`code`, with coincidence `variants` for a
    non-smooth one) or `quadrature` terms. `entries` are the (p, q), p ≤ q, of its arguments."""

    name: str
    size: int
    arguments: tuple[str, ...]
    entries: tuple[tuple[int, int], ...]
    code: PrintedExpression | None
    provenance: str
    verification: str
    variants: tuple[VariantSpec, ...]
    quadrature: tuple[QuadratureSpec, ...]


@dataclass(frozen=True)
class TensorSpec:
    """An integral evaluated on every combination of units: `slots` name each axis's range
    ("S" student, "T" teacher, "J" all units)."""

    name: str
    integral: str
    slots: tuple[str, ...]


@dataclass(frozen=True)
class FoldedSpec:
    """A term symmetric under exchanging each pair of its slots, evaluated on pairs x ≤ y only.

    `ranges` and `weights` give, per pair of slots, the range ("S", "T", "J") of both indices and
    the weight vector whose product w[x] w[y] weights the pair; `free` says whether the first
    pair is the target's (a symmetric matrix) rather than summed.
    """

    integral: str
    ranges: tuple[str, ...]
    weights: tuple[str, ...]
    free: bool


@dataclass(frozen=True)
class TermSpec:
    """A flow term: ``scalar * einsum(subscripts, tensor, *weights)``, or, when `folded` is set,
    ``scalar * folded_contraction(...)``."""

    target: str
    scalar: str
    subscripts: str
    operands: tuple[str, ...]
    folded: FoldedSpec | None


@dataclass(frozen=True)
class KernelSpec:
    """The printed, verified kernels of one activation, with the hash of their inputs."""

    name: str
    description: str
    expression: str
    derivative: str
    g: PrintedExpression
    g_prime: PrintedExpression
    integrals: tuple[IntegralSpec, ...]
    input_hash: str
    command: str

    def uses(self, name: str) -> bool:
        """Whether any printed expression calls `name` (e.g. "jsp.", "safe_arcsin(")."""
        printed = [self.g, self.g_prime, *(integral.code for integral in self.integrals if integral.code),
                   *(variant.code for integral in self.integrals for variant in integral.variants),
                   *(term.integrand for integral in self.integrals for term in integral.quadrature)]
        return any(name in code for p in printed for code in (p.result, *(c for _, c in p.assignments)))

    @property
    def helper_imports(self) -> list[str]:
        """The names the module imports from generated/_blocks.py, sorted."""
        used = [name for name in ("safe_arcsin", *HELPERS.values()) if self.uses(f"{name}(")]
        if any(integral.variants for integral in self.integrals):
            used.append("same_unit")
        if any(integral.quadrature for integral in self.integrals):
            used.append("trapezoid")
        return sorted(["broadcast", *used])


def input_hash(activation: Activation | None = None) -> str:
    """SHA-256 of what a generated module depends on: the activation (None for the shared
    helpers), the derivation's and the templates' sources, and SymPy's version."""
    digest = hashlib.sha256()
    if activation is not None:
        digest.update(f"{activation.name}\n{sp.srepr(activation.expression)}\n".encode())
    digest.update(f"{sp.__version__}\n".encode())
    sources = sorted(DERIVE_DIR.glob("*.py")) + sorted(TEMPLATES_DIR.glob("*.jinja"))
    for path in sources:
        digest.update(f"{path.parent.name}/{path.name}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _tensor(term: flows.FlowTerm) -> TensorSpec:
    slots = tuple(flows.INDEX_RANGES[index] for index in term.indices)
    return TensorSpec(f"{term.integral}_{''.join(slots)}", term.integral, slots)


def _folding(term: flows.FlowTerm) -> FoldedSpec | None:
    """How `term` folds onto pairs x ≤ y of its slots, or None when it does not: every slot must
    be in a symmetric pair of the integral whose two indices share a range, carry one weight
    each of the same name, and are both summed or both free (free ones only in the symmetric Q)."""
    pairs = SYMMETRIC_SLOTS[term.integral]
    if sorted(slot for pair in pairs for slot in pair) != list(range(len(term.indices))):
        return None
    weights = dict((index, name) for name, index in term.weights)
    if len(weights) != len(term.weights):
        return None
    free = flows.TARGETS[term.target]
    ranges, names, frees = [], [], []
    for p, q in pairs:
        x, y = term.indices[p], term.indices[q]
        if (flows.INDEX_RANGES[x] != flows.INDEX_RANGES[y] or weights.get(x) != weights.get(y)
                or weights.get(x) is None or (x in free) != (y in free)):
            return None
        ranges.append(flows.INDEX_RANGES[x])
        names.append(weights[x])
        frees.append(x in free)
    if any(frees[1:]) or (frees[0] and term.target not in flows.SYMMETRIC_TARGETS):
        return None
    return FoldedSpec(term.integral, tuple(ranges), tuple(names), frees[0])


def _term(term: flows.FlowTerm) -> TermSpec:
    subscripts = ",".join(["".join(term.indices)] + [index for _, index in term.weights])
    return TermSpec(
        target=term.target,
        scalar=print_scalar(term.scalar),
        subscripts=f"{subscripts}->{flows.TARGETS[term.target]}",
        operands=(_tensor(term).name,) + tuple(name for name, _ in term.weights),
        folded=_folding(term),
    )


def _variant(variant: DerivedIntegral) -> VariantSpec:
    same = tuple((label, slot) for slot, label in enumerate(variant.labels) if label != slot)
    return VariantSpec("slots_" + "".join(map(str, variant.labels)), same, print_cse(variant.expression))


def _quadrature(term: QuadratureTerm) -> QuadratureSpec:
    entries = tuple(f"c{term.slots[p]}{term.slots[q]}" for p, q in block_entries(len(term.slots)))
    return QuadratureSpec(
        coefficient=print_scalar(term.coefficient),
        entries=entries,
        variables=tuple(f"u{slot}" for slot in term.slots),
        integrand=print_cse(term.integrand.subs({s: sp.Symbol(s.name) for s in term.integrand.free_symbols}), "y"),
        step=term.step,
    )


def _integral(activation: Activation, name: str) -> IntegralSpec:
    derived = derive_integral(activation, name)
    if derived.quadrature:
        derived, verification = verify_quadrature(derived)
        return IntegralSpec(
            name=name,
            size=derived.size,
            arguments=tuple(str(symbol) for symbol in derived.arguments),
            entries=tuple(block_entries(derived.size)),
            code=None,
            provenance=derived.provenance,
            verification=verification,
            variants=(),
            quadrature=tuple(map(_quadrature, derived.quadrature)),
        )
    verification = verify(derived)
    for variant in derived.variants:
        verify(variant)
    if derived.variants:
        verification += f"; the same for its {len(derived.variants)} coincidence variants"
    return IntegralSpec(
        name=name,
        size=derived.size,
        arguments=tuple(str(symbol) for symbol in derived.arguments),
        entries=tuple(block_entries(derived.size)),
        code=print_cse(derived.expression),
        provenance=derived.provenance,
        verification=verification,
        variants=tuple(map(_variant, derived.variants)),
        quadrature=(),
    )


def build_flow_spec() -> tuple[tuple[TensorSpec, ...], tuple[TermSpec, ...]]:
    """The flows' unfolded tensors and printed terms, the same for every activation."""
    terms = flows.derive_flows()
    tensors = {_tensor(term).name: _tensor(term) for term in terms if _folding(term) is None}
    return tuple(tensors.values()), tuple(map(_term, terms))


def build_spec(activation: Activation, command: str) -> KernelSpec:
    """Derive, verify and print every kernel of `activation`."""
    return KernelSpec(
        name=activation.name,
        description=activation.description,
        expression=str(activation.expression),
        derivative=str(activation.derivative),
        g=print_cse(activation.expression.subs(x, sp.Symbol("x"))),
        g_prime=print_cse(activation.derivative.subs(x, sp.Symbol("x"))),
        integrals=tuple(_integral(activation, name) for name in DEFINITIONS),
        input_hash=input_hash(activation),
        command=command,
    )
