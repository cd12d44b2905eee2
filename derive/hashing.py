"""Input hashes: what each generated file depends on, hashed, so that a file records exactly
the inputs that can change it.

A kernel module depends on its activation, SymPy's version, the kernel template and the code
(not the comments or docstrings) of the derive/ modules that derive, verify, print and render
integrals; the flow table on SymPy's version, its template and the modules that expand and
print the flows; the symmetric reduction on those and the module that reduces them. The command
line (__main__.py), the generator's driver (generate.py), the time budget of a user's derivation
(budget.py, which can only stop it) and this module are in none: editing a help text or a
docstring stales nothing.
"""

from __future__ import annotations

import hashlib

import sympy as sp

from nndyn.code import code_of

from .activations import Activation
from .paths import DERIVE_DIR, TEMPLATES_DIR

#: The derive/ modules whose code shapes every generated file (printing and rendering).
RENDERING = ("printing.py", "spec.py", "lower.py", "render.py")
#: The derive/ modules whose code a kernel module depends on, and its template.
KERNEL_SOURCES = ("activations.py", "gaussian.py", "special.py", "integrals.py", "quadrature.py", "mixture.py",
                  "verify.py", *RENDERING)
KERNEL_TEMPLATE = "kernel_module.py.jinja"
#: The derive/ modules whose code the flow table depends on, and its template.
FLOW_SOURCES = ("flows.py", "integrals.py", *RENDERING)
FLOW_TEMPLATE = "flows.py.jinja"
#: The derive/ modules whose code the symmetric reduction depends on, and its template.
SYMMETRIC_SOURCES = ("symmetric.py", *FLOW_SOURCES)
SYMMETRIC_TEMPLATE = "symmetric.py.jinja"


def _digest(modules: tuple[str, ...], template: str, *activations: Activation) -> str:
    digest = hashlib.sha256()
    for activation in activations:
        digest.update(f"{activation.name}\n{sp.srepr(activation.expression)}\n".encode())
    digest.update(f"sympy {sp.__version__}\n".encode())
    for name in sorted(modules):
        digest.update(f"derive/{name}\n{code_of((DERIVE_DIR / name).read_text(encoding='utf-8'))}\n".encode())
    digest.update(f"templates/{template}\n".encode() + (TEMPLATES_DIR / template).read_bytes())
    return digest.hexdigest()


def kernel_hash(*activations: Activation) -> str:
    """SHA-256 of what the kernel module of an activation, or the pair module of a student and
    a teacher activation, depends on (a pair's integrals also on the flow table's signatures)."""
    sources = KERNEL_SOURCES if len(activations) == 1 else (*KERNEL_SOURCES, "flows.py")
    return _digest(sources, KERNEL_TEMPLATE, *activations)


def flow_hash() -> str:
    """SHA-256 of what the flow table depends on."""
    return _digest(FLOW_SOURCES, FLOW_TEMPLATE)


def symmetric_hash() -> str:
    """SHA-256 of what the symmetric reduction's table depends on."""
    return _digest(SYMMETRIC_SOURCES, SYMMETRIC_TEMPLATE)
