"""The numerical fallback for integrals without a closed form: a pruned trapezoidal rule.

An integral ⟨f(u)⟩ that the rules of `.gaussian` cannot reduce (tanh, sigmoid, softplus, …)
is first lowered in dimension where its structure allows: a variable that enters only as a
linear factor is integrated out by Stein's lemma, ⟨u_b F(u)⟩ = Σ_j C_bj ⟨∂_j F(u)⟩, so that
I3 = ⟨g'(u0) u1 g(u2)⟩ becomes two 2-dimensional integrals. Each remaining term is integrated on
u = L z, L Lᵀ = C from the symmetric eigendecomposition (robust on singular blocks), z ~ N(0, I)
by the trapezoidal rule of step h on the grid points with |z| ≤ RADIUS. For integrands analytic
in a strip its error falls like exp(-2π d/h); measured on tanh it beats Gauss–Hermite of as many
points per dimension by orders of magnitude (GH wastes its points in the tails), and pruning
the grid to the ball keeps about a third of the 4-d cube. The step is the largest of
`STEPS` whose error against the reference step is below `TARGET_ERROR` on
verification blocks with variances up to `MAX_VARIANCE` (poles of tanh-like g approach the
real axis as the variance grows; this is the range of unit-norm weights, T_nn = 1, Q_ii ~ 1).

An integrand with a kink (ReLU's max(0, u), its step H(u), |u|: `NON_SMOOTH`) in one or two
variables is smooth on each side of the planes where those variables vanish, and the
trapezoidal rule across such a plane is only O(h²). Such a term takes a piecewise rule instead
(docs/conventions.md, "The integrals"): the two *plane* variables (the kinked ones, completed by a
smooth one or a dummy) are written in polar coordinates of their Cholesky factor, v1 = a z1,
v2 = b z1 + c z2, z = r (cos θ, sin θ); the planes v1 = 0 and v2 = 0 cut the circle into arcs on
each of which the integrand is smooth in (r, θ); each arc takes a Gauss–Legendre rule in θ and
each ray the Gauss rule of the weight r exp(−r²/2) on [0, ∞) (`radial`), `nodes` points each;
the other variables, given the plane, take the trapezoidal rule of step h on their conditional
eigen-root. Arcs where the integrand vanishes (ReLU's negative side) are left out. The rule is
exact for collinear and coincident units (a = 0 or c = 0 close arcs, they do not break them);
it reproduces the closed forms of erf with ReLU to 1e-15 at 24 nodes, 0.999-collinear blocks
included (tests/test_quadrature.py). An integrand non-smooth in more than two variables, or
holding a Dirac delta, has no such rule here: `QuadratureError`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass

import numpy as np
import sympy as sp

#: Functions whose presence makes an integrand non-smooth (after differentiation of g).
NON_SMOOTH = (sp.Heaviside, sp.sign, sp.DiracDelta, sp.Max, sp.Min, sp.Abs)
#: Candidate steps, and the reference step (per dimension) errors are measured against.
STEPS = (0.6, 0.5, 0.45, 0.4, 0.35, 0.3, 0.25)
REFERENCE_STEP = {1: 0.05, 2: 0.1, 3: 0.15, 4: 0.2}
#: Grid points z with |z| > RADIUS are dropped: P(|z| > 6.5) < 2e-8 in up to 4 dimensions.
RADIUS = 6.5
#: The largest error, against the reference step, accepted on the verification blocks.
TARGET_ERROR = 1e-6
#: The verification blocks' largest variance.
MAX_VARIANCE = 1.5
#: The piecewise rule's candidate numbers of nodes (per ray and per arc), and its reference.
NODES = (8, 10, 12, 14, 16, 20, 24)
REFERENCE_NODES = 32
#: Points of the piecewise rule evaluated at once (bounds memory).
CHUNK = 1 << 18


class QuadratureError(ValueError):
    """No step in STEPS reaches TARGET_ERROR (e.g. an integrand that is not smooth)."""


@dataclass(frozen=True)
class QuadratureTerm:
    """coefficient · ⟨integrand(u_slots)⟩ over the sub-block of `slots`.

    **Arguments:** `coefficient`, an expression in the block entries c{p}{q}; `slots`, the block
    slots the integrand depends on (sorted); `integrand`, a SymPy expression in those slots'
    variables; `step`, the rule's step h (0 until chosen); `error`, the largest difference from
    the reference rule on the verification blocks. A term whose integrand is non-smooth in some
    of its variables takes the piecewise rule: `kinks`, the positions in `slots` of those
    variables (one or two); `signs`, the sign patterns of the kinked variables (±1 each) on
    whose region the integrand is not identically zero; `nodes`, the Gauss rules' points per ray
    and per arc (0 until chosen).
    """

    coefficient: sp.Expr
    slots: tuple[int, ...]
    integrand: sp.Expr
    step: float = 0.0
    error: float = 0.0
    kinks: tuple[int, ...] = ()
    signs: tuple[tuple[int, ...], ...] = ()
    nodes: int = 0


def lower_dimension(integrand: sp.Expr, u: tuple[sp.Symbol, ...], C: sp.Matrix) -> list[QuadratureTerm]:
    """Integrate out, by Stein's lemma, every variable that enters `integrand` only as a linear
    factor (C the symbolic block), unless the derivative would hold a Dirac delta (a step
    function's); the terms that remain, steps not chosen yet. Raises QuadratureError for a term
    that no rule here evaluates (`kinked`)."""
    factors = sp.Mul.make_args(integrand)
    for b, ub in enumerate(u):
        if ub in factors and not sp.cancel(integrand / ub).has(ub):
            rest = sp.cancel(integrand / ub)
            derivatives = [(j, sp.diff(rest, uj)) for j, uj in enumerate(u) if rest.has(uj)]
            if any(derivative.has(sp.DiracDelta) for _, derivative in derivatives):
                continue
            return [QuadratureTerm(C[b, j] * term.coefficient, term.slots, term.integrand, kinks=term.kinks,
                                   signs=term.signs)
                    for j, derivative in derivatives for term in lower_dimension(derivative, u, C)]
    slots = tuple(i for i, ui in enumerate(u) if integrand.has(ui))
    kinks, signs = kinked(integrand, tuple(u[i] for i in slots))
    return [QuadratureTerm(sp.Integer(1), slots, integrand, kinks=kinks, signs=signs)]


def kinked(integrand: sp.Expr, u: tuple[sp.Symbol, ...]) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """(positions in `u` of the variables `integrand` is non-smooth in, the sign patterns of
    those variables on whose region it is not identically zero); ((), ()) for a smooth one, and
    for one with a kink away from a variable's zero (hard tanh's at ±1: the trapezoidal rule then
    tries, and its check refuses it)."""
    if integrand.has(sp.DiracDelta):
        raise QuadratureError(f"no quadrature rule for {integrand}: it holds a Dirac delta")
    rough = integrand.atoms(*NON_SMOOTH)
    kinks = tuple(i for i, ui in enumerate(u) if any(atom.has(ui) for atom in rough))
    if not kinks or not all(_kink_at_zero(atom, u) for atom in rough):
        return (), ()
    if len(kinks) > 2:
        raise QuadratureError(f"no quadrature rule for {integrand}: it is non-smooth in {len(kinks)} variables "
                              "(the piecewise rule takes at most two; a smooth stand-in such as log(1 + exp(b*x))/b "
                              "for Max(0, x) has one)")
    positive = {i: sp.Symbol(f"p{i}", positive=True) for i in kinks}
    signs = tuple(pattern for pattern in itertools.product((1, -1), repeat=len(kinks))
                  if integrand.subs({u[i]: sign * positive[i] for i, sign in zip(kinks, pattern)}) != 0)
    return kinks, signs


def _kink_at_zero(atom: sp.Expr, u: tuple[sp.Symbol, ...]) -> bool:
    """Whether the non-smooth `atom` (H(a u_i), sign, |·|, Max or Min of such terms and 0) is
    smooth but where one variable u_i vanishes: its arguments all multiples of one u_i."""
    arguments = atom.args[:1] if isinstance(atom, sp.Heaviside) else atom.args  # H's second is H(0)
    variables = set().union(*(argument.free_symbols for argument in arguments)) & set(u)
    if len(variables) != 1:
        return False
    (ui,) = variables
    return all(argument.free_symbols <= {ui} and sp.diff(argument, ui).is_number
               and sp.expand(argument - sp.diff(argument, ui) * ui) == 0 for argument in arguments)


@functools.lru_cache(maxsize=4)
def rule(step: float, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z (P, dimension) of the step-`step` grid within RADIUS, in lexicographic order, and
    their weights (∝ the standard normal density, normalised to sum 1); read-only, and kept for
    the next term (the reference rule in 4 dimensions has 5.5 million nodes). Built a slice of
    the first coordinate at a time, so that the cube is never held whole."""
    axis = step * np.arange(-np.floor(RADIUS / step), np.floor(RADIUS / step) + 1)
    rest = (axis[np.indices((len(axis),) * (dimension - 1)).reshape(dimension - 1, -1).T] if dimension > 1
            else np.zeros((1, 0)))  # the other coordinates
    slices = []
    for first in axis:
        z = np.concatenate([np.full((len(rest), 1), first), rest], axis=1)
        slices.append(z[np.sum(z**2, axis=1) <= RADIUS**2])
    z = np.concatenate(slices)
    w = np.exp(-0.5 * np.sum(z**2, axis=1))
    w /= w.sum()
    z.flags.writeable = w.flags.writeable = False
    return z, w


@functools.lru_cache(maxsize=None)
def radial(nodes: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The Gauss rule of `nodes` points for the weight r exp(−r²/2) on [0, ∞) (the radius of a
    2-d standard normal vector), weights summing to 1: the eigen-decomposition of the Jacobi
    matrix that the Lanczos process builds on a 300-point Gauss–Legendre discretisation of
    [0, 14] (moments within 1e-14)."""
    x, w = np.polynomial.legendre.leggauss(300)
    r = 7.0 * (x + 1)
    weight = 7.0 * w * r * np.exp(-(r**2) / 2)
    basis, diagonal, off = np.zeros((len(r), nodes)), np.zeros(nodes), np.zeros(nodes)
    basis[:, 0] = np.sqrt(weight) / np.linalg.norm(np.sqrt(weight))
    for k in range(nodes):
        v = r * basis[:, k]
        diagonal[k] = basis[:, k] @ v
        v -= basis[:, :k + 1] @ (basis[:, :k + 1].T @ v)  # full reorthogonalisation
        if k + 1 < nodes:
            off[k] = np.linalg.norm(v)
            basis[:, k + 1] = v / off[k]
    points, vectors = np.linalg.eigh(np.diag(diagonal) + np.diag(off[:-1], 1) + np.diag(off[:-1], -1))
    weights = vectors[0] ** 2 / np.sum(vectors[0] ** 2)
    return tuple(map(float, points)), tuple(map(float, weights))


def arc(signs: tuple[int, ...], phi: float) -> tuple[float, float]:
    """(start, length) of the arc of θ where the plane's kinked variables have `signs`: v1 = a cos θ
    and, with two kinks, v2 ∝ cos(θ − φ), φ = atan2(c, b) ∈ [0, π]."""
    if len(signs) == 1:
        return (-np.pi / 2 if signs[0] > 0 else np.pi / 2), np.pi
    return {(1, 1): (phi - np.pi / 2, np.pi - phi), (1, -1): (-np.pi / 2, phi),
            (-1, 1): (np.pi / 2, phi), (-1, -1): (phi + np.pi / 2, np.pi - phi)}[signs]


def evaluate(term: QuadratureTerm, u: tuple[sp.Symbol, ...], block: np.ndarray, step: float,
             nodes: int = REFERENCE_NODES) -> float:
    """The term's expectation (without its coefficient) on the numeric block, by the rule of `step`
    (and, for a term with kinks, `nodes`)."""
    slots = list(term.slots)
    if not slots:
        return float(term.integrand)
    f = sp.lambdify([u[s] for s in slots], term.integrand, ["scipy", "numpy"])  # scipy: erf and friends on arrays
    if term.kinks:
        return _piecewise(f, term, block[np.ix_(slots, slots)], step, nodes)
    root = _root(block[np.ix_(slots, slots)])
    z, w = rule(step, len(slots))
    total = 0.0
    for start in range(0, len(w), CHUNK):  # bounded memory
        points = z[start:start + CHUNK] @ root.T
        total += np.sum(w[start:start + CHUNK] * np.broadcast_to(f(*points.T), (len(points),)))
    return float(total)


def _root(block: np.ndarray) -> np.ndarray:
    """L with L Lᵀ = `block` (r×r), from the symmetric eigendecomposition (singular blocks are fine)."""
    values, vectors = np.linalg.eigh(block)
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def _piecewise(f, term: QuadratureTerm, block: np.ndarray, step: float, nodes: int) -> float:
    """⟨f(u)⟩ on `block` by the piecewise rule of `term.kinks` (see the module's docstring)."""
    size = len(block)
    smooth = [i for i in range(size) if i not in term.kinks]
    order = [*term.kinks, *smooth]  # the plane first
    padded = np.eye(max(size, 2))  # one variable: a dummy second, independent
    padded[:size, :size] = block[np.ix_(order, order)]
    root = _root(padded)
    rotation, triangle = np.linalg.qr(root[:2].T, mode="complete")
    flip = np.where(np.diag(triangle) < 0, -1.0, 1.0)
    rotation[:, :2] *= flip
    root = root @ rotation  # rows 0, 1: (a, 0), (b, c) with a, c ≥ 0
    if _collinear(padded[0, 0], padded[0, 1], padded[1, 1]):
        root[1, 1] = 0.0
    (a, _), (b, c) = root[:2, :2]
    phi = np.arctan2(c, b)
    x, w = np.polynomial.legendre.leggauss(nodes)
    radii, radial_weights = map(np.array, radial(nodes))
    angles, angle_weights = [], []
    for signs in term.signs:
        start, length = arc(signs, phi)
        angles.append(start + length * (x + 1) / 2)
        angle_weights.append(length * w / 2 / (2 * np.pi))
    angle, angle_weight = np.concatenate(angles), np.concatenate(angle_weights)
    plane = np.stack([np.outer(radii, np.cos(angle)).ravel(), np.outer(radii, np.sin(angle)).ravel()], axis=1)
    plane_weight = np.outer(radial_weights, angle_weight).ravel()
    z, rest_weight = rule(step, len(padded) - 2) if len(padded) > 2 else (np.zeros((1, 0)), np.ones(1))
    rows = max(1, CHUNK // len(rest_weight))
    total = 0.0
    for start in range(0, len(plane_weight), rows):  # bounded memory
        points = (plane[start:start + rows, None, :] @ root[:, :2].T
                  + (z @ root[:, 2:].T)[None])  # (plane points, rest points, variables)
        values = np.broadcast_to(f(*(points[..., order.index(i)] for i in range(size))), points.shape[:2])
        total += np.einsum("p,q,pq->", plane_weight[start:start + rows], rest_weight, values)
    return float(total)


def _collinear(c00, c01, c11):
    """Whether the plane variables are collinear to within what their Gram entries resolve: the
    eigen-root of a singular block holds √(round-off) ≈ 1e-8 where it should hold 0, which would
    tilt one kink against the other and misplace a sliver of the plane (2e-9 of ⟨H H erf erf⟩ at
    two coincident units); below 4 ε c00 c11 the determinant is round-off, and c is set to 0."""
    return c00 * c11 - c01**2 <= 4 * np.finfo(float).eps * c00 * c11


def choose_step(term: QuadratureTerm, u: tuple[sp.Symbol, ...], blocks: list[np.ndarray]) -> QuadratureTerm:
    """`term` with the largest step whose error against the reference is below TARGET_ERROR on
    every block (relative to the value's scale, for values larger than 1); for a term with
    kinks, first the fewest `NODES` whose error at the reference step is below half of it, on
    `blocks` and a nearly collinear block (every unit within 2 % of the first's direction)."""
    if not term.slots:
        return term
    rest = len(term.slots) - 2 if term.kinks else len(term.slots)
    reference_step = REFERENCE_STEP.get(rest, STEPS[0])
    nodes = REFERENCE_NODES
    if term.kinks:
        blocks = [*blocks, _nearly_collinear(blocks[0])]
    references = [evaluate(term, u, block, reference_step, nodes) for block in blocks]

    def error(step: float, nodes: int) -> float:
        return max(abs(evaluate(term, u, block, step, nodes) - reference) / max(1.0, abs(reference))
                   for block, reference in zip(blocks, references))

    if term.kinks:
        nodes = next((n for n in NODES if error(reference_step, n) < TARGET_ERROR / 2), 0)
        if not nodes:
            raise QuadratureError(f"the piecewise rule does not reach {TARGET_ERROR:g} with {NODES[-1]} nodes for "
                                  f"{term.integrand}")
        if rest < 1:
            return dataclasses.replace(term, step=STEPS[0], error=error(STEPS[0], nodes), nodes=nodes)
    for step in STEPS:
        reached = error(step, nodes)
        if reached < TARGET_ERROR:
            return dataclasses.replace(term, step=step, error=reached, nodes=nodes if term.kinks else 0)
    raise QuadratureError(
        f"the trapezoidal rule does not reach {TARGET_ERROR:g} with step {STEPS[-1]} for "
        f"{term.integrand} (error {reached:.2g}): is the integrand smooth?"
    )


def _nearly_collinear(block: np.ndarray) -> np.ndarray:
    """`block` with every unit's root row moved to within 2 % of the first's."""
    root = _root(block)
    root[1:] = 0.98 * root[0] + 0.02 * root[1:]
    return root @ root.T
