"""Lowering: derive, verify and print everything a template needs into a `.spec`."""

from __future__ import annotations

import itertools

import sympy as sp

from . import budget, flows, symmetric
from .activations import BUILTINS, Activation, x
from .hashing import flow_hash, kernel_hash, symmetric_hash
from .integrals import (
    DEFINITIONS,
    SYMMETRIC_SLOTS,
    DerivedIntegral,
    block_entries,
    derive_integral,
    integrand,
    slot_symmetries,
    variables,
)
from .mixture import Mixture
from .printing import print_cse, print_scalar
from .quadrature import NON_SMOOTH, RADIUS, QuadratureError, QuadratureTerm, radial
from .spec import (
    AliasSpec,
    FlowSpec,
    FoldSpec,
    IntegralSpec,
    KernelSpec,
    MixtureSpec,
    QuadratureSpec,
    ReducedTermSpec,
    SymmetricSpec,
    TermSpec,
    VariantSpec,
)
from .special import SignQuadruple
from .verify import RANDOM_BLOCKS, verify, verify_exact_with_mixture, verify_mixture, verify_mixtures, verify_quadrature

#: The argument of a generic closed form that stands for the sign quadruple of its own block.
QUADRUPLE = sp.Symbol("quadruple")


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
        radius=RADIUS,
        kinks=term.kinks,
        signs=term.signs,
        nodes=term.nodes,
    )


def _radial(integrals: tuple[IntegralSpec, ...]) -> tuple[tuple[int, str], ...]:
    """The radial Gauss rules the piecewise terms of `integrals` use: (points, printed rule)."""
    points = sorted({term.nodes for integral in integrals for term in integral.quadrature if term.kinks})
    return tuple((n, repr(radial(n))) for n in points)


def check(task: tuple[DerivedIntegral, int | None, int | None]) -> tuple[DerivedIntegral, str]:
    """One part of the verification of a derived form (`.verify`), `task` = (form, block,
    entry), or of a quadrature form (block None) at all of its blocks: the form (with its
    quadrature steps chosen, when it has quadrature terms) and the record of its checks. Raises
    when a check fails."""
    form, block, entry = task
    if form.quadrature:
        return verify_quadrature(form)
    return form, verify(form, block, entry)


def _parts(form: DerivedIntegral) -> list[tuple[int | None, int | None]]:
    """The (block, entry) parts of `form`'s verification (`check`): per random block, Price's
    identity entry by entry and the rest; one part for a quadrature form."""
    if form.quadrature:
        return [(None, None)]
    entries = (*range(len(block_entries(form.size))), None)
    return [(block, entry) for block in range(RANDOM_BLOCKS) for entry in entries]


def _checks(forms: tuple[DerivedIntegral, ...], map) -> list[tuple[DerivedIntegral, str]]:
    """`check` of each of `forms` over `map`, part by part (`_parts`), so that a process pool
    checks one form's parts side by side (a sign quadruple's I4 is one form whose checks take a
    minute); per form, the form and the record of its checks."""
    parts = [_parts(form) for form in forms]
    results = list(map(check, [(form, *part) for form, each in zip(forms, parts) for part in each]))
    firsts = (0, *itertools.accumulate(len(each) for each in parts[:-1]))  # `map` is the caller's
    return [results[first] for first in firsts]


def _integral(derived: DerivedIntegral, checked: list[tuple[DerivedIntegral, str]], key: str) -> IntegralSpec:
    """The spec of a derived integral, from the checks of its generic form and its variants;
    `key` is its key in the module's INTEGRALS, as code."""
    (form, verification), variants = checked[0], [variant for variant, _ in checked[1:]]
    arguments = tuple(str(symbol) for symbol in form.arguments)
    if form.quadrature:
        return IntegralSpec(form.name, key, form.size, arguments, None, form.provenance, verification, (),
                            tuple(map(_quadrature, form.quadrature)))
    if variants:
        verification += f"; the same for its {len(variants)} coincidence variants"
    expression, quadruple = form.expression, None
    own = SignQuadruple(*form.arguments) if form.size == 4 else None
    if variants and own is not None and expression.has(own):  # evaluated once per set of units by the kernels
        expression, quadruple = expression.subs(own, QUADRUPLE), print_scalar(own)
    return IntegralSpec(form.name, key, form.size, arguments, print_cse(expression), form.provenance,
                        verification, tuple(map(_variant, variants)), (), quadruple=quadruple)


def _reporter(report):
    """`say(kind, text)`: enter a step of the time budget (`.budget`, kind "step") and tell
    `report(kind, text)`, when given, of each step and each integral's result (kind "result")."""
    def say(kind: str, text: str) -> None:
        if kind == "step":
            budget.step(text)
        if report is not None:
            report(kind, text)
    return say


def _found(form: DerivedIntegral) -> str:
    """What the rules found for `form`, in words."""
    if form.expression is None:
        return f"no closed form ({form.provenance.removeprefix('quadrature: ')})"
    variants = f", with {len(form.variants)} coincidence variants" if form.variants else ""
    return f"a closed form{variants}"


def _verified(form: DerivedIntegral, key: str, say, map) -> IntegralSpec:
    """The spec of a derived form after verifying it and its variants (`check` over `map`)."""
    checks = "the quadrature's step against its reference" if form.quadrature else "Price's identity and Monte Carlo"
    say("step", f"{key.strip(chr(34))}: verifying {1 + len(form.variants)} form(s) by {checks}")
    return _integral(form, _checks((form, *form.variants), map), key)


def kernel_spec(activation: Activation, command: str, map=map, report=None) -> KernelSpec:
    """Derive, verify and print every integral of `activation`. Each integral's forms (its
    generic closed form and coincidence variants) are verified by `map(check, tasks)`: pass a
    process pool's map to verify them in parallel (the results do not depend on it). Integrals
    without a closed form take the erf or smoothed-ReLU mixture where g admits one (`.mixture`), else
    quadrature.
    `report(kind, text)`, when given, hears each step ("step": which integral, which rule) and
    each integral's result with the accuracy its checks reached ("result"); every step checks
    the time budget (`.budget`)."""
    say = _reporter(report)
    derived = []
    for name, factors in DEFINITIONS.items():
        say("step", f"{name} of {activation.name}: the closed-form rules")
        derived.append(derive_integral(name, tuple(None if factor == "u" else activation for factor in factors)))
        say("step", f"{name}: {_found(derived[-1])}")
    fallback = [form for form in derived if form.quadrature]
    if fallback:
        say("step", f"{', '.join(form.name for form in fallback)}: an erf mixture, if g is bounded and odd about "
                    "g(0), or a smoothed-ReLU mixture, if g vanishes at -inf and rises linearly (softplus), "
                    "checked by the trapezoidal rule")
    fitted = verify_mixture(activation, fallback, map) if fallback else None
    integrals = []
    for form in derived:  # one integral at a time: a failure stops before the costlier ones
        if form.quadrature and fitted is not None:
            integrals.append(_mixture_integral(form, fitted[0].mixture, fitted[1][form.name]))
        else:
            integrals.append(_verified(form, f'"{form.name}"', say, map))
        say("result", f"{form.name}: {integrals[-1].provenance}; {integrals[-1].verification}")
    return KernelSpec(
        name=activation.name,
        description=activation.description,
        expression=str(activation.expression),
        derivative=str(activation.derivative),
        g=print_cse(activation.expression.subs(x, sp.Symbol("x"))),
        g_prime=print_cse(activation.derivative.subs(x, sp.Symbol("x"))),
        integrals=tuple(integrals),
        input_hash=kernel_hash(activation),
        command=command,
        mixture=None if fitted is None else MixtureSpec(fitted[0].mixture),
        radial=_radial(tuple(integrals)),
        mixture_base="relu" if fitted is not None and fitted[0].mixture.base == "relu" else None,
        smoothed=fitted is not None and fitted[0].mixture.base == "relu",
    )


def _mixture_integral(form: DerivedIntegral, mixture: Mixture, verification: str) -> IntegralSpec:
    """The spec of an integral evaluated by the module's mixture."""
    provenance = mixture.kind + form.provenance.removeprefix("quadrature")
    arguments = tuple(str(symbol) for symbol in form.arguments)
    return IntegralSpec(form.name, f'"{form.name}"', form.size, arguments, None, provenance, verification, (), (),
                        mixture=True)


def _function_name(name: str, signature: str) -> str:
    return f"{name}_{signature.replace('-', 'u')}"


def mixed_signatures() -> dict[tuple[str, str], tuple[str, tuple[int, ...]]]:
    """Every signature of a mixed integral that the flow table evaluates with teacher and
    student activations apart: (integral, signature) -> (canonical signature, slot permutation
    that maps it there). A slot of range J takes either network (its student and teacher parts,
    nndyn.core.flows), S is "s", T is "t", the u slot "-"; only signatures with both "s" and "t"
    are mixed (the others are the student's or the teacher's own integrals)."""
    signatures = {}
    for term in flows.derive_flows():
        if term.integral is None:
            continue
        factors = DEFINITIONS[term.integral]
        options = [("s", "t") if flows.INDEX_RANGES[index] == "J" else (flows.INDEX_RANGES[index].lower(),)
                   for index in term.indices]
        for letters in itertools.product(*options):
            signature = "".join("-" if factor == "u" else letter for factor, letter in zip(factors, letters))
            if {"s", "t"} <= set(signature):
                canonical, order = min(("".join(signature[p] for p in order), order)
                                       for order in slot_symmetries(term.integral))
                signatures[term.integral, signature] = (canonical, order)
    return dict(sorted(signatures.items()))


def _alias(name: str, signature: str, canonical: str, order: tuple[int, ...]) -> AliasSpec:
    """Integral `name` of `signature` as its `canonical` form on the block with slots permuted:
    the canonical slot q holds the unit of slot order[q] (a symmetric exchange)."""
    arguments = tuple(f"c{p}{q}" for p, q in block_entries(len(order)))
    permuted = tuple(f"c{min(order[p], order[q])}{max(order[p], order[q])}" for p, q in block_entries(len(order)))
    return AliasSpec(_function_name(name, signature), f'("{name}", "{signature}")',
                     _function_name(name, canonical), arguments, permuted)


def pair_spec(student: Activation, teacher: Activation, command: str, map=map, report=None,
              mixtures: tuple[Mixture | None, Mixture | None] = (None, None)) -> KernelSpec:
    """Derive, verify and print the mixed integrals of a student activation and a teacher
    activation apart (`mixed_signatures`), like `kernel_spec` (`report` too). Coincidence
    variants never join a student slot with a teacher slot unless both activations are non-smooth.
    A mixed integral without a closed form is evaluated by `mixtures`, the student's and the
    teacher's erf mixtures (their modules' fits; erf's is exact), where both are given and agree
    with the trapezoidal rule (`.verify.verify_mixtures`); where one activation is an exact
    built-in (ReLU, linear, quadratic: its closed forms with erf are a built-in pair module) and
    the other has an odd erf mixture, or where one is an exact built-in and the other has a
    smoothed-ReLU mixture (softplus: ReLU's closed forms with the exact one's), by that module's
    closed forms summed over the mixture's terms (`exact_base`, `.verify.verify_exact_with_mixture`);
    else by quadrature."""
    say = _reporter(report)
    used = False
    base, exact = exact_base(student, teacher, mixtures) or (None, None)
    mixed_side = {"s": mixtures[1], "t": mixtures[0]}.get(exact or "")  # the mixture summed in `base`
    both_rough = all(activation.derivative.has(*NON_SMOOTH) for activation in (student, teacher))
    integrals, aliases, done = [], [], set()
    for (name, signature), (canonical, order) in mixed_signatures().items():
        if signature != canonical:
            aliases.append(_alias(name, signature, canonical, order))
        if (name, canonical) in done:
            continue
        done.add((name, canonical))
        slots = tuple({"s": student, "t": teacher, "-": None}[letter] for letter in canonical)
        key = f'("{name}", "{canonical}")'
        say("step", f"{key} of {student.name} with {teacher.name}: the closed-form rules")
        try:
            derived, refusal = derive_integral(name, slots, None if both_rough else canonical,
                                               _function_name(name, canonical)), None
        except QuadratureError as error:  # no rule for the exact integrand; the mixture's may serve
            if base is None:
                raise
            derived, refusal = DerivedIntegral(
                _function_name(name, canonical), len(canonical), integrand(name, slots, variables(len(canonical))),
                None, "quadrature: no closed-form rule, and more kinked variables than a quadrature rule takes"), error
        say("step", f"{key}: {_found(derived)}")
        mixed = _mixed_mixture(name, canonical, derived, mixtures, say, map, (base, exact), slots)
        if mixed is None and refusal is not None:
            raise refusal
        used |= mixed is not None
        integrals.append(mixed or _verified(derived, key, say, map))
        say("result", f"{key}: {integrals[-1].provenance}; {integrals[-1].verification}")
    return KernelSpec(
        name=f"{student.name}__{teacher.name}",
        description=f"the student activation {student.name} with the teacher activation {teacher.name}",
        expression=str(student.expression),
        derivative=str(student.derivative),
        g=None,
        g_prime=None,
        integrals=tuple(integrals),
        input_hash=kernel_hash(student, teacher),
        command=command,
        teacher_expression=str(teacher.expression),
        aliases=tuple(aliases),
        student_mixture=MixtureSpec(mixtures[0]) if used and mixtures[0] else None,
        teacher_mixture=MixtureSpec(mixtures[1]) if used and mixtures[1] else None,
        radial=_radial(tuple(integrals)),
        mixture_base=base if used else None,
        smoothed=used and mixed_side is not None and mixed_side.base == "relu",
    )


def exact_base(student: Activation, teacher: Activation, mixtures) -> tuple[str, str] | None:
    """(the built-in module whose closed forms the mixed integrals take, summed over the other
    activation's mixture, the letter, "s" or "t", of the exact activation's slots): for an exact
    built-in B and a smoothed-ReLU mixture (softplus), ReLU's closed forms with B's, "relu" for
    B = ReLU, else "B__relu" (B the student) or "relu__B"; for an exact built-in B other than erf
    and an odd erf mixture (offset 0: tanh, not the sigmoid), "B__erf" or "erf__B"; None where the
    activations are not such a pair."""
    for exact, other, mixture, letter in ((student, teacher, mixtures[1], "s"), (teacher, student, mixtures[0], "t")):
        if exact.name not in BUILTINS or exact != BUILTINS[exact.name] or mixture is None:
            continue
        if mixture.base == "relu":
            if exact.name == "relu":
                return "relu", letter
            return (f"{exact.name}__relu" if letter == "s" else f"relu__{exact.name}"), letter
        if exact.name != "erf" and mixture.offset == 0 and other != BUILTINS["erf"]:
            return ("{}__erf" if letter == "s" else "erf__{}").format(exact.name), letter
    return None


def _mixed_mixture(name: str, canonical: str, derived: DerivedIntegral, mixtures, say, map,
                   route: tuple[str | None, str | None], activations: tuple) -> IntegralSpec | None:
    """The spec of a mixed integral without a closed form evaluated by the erf mixtures of its
    slots' activations, when both have one and it agrees with the trapezoidal rule, or by the
    closed forms of a built-in module summed over the one mixture's terms (`route`: that module
    and the letter of the exact activation's slots, `exact_base`); else None. `activations` holds
    the slots' activations (None for the u slot)."""
    if derived.expression is not None:
        return None
    base, exact = route
    slots = tuple(None if letter == "-" else mixtures["st".index(letter)] for letter in canonical)
    if base is not None:
        slots = tuple(None if letter == exact else slot for slot, letter in zip(slots, canonical))
        kind = next(slot for slot in slots if slot is not None).kind
        say("step", f"{derived.name}: {base}'s closed forms over the terms of the other activation's {kind}, "
                    "checked by Monte Carlo of the difference")
        record = verify_exact_with_mixture(name, derived, activations, slots, base)
    elif any(slot is None or slot.base != "erf" for slot, letter in zip(slots, canonical) if letter != "-"):
        return None
    else:
        kind = "erf mixtures"
        say("step", f"{derived.name}: the erf mixtures of both activations, checked against the trapezoidal rule")
        record = verify_mixtures(name, derived, slots, map)
    if record is None:
        return None
    names = tuple("None" if slot is None else {"s": "STUDENT", "t": "TEACHER"}[letter]
                  for slot, letter in zip(slots, canonical))
    provenance = (kind if base is None else f"{kind} in {base}'s closed forms") + \
        derived.provenance.removeprefix("quadrature")
    return IntegralSpec(derived.name, f'("{name}", "{canonical}")', derived.size,
                        tuple(str(symbol) for symbol in derived.arguments), None, provenance, record, (), (),
                        mixture=True, mixture_slots=names)


def _fold(term: flows.FlowTerm) -> FoldSpec | None:
    """How `term` folds onto pairs x ≤ y of its slots, or None when it does not: every slot must
    be in a symmetric pair of the integral whose two indices share a range, carry one readout
    each of the same name, and are both summed or both free (free ones only in the symmetric Q)."""
    if term.integral is None:
        return None
    pairs = SYMMETRIC_SLOTS[term.integral]
    if sorted(slot for pair in pairs for slot in pair) != list(range(len(term.indices))):
        return None
    weights = {index: name for name, index in term.weights}
    if len(weights) != len(term.weights):
        return None
    free = flows.TARGETS[term.target]
    ranges, names, frees = [], [], []
    for p, q in pairs:
        a, b = term.indices[p], term.indices[q]
        if (flows.INDEX_RANGES[a] != flows.INDEX_RANGES[b] or weights.get(a) != weights.get(b)
                or weights.get(a) is None or (a in free) != (b in free)):
            return None
        ranges.append(flows.INDEX_RANGES[a])
        names.append(weights[a])
        frees.append(a in free)
    if any(frees[1:]) or (frees[0] and term.target not in flows.SYMMETRIC_TARGETS):
        return None
    return FoldSpec("".join(ranges), tuple(names), frees[0])


def _term(term: flows.FlowTerm) -> TermSpec:
    subscripts = ",".join(["".join(term.indices)] * (term.integral is not None) + [index for _, index in term.weights])
    return TermSpec(
        target=term.target,
        parameters=tuple(str(p) for p in (*flows.PARAMETERS, flows.level_weight) if term.scalar.has(p)),
        coefficient=print_scalar(term.scalar),
        integral=term.integral,
        ranges="".join(flows.INDEX_RANGES[index] for index in term.indices),
        subscripts=f"{subscripts}->{flows.TARGETS[term.target]}",
        weights=tuple(name for name, _ in term.weights),
        fold=_fold(term),
        projected=term.projected,
    )


def flow_spec(command: str) -> FlowSpec:
    """The flow table, the same for every activation."""
    def printed(expressions: dict[str, sp.Expr]) -> tuple[tuple[str, tuple[str, ...], str], ...]:
        return tuple((name, tuple(sorted(map(str, expression.free_symbols))), print_scalar(expression))
                     for name, expression in expressions.items())

    return FlowSpec(tuple(str(p) for p in (*flows.PARAMETERS, flows.level_weight)),
                    tuple(map(_term, flows.derive_flows(levels=True))),
                    dict(DEFINITIONS), printed(flows.sgd_step()), printed(flows.increments()), flow_hash(), command)


def symmetric_spec(command: str) -> SymmetricSpec:
    """The symmetric reduction's table (`.symmetric`), the same for every activation."""
    state = tuple(map(str, symmetric.STATE))
    parameters = (symmetric.K, *flows.PARAMETERS, symmetric.kappa_star, symmetric.v_star)
    terms = []
    for target, sums in symmetric.reduce_flows().items():
        for key, coefficient in sums.items():
            arguments = tuple(str(name) for name in (*symmetric.STATE, *parameters) if coefficient.has(name))
            terms.append(ReducedTermSpec(target, arguments, print_scalar(coefficient),
                                         None if key is None else key.integral, "" if key is None else key.signature,
                                         () if key is None else key.entries))
    return SymmetricSpec(state, tuple(map(str, parameters)), tuple(terms), symmetric_hash(), command)
