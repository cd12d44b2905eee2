"""The activation registry: an activation is a named SymPy expression g(x); g' is derived."""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

#: The variable every activation expression is written in.
x = sp.Symbol("x", real=True)


@dataclass(frozen=True)
class Activation:
    """A named activation g(x) with its SymPy derivative.

    **Arguments:**

    - `name`: a Python identifier; the generated module is `generated/<name>.py`.
    - `expression`: g as a SymPy expression in :data:`x`.
    - `description`: one line for the generated module's docstring.
    """

    name: str
    expression: sp.Expr
    description: str

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"activation name {self.name!r} is not a Python identifier")
        if self.expression.free_symbols - {x}:
            raise ValueError(
                f"activation {self.name!r}: expression {self.expression} may only use the variable x"
            )

    @property
    def derivative(self) -> sp.Expr:
        """g'(x), derived by SymPy."""
        return sp.diff(self.expression, x)

    def g(self, u: sp.Expr) -> sp.Expr:
        """g evaluated at `u`."""
        return self.expression.subs(x, u)

    def g_prime(self, u: sp.Expr) -> sp.Expr:
        """g' evaluated at `u`."""
        return self.derivative.subs(x, u)


BUILTINS: dict[str, Activation] = {
    activation.name: activation
    for activation in (
        Activation("erf", sp.erf(x / sp.sqrt(2)), "g(x) = erf(x/√2), the Saad & Solla choice"),
        Activation("linear", x, "g(x) = x, a linear network"),
        Activation("quadratic", x**2, "g(x) = x², a polynomial activation"),
        Activation("relu", sp.Max(0, x), "g(x) = max(0, x), with g'(0) = H(0) = ½"),
    )
}


def get(name: str) -> Activation:
    """The built-in activation called `name`; a clear error names the known ones otherwise."""
    try:
        return BUILTINS[name]
    except KeyError:
        known = ", ".join(sorted(BUILTINS))
        raise KeyError(f"unknown activation {name!r}; built-in activations are: {known}") from None


def from_expression(name: str, text: str) -> Activation:
    """A user's activation `name` from SymPy text in x, e.g. ``"erf(2*x)"``."""
    try:
        expression = sp.sympify(text, locals={"x": x})
    except (sp.SympifyError, SyntaxError, TypeError) as error:
        raise ValueError(f"cannot parse the activation expression {text!r}: {error}") from None
    return Activation(name, expression, f"a user activation, g(x) = {text}")
