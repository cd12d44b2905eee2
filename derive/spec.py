"""KernelSpec: everything the template needs, printed; the only thing that leaves derive/."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import sympy as sp

from . import flows
from .activations import Activation, x
from .integrals import DEFINITIONS, block_entries, derive_integral
from .printing import PrintedExpression, print_cse, print_scalar
from .verify import verify

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
DERIVE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_ROOT / "templates"


@dataclass(frozen=True)
class IntegralSpec:
    """One block integral, printed. `entries` are the (p, q), p ≤ q, of its arguments."""

    name: str
    size: int
    arguments: tuple[str, ...]
    entries: tuple[tuple[int, int], ...]
    code: PrintedExpression
    provenance: str
    verification: str


@dataclass(frozen=True)
class TensorSpec:
    """An integral evaluated on every combination of units: `slots` name each axis's range
    ("S" student, "T" teacher, "J" all units)."""

    name: str
    integral: str
    slots: tuple[str, ...]


@dataclass(frozen=True)
class TermSpec:
    """A flow term as ``scalar * einsum(subscripts, tensor, *weights)``."""

    target: str
    scalar: str
    subscripts: str
    operands: tuple[str, ...]


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
    tensors: tuple[TensorSpec, ...]
    terms: tuple[TermSpec, ...]
    input_hash: str
    command: str


def input_hash(activation: Activation) -> str:
    """SHA-256 of what the generated module depends on: the activation, the derivation's and
    the templates' sources, and SymPy's version."""
    digest = hashlib.sha256()
    digest.update(f"{activation.name}\n{sp.srepr(activation.expression)}\n{sp.__version__}\n".encode())
    sources = sorted(DERIVE_DIR.glob("*.py")) + sorted(TEMPLATES_DIR.glob("*.jinja"))
    for path in sources:
        digest.update(f"{path.parent.name}/{path.name}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _tensor(term: flows.FlowTerm) -> TensorSpec:
    slots = tuple(flows.INDEX_RANGES[index] for index in term.indices)
    return TensorSpec(f"{term.integral}_{''.join(slots)}", term.integral, slots)


def _term(term: flows.FlowTerm) -> TermSpec:
    subscripts = ",".join(["".join(term.indices)] + [index for _, index in term.weights])
    return TermSpec(
        target=term.target,
        scalar=print_scalar(term.scalar),
        subscripts=f"{subscripts}->{flows.TARGETS[term.target]}",
        operands=(_tensor(term).name,) + tuple(name for name, _ in term.weights),
    )


def _integral(activation: Activation, name: str) -> IntegralSpec:
    derived = derive_integral(activation, name)
    return IntegralSpec(
        name=name,
        size=derived.size,
        arguments=tuple(str(symbol) for symbol in derived.arguments),
        entries=tuple(block_entries(derived.size)),
        code=print_cse(derived.expression),
        provenance=derived.provenance,
        verification=verify(derived),
    )


def build_spec(activation: Activation, command: str) -> KernelSpec:
    """Derive, verify and print every kernel of `activation`."""
    terms = flows.derive_flows()
    tensors = {spec.name: spec for spec in map(_tensor, terms)}
    return KernelSpec(
        name=activation.name,
        description=activation.description,
        expression=str(activation.expression),
        derivative=str(activation.derivative),
        g=print_cse(activation.expression.subs(x, sp.Symbol("x"))),
        g_prime=print_cse(activation.derivative.subs(x, sp.Symbol("x"))),
        integrals=tuple(_integral(activation, name) for name in DEFINITIONS),
        tensors=tuple(tensors.values()),
        terms=tuple(map(_term, terms)),
        input_hash=input_hash(activation),
        command=command,
    )
