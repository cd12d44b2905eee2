"""Printing SymPy expressions as JAX code: a printer subclass and deterministic CSE."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp
from sympy.printing.numpy import JaxPrinter

from .special import PLACKETT_ORDER

#: The function of nndyn.core.special that each special function of derive/special.py prints as.
HELPERS = {"ZeroDensity": "zero_density", "SignPair": "sign_pair", "SignQuadruple": "sign_quadruple"}


class KernelPrinter(JaxPrinter):
    """SymPy's JAX printer, printing ``jnp.``/``jsp.`` names that work under ``jax.jit``.

    SymPy's own printer sends ``erf`` to ``math.erf``, which fails on tracers; ``asin`` is printed
    as ``safe_arcsin``, which nndyn.core.special defines with its argument clipped to [-1, 1]
    so that round-off at |C_ab| → √(C_aa C_bb) cannot produce NaN; the special functions of
    derive/special.py as the guarded functions in HELPERS (the sign quadruple with the order of
    its Gauss–Legendre rule, PLACKETT_ORDER).
    """

    def _module_format(self, fqn: str, register: bool = True) -> str:
        return fqn.replace("jax.numpy.", "jnp.")

    def _print_erf(self, expr: sp.erf) -> str:
        return f"jsp.erf({self._print(expr.args[0])})"

    def _print_asin(self, expr: sp.asin) -> str:
        return f"safe_arcsin({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        return f"jnp.heaviside({self._print(expr.args[0])}, 0.5)"  # H(0) = ½, as in SymPy

    def _print_Max(self, expr: sp.Max) -> str:
        return functools.reduce(lambda a, b: f"jnp.maximum({a}, {b})", map(self._print, expr.args))

    def _print_special(self, expr: sp.Function) -> str:
        """ZeroDensity, SignPair: guarded functions of nndyn.core.special."""
        return f"{HELPERS[type(expr).__name__]}({', '.join(map(self._print, expr.args))})"

    _print_ZeroDensity = _print_SignPair = _print_special

    def _print_SignQuadruple(self, expr: sp.Function) -> str:
        return f"sign_quadruple({', '.join(map(self._print, expr.args))}, order={PLACKETT_ORDER})"


@dataclass(frozen=True)
class PrintedExpression:
    """An expression as straight-line code.

    **Arguments:**

    - `assignments`: (name, code) pairs of common subexpressions, in evaluation order.
    - `result`: code for the final value, in terms of the arguments and the assignments.
    """

    assignments: tuple[tuple[str, str], ...]
    result: str


def print_cse(expression: sp.Expr, prefix: str = "x") -> PrintedExpression:
    """Common-subexpression-eliminate `expression` (numbered symbols) and print it."""
    printer = KernelPrinter({"fully_qualified_modules": True})
    replacements, (reduced,) = sp.cse(expression, symbols=sp.numbered_symbols(prefix), order="canonical")
    return PrintedExpression(
        assignments=tuple((str(name), printer.doprint(value)) for name, value in replacements),
        result=printer.doprint(reduced),
    )


def print_scalar(expression: sp.Expr) -> str:
    """A scalar coefficient (in lr, lr_v, sigma, batch) as code."""
    return KernelPrinter({"fully_qualified_modules": True}).doprint(expression)
