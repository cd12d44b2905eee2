"""The printed specifications that leave the derivation for the templates: a kernel module's
(`KernelSpec`), the flow table's (`FlowSpec`) and the symmetric reduction's (`SymmetricSpec`). Plain data; `.lower`
builds them."""

from __future__ import annotations

from dataclasses import dataclass

from .mixture import Mixture
from .printing import HELPERS, PrintedExpression


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
    """A quadrature term, printed: ``coefficient * trapezoid(integrand, entries, step, radius)``
    with `entries` the names of its sub-block's entries and `integrand` a function of `variables`;
    with `kinks` (the positions of the variables the integrand is non-smooth in), ``coefficient *
    piecewise(integrand, entries, kinks, signs, RADIAL[nodes], step, radius)``."""

    coefficient: str
    entries: tuple[str, ...]
    variables: tuple[str, ...]
    integrand: PrintedExpression
    step: float
    radius: float
    kinks: tuple[int, ...] = ()
    signs: tuple[tuple[int, ...], ...] = ()
    nodes: int = 0


@dataclass(frozen=True)
class IntegralSpec:
    """One block integral, printed: a closed form (`code`, with coincidence `variants` for a
    non-smooth one), `quadrature` terms, or (`mixture`) the module's mixture, as a function
    of the block entries `arguments` (c{p}{q}, p ≤ q, row-major); `name` is its function's name,
    `key` its key in the module's INTEGRALS, as code. A pair module's `mixture` integral names
    each slot's mixture in `mixture_slots` ("STUDENT", "TEACHER", or "None" for the u slot and an
    exact activation's slots, see `KernelSpec.mixture_base`).
    `quadruple`, when set, is the printed sign quadruple of the block itself, which the generic
    closed form (`code`) then takes as its last argument `quadruple`: a function symmetric in
    the slots, which the kernels evaluate once per set of units."""

    name: str
    key: str
    size: int
    arguments: tuple[str, ...]
    code: PrintedExpression | None
    provenance: str
    verification: str
    variants: tuple[VariantSpec, ...]
    quadrature: tuple[QuadratureSpec, ...]
    mixture: bool = False
    quadruple: str | None = None
    mixture_slots: tuple[str, ...] = ()


@dataclass(frozen=True)
class MixtureSpec:
    """The mixture ĝ(x) = c0 + Σ_j a_j B(s_j x) fitted to g (derive/mixture.py), printed: `offset`
    c0 and `terms` ((a_j, s_j), …) as Python literals."""

    fitted: Mixture

    @property
    def offset(self) -> str:
        return repr(self.fitted.offset)

    @property
    def terms(self) -> str:
        return repr(self.fitted.terms)


@dataclass(frozen=True)
class AliasSpec:
    """An integral of a non-canonical signature: `target` (a function name) on `permuted`, the
    block entries of its `arguments` with two symmetric slots exchanged; `key` as code."""

    name: str
    key: str
    target: str
    arguments: tuple[str, ...]
    permuted: tuple[str, ...]


@dataclass(frozen=True)
class KernelSpec:
    """The printed, verified closed forms of one activation, or of the mixed integrals of a
    student activation and a teacher activation apart (a *pair* module: `g` and `g_prime` None,
    `teacher_expression` set, `aliases` for the signatures computed by exchanging slots), with the
    hash of their inputs. `expression`, `derivative` and `teacher_expression` are SymPy's
    printing of g, g' and g* (never text a user typed). A pair module whose mixed integrals use
    the erf mixtures of both activations holds them in `student_mixture` and `teacher_mixture`;
    `radial` holds the radial Gauss rules of its piecewise quadrature terms, (points, printed
    (nodes, weights)). Where one activation is an exact built-in (ReLU, linear, quadratic) and the
    other has an erf mixture (or a smoothed-ReLU mixture), the mixed integrals are the exact one's
    closed forms with erf (or ReLU's with the exact one's) summed over the mixture's terms:
    `mixture_base` names that built-in module (e.g. "relu__erf"), and the exact side's slots are
    "None" in `mixture_slots`. `smoothed` marks a smoothed-ReLU
    mixture (the module's own, or the other activation's in a pair): its integrals are ReLU's
    closed forms (`mixture_base`: "relu", or ReLU's pair module with the exact activation) on the
    blocks S C S + I (nndyn.core.mixture.relu_mixtures)."""

    name: str
    description: str
    expression: str
    derivative: str
    g: PrintedExpression | None
    g_prime: PrintedExpression | None
    integrals: tuple[IntegralSpec, ...]
    input_hash: str
    command: str
    teacher_expression: str | None = None
    aliases: tuple[AliasSpec, ...] = ()
    mixture: MixtureSpec | None = None
    student_mixture: MixtureSpec | None = None
    teacher_mixture: MixtureSpec | None = None
    radial: tuple[tuple[int, str], ...] = ()
    mixture_base: str | None = None
    smoothed: bool = False

    def uses(self, name: str) -> bool:
        """Whether any printed expression calls `name` (e.g. "jsp.", "safe_arcsin(")."""
        printed = [*(p for p in (self.g, self.g_prime) if p is not None),
                   *(integral.code for integral in self.integrals if integral.code),
                   *(PrintedExpression((), integral.quadruple) for integral in self.integrals if integral.quadruple),
                   *(variant.code for integral in self.integrals for variant in integral.variants),
                   *(term.integrand for integral in self.integrals for term in integral.quadrature)]
        return any(name in code for p in printed for code in (p.result, *(c for _, c in p.assignments)))

    @property
    def special_imports(self) -> list[str]:
        """The names the module imports from nndyn.core.special, sorted."""
        used = [name for name in ("safe_arcsin", *HELPERS.values()) if self.uses(f"{name}(")]
        if any(integral.variants for integral in self.integrals):
            used.append("same_unit")
        return sorted(["broadcast", *used])

    @property
    def quadrature_imports(self) -> list[str]:
        """The rules of nndyn.core.quadrature the module calls, sorted."""
        terms = [term for integral in self.integrals for term in integral.quadrature]
        return sorted({"piecewise" if term.kinks else "trapezoid" for term in terms})


@dataclass(frozen=True)
class FoldSpec:
    """How a flow term folds onto pairs x ≤ y of its slots: per slot pair, its range ("S", "T",
    "J") and the readout weighting it; `free` when the first pair is the target's (symmetric Q)."""

    ranges: str
    weights: tuple[str, ...]
    free: bool


@dataclass(frozen=True)
class TermSpec:
    """A flow term, printed: its `coefficient` in the flow `parameters` it uses, the integral on
    the blocks of `ranges` (a range letter per slot), contracted with the readouts `weights` by
    `subscripts`, folded when `fold` is set; with `integral` None, a state term (the coefficient
    times the order parameter in `weights`); `projected`, the slot holding a field projected on a
    level of the input spectrum, or None."""

    target: str
    parameters: tuple[str, ...]
    coefficient: str
    integral: str | None
    ranges: str
    subscripts: str
    weights: tuple[str, ...]
    fold: FoldSpec | None
    projected: int | None = None


@dataclass(frozen=True)
class FlowSpec:
    """The flow table: the flow `parameters` the coefficients use, every term in order, the
    `factors` of each integral's slots ("g", "g_prime", "u"), and the SGD `step` the flows come
    from: (name, arguments, printed expression) per quantity of the step; the `increments`, the
    random part of one sample's increment of each target, likewise (target, arguments, expression)."""

    parameters: tuple[str, ...]
    terms: tuple[TermSpec, ...]
    factors: dict[str, tuple[str, ...]]
    step: tuple[tuple[str, tuple[str, ...], str], ...]
    increments: tuple[tuple[str, tuple[str, ...], str], ...]
    input_hash: str
    command: str


@dataclass(frozen=True)
class ReducedTermSpec:
    """A term of the symmetric reduction, printed: ``coefficient(*arguments) * integral(entries)``
    with the integral of `signature` on the block `entries` (names of the reduced state, or
    "1", "0"), or with `integral` None the `coefficient` alone (a state term)."""

    target: str
    arguments: tuple[str, ...]
    coefficient: str
    integral: str | None
    signature: str
    entries: tuple[str, ...]


@dataclass(frozen=True)
class SymmetricSpec:
    """The symmetric reduction's table: the reduced `state` and the `parameters` (K, the flow
    parameters, κ*, v*) the coefficients take, and every term in order."""

    state: tuple[str, ...]
    parameters: tuple[str, ...]
    terms: tuple[ReducedTermSpec, ...]
    input_hash: str
    command: str
