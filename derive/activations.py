"""The activation registry: an activation is a named SymPy expression g(x); g' is derived."""

from __future__ import annotations

import ast
from dataclasses import dataclass

import mpmath
import sympy as sp
from sympy.parsing.sympy_parser import parse_expr, standard_transformations

#: The variable every activation expression is written in.
x = sp.Symbol("x", real=True)


@dataclass(frozen=True)
class Activation:
    """A named activation g(x) with its SymPy derivative.

    **Arguments:**

    - `name`: a Python identifier; the generated module is `generated/<name>.py`.
    - `expression`: g as a SymPy expression in `x`.
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


#: The names an activation expression may use: the variable x, these functions and constants.
ALLOWED_NAMES: dict[str, object] = {
    "x": x, "pi": sp.pi, "E": sp.E,
    **{f.__name__: f for f in (sp.erf, sp.erfc, sp.exp, sp.log, sp.sqrt, sp.tanh, sp.sinh, sp.cosh, sp.sin,
                               sp.cos, sp.tan, sp.atan, sp.asinh, sp.Abs, sp.Max, sp.Min, sp.Heaviside, sp.sign)},
}
_ALLOWED_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant,
                  ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)


def parse_expression(text: str) -> sp.Expr:
    """The SymPy expression of `text`, an arithmetic expression in x (+ - * / **, numbers, and
    calls of ALLOWED_NAMES). The text is checked node by node before SymPy sees it, and SymPy
    evaluates it with no builtins and only those names, so no other code can run."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        raise ValueError(f"cannot parse the activation expression {text!r}: {error.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(f"the activation expression {text!r} may only use numbers, x, + - * / ** and "
                             f"the functions {', '.join(sorted(set(ALLOWED_NAMES) - {'x'}))}")
        if isinstance(node, ast.Constant) and (isinstance(node.value, bool)
                                               or not isinstance(node.value, (int, float))):
            raise ValueError(f"the activation expression {text!r} has a constant that is not a number: {node.value!r}")
        if isinstance(node, ast.Name) and node.id not in ALLOWED_NAMES:
            raise ValueError(f"the activation expression {text!r} uses {node.id!r}, which is not x or one of the "
                             f"functions {', '.join(sorted(set(ALLOWED_NAMES) - {'x'}))}")
        if isinstance(node, ast.Call) and (node.keywords or not isinstance(node.func, ast.Name)):
            raise ValueError(f"the activation expression {text!r} has a call that is not f(argument, ...)")
    try:
        return parse_expr(text, local_dict=dict(ALLOWED_NAMES), global_dict={"__builtins__": {}, **_SYMPY_NUMBERS},
                          transformations=standard_transformations)
    except (sp.SympifyError, SyntaxError, TypeError, ValueError) as error:
        raise ValueError(f"cannot parse the activation expression {text!r}: {error}") from None


#: The number classes SymPy's parser wraps literals in (its auto_number transformation).
_SYMPY_NUMBERS = {"Integer": sp.Integer, "Float": sp.Float, "Rational": sp.Rational}


def from_expression(name: str, text: str) -> Activation:
    """A user's activation `name` from the text of an expression in x, e.g. ``"erf(2*x)"``
    (see `parse_expression`)."""
    expression = parse_expression(text)
    _check_integrable(expression, text)
    return Activation(name, expression, f"a user activation, g(x) = {expression}")


def _check_integrable(expression: sp.Expr, text: str) -> None:
    """Refuse (ValueError, one line) an expression that is not a real, finite function of x, or
    that grows faster than exponentially (then Gaussian expectations of it diverge): it is checked
    at points of the real line, |g(x)| ≤ exp(10 + 10|x|) at |x| = 40 and 80."""
    if expression.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise ValueError(f"the activation expression {text!r} is not finite ({expression})")
    for point in (-80, -40, -2.5, -1, -0.5, 0, 0.5, 1, 2.5, 40, 80):
        try:
            real, imaginary = (mpmath.mpmathify(part) for part in sp.N(expression.subs(x, point), 30).as_real_imag())
        except (TypeError, ValueError, ArithmeticError):
            raise ValueError(f"the activation expression {text!r} cannot be evaluated at x = {point}") from None
        if not mpmath.isfinite(real) or not mpmath.isfinite(imaginary) or abs(imaginary) > 1e-12 * max(1, abs(real)):
            raise ValueError(f"the activation expression {text!r} is not a real, finite number at x = {point}")
        if abs(point) >= 40 and mpmath.log(1 + abs(real)) > 10 + 10 * abs(point):
            raise ValueError(f"the activation expression {text!r} grows faster than exponentially (g({point}) = "
                             f"{mpmath.nstr(real, 3)}): its Gaussian expectations diverge")
