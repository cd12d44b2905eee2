"""The assembled erf vector field against a direct Monte-Carlo estimate of the flows, and its
behaviour under jit and grad; block evaluation (folded, and split by repeated units)."""

import importlib
import itertools
import pkgutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gaussian_reference import g, g_prime, psd_root

from nndyn import generated  # pyright: ignore[reportAttributeAccessIssue]
from nndyn.core import blocks
from nndyn.core.kernels import load

erf = load("erf")
INTEGRALS = erf.module.INTEGRALS

K, M, SIGMA, LR, LR_V = 3, 2, 0.3, 0.7, 0.4
SAMPLES = 1_000_000
STANDARD_ERRORS = 5


def random_state(seed):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(K + M, K + M + 2)) / np.sqrt(K + M + 2)
    Omega = weights @ weights.T * 1.5
    state = {"Q": Omega[:K, :K], "R": Omega[:K, K:], "v": rng.normal(size=K)}
    args = {"T": Omega[K:, K:], "v_star": rng.normal(size=M), "lr": LR, "lr_v": LR_V,
            "sigma": SIGMA, "train_v": 1.0}
    return Omega, state, args


def flow_samples(Omega, state, args, batch, seed):
    """Per-minibatch Monte-Carlo samples of each flow (first axis: minibatches)."""
    rng = np.random.default_rng(seed)
    n = SAMPLES // batch
    u = rng.standard_normal((n, batch, K + M)) @ psd_root(Omega).T
    noise = rng.standard_normal((n, batch))
    a = np.concatenate([-state["v"], args["v_star"]])
    delta = g(u) @ a + SIGMA * noise  # (n, batch)
    v = state["v"]
    gp = g_prime(u[..., :K])  # (n, batch, K)
    dR = LR * v[:, None] * np.einsum("sb,sbi,sbn->sin", delta, gp, u[..., K:]) / batch
    first = LR * v[:, None] * np.einsum("sb,sbi,sbk->sik", delta, gp, u[..., :K]) / batch
    first = first + np.swapaxes(first, 1, 2)
    # the square of the minibatch step: only same-sample pairs survive (x_s·x_s'/N -> δ_ss')
    second = LR**2 * np.einsum("sb,sbi,sbk->sik", delta**2, gp, gp) * np.outer(v, v) / batch**2
    dv = LR_V * np.einsum("sb,sbi->si", delta, g(u[..., :K])) / batch
    return {"R": dR, "Q": first + second, "Q2": second, "v": dv}


def assert_within_standard_errors(name, analytic, samples):
    mean = samples.mean(axis=0)
    error = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    z = np.abs(np.asarray(analytic) - mean) / (error + 1e-15)
    assert np.all(z <= STANDARD_ERRORS), f"{name}: |analytic - MC| / SE = {z}"


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_vector_field_agrees_with_monte_carlo(batch):
    Omega, state, args = random_state(seed=batch)
    args = {**args, "batch": float(batch)}
    flows = erf.rhs(0.0, {k: jnp.asarray(v) for k, v in state.items()}, args)
    no_second_order = erf.rhs(0.0, state, {**args, "batch": jnp.inf})
    samples = flow_samples(Omega, state, args, batch, seed=10 + batch)
    assert_within_standard_errors("dR/dt", flows["R"], samples["R"])
    assert_within_standard_errors("dQ/dt", flows["Q"], samples["Q"])
    assert_within_standard_errors("dQ/dt (η² term)", flows["Q"] - no_second_order["Q"], samples["Q2"])
    assert_within_standard_errors("dv/dt", flows["v"], samples["v"])


def test_generalisation_error_agrees_with_monte_carlo():
    Omega, state, args = random_state(seed=3)
    rng = np.random.default_rng(4)
    u = rng.standard_normal((SAMPLES, K + M)) @ psd_root(Omega).T
    a = np.concatenate([-state["v"], args["v_star"]])
    samples = 0.5 * (g(u) @ a) ** 2
    assert_within_standard_errors("eg", erf.eg(state, args), samples[:, None])


def boundary_state(K_units):
    """Two identical student units (a singular Omega) and a random rest."""
    rng = np.random.default_rng(K_units)
    weights = rng.normal(size=(K_units + 2, 40)) / np.sqrt(40)
    weights[1] = weights[0]
    Omega = weights @ weights.T
    y = {"Q": jnp.asarray(Omega[:K_units, :K_units]), "R": jnp.asarray(Omega[:K_units, K_units:]),
         "v": jnp.ones(K_units)}
    args = {"T": jnp.asarray(Omega[K_units:, K_units:]), "v_star": jnp.ones(2), "lr": 0.5,
            "lr_v": 0.5, "sigma": 0.1, "batch": 1.0, "train_v": 1.0}
    return y, args


@pytest.mark.slow  # 3 s (compiling the gradient): the fast subset stays within a minute
def test_jit_and_grad_are_finite_on_a_boundary_state():
    y, args = boundary_state(3)

    def loss(y):
        flows = erf.rhs(0.0, y, args)
        return sum(jnp.sum(value**2) for value in flows.values()) + erf.eg(y, args)

    flows = jax.jit(erf.rhs)(0.0, y, args)
    gradient = jax.jit(jax.grad(loss))(y)
    for tree in (flows, gradient):
        for name, value in tree.items():
            assert np.all(np.isfinite(value)), name
    assert np.allclose(flows["Q"][0], flows["Q"][1]) and np.allclose(flows["R"][0], flows["R"][1])


def test_traced_program_does_not_grow_with_width():
    sizes = []
    for width in (2, 50):
        y, args = boundary_state(width)
        sizes.append(len(jax.make_jaxpr(erf.rhs)(0.0, y, args).jaxpr.eqns))
    assert sizes[0] == sizes[1]


@pytest.mark.parametrize("chunk", [1 << 20, 5, 1])
def test_folded_contractions_equal_the_full_tensors(monkeypatch, chunk):
    """The symmetric terms are evaluated on slot pairs x <= y, in chunks; they must equal the
    contraction of the full block tensors."""
    monkeypatch.setattr(blocks, "CHUNK_ELEMENTS", chunk)
    Omega, state, args = random_state(seed=5)
    v, a = state["v"], np.concatenate([-state["v"], args["v_star"]])
    units = blocks.units(K, M)
    S, J = units["S"], units["J"]
    full_I4 = np.einsum("ikcd,c,d,i,k->ik", blocks.block_tensor(INTEGRALS["I4"], Omega, (S, S, J, J)), a, a, v, v)
    folded_I4 = blocks.folded_contraction(INTEGRALS["I4"], jnp.asarray(Omega), (S, J), (v, a), free=True)
    np.testing.assert_allclose(folded_I4, full_I4, rtol=1e-13, atol=1e-15)
    full_I2 = np.einsum("cd,c,d->", blocks.block_tensor(INTEGRALS["I2"], Omega, (J, J)), a, a)
    folded_I2 = blocks.folded_contraction(INTEGRALS["I2"], jnp.asarray(Omega), (J,), (a,), free=False)
    assert float(folded_I2) == pytest.approx(float(full_I2), rel=1e-13)



def relu_state(coincide: bool):
    """A joint covariance of K = 3 students and M = 2 teachers; with `coincide`, student 0 is
    teacher 0 (a block of distinct units that needs a coincidence variant)."""
    rng = np.random.default_rng(7)
    weights = rng.normal(size=(K + M, 8)) / np.sqrt(8)
    if coincide:
        weights[0] = weights[K]
    return weights @ weights.T


@pytest.mark.parametrize("coincide", [False, True])
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_blocks_of_repeated_units_take_only_the_coincidence_variants(coincide):
    """With COINCIDENT, the full closed form (generic and variants) sees exactly the blocks of
    distinct units, and every value equals the full closed form's on every block (up to
    rounding), unfolded and folded."""
    relu = load("relu")
    I4, variants = relu.module.INTEGRALS["I4"], blocks.Split(relu.module.COINCIDENT["I4"])
    seen = []

    def counted(*entries):
        seen.append(np.broadcast_shapes(*(np.shape(entry) for entry in entries)))
        return I4(*entries)

    Omega = relu_state(coincide)
    units = blocks.units(K, M)
    S, J = units["S"], units["J"]
    split = jax.jit(lambda Omega: blocks.block_tensor(counted, Omega, (S, S, J, J), variants))(Omega)
    distinct = sum(len({i, k, c, d}) == 4 for i in S for k in S for c in J for d in J)
    assert seen == [(distinct,)] and 0 < distinct < split.size
    whole = jax.jit(lambda Omega: blocks.block_tensor(I4, Omega, (S, S, J, J)))(Omega)
    np.testing.assert_allclose(split, whole, rtol=1e-14, atol=1e-16)  # compiled apart: rounding differs
    v, a = np.ones(K), np.concatenate([-np.ones(K), np.ones(M)])
    folded = [jax.jit(lambda Omega, c=split: blocks.folded_contraction(I4, Omega, (S, J), (v, a), True, c))(Omega)
              for split in (variants, None)]
    np.testing.assert_allclose(folded[0], folded[1], rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("coincide", [False, True])
@pytest.mark.slow  # over 2 s: the fast subset (-m 'not slow') stays within a minute
def test_the_sign_quadruple_is_evaluated_once_per_set_of_units(coincide):
    """ReLU's I4 with its quadruple shared (QUADRUPLES): the quadruple runs once per set of four
    distinct units, and every block's value equals the unshared closed form's up to the
    quadrature's round-off under a permutation of the slots (~1e-14; tests/test_special.py)."""
    relu = load("relu")
    I4, split = relu.module.INTEGRALS["I4"], relu.split("I4")
    assert split is not None and split.quadruple is not None
    seen = []

    def counted(*entries):
        seen.append(np.broadcast_shapes(*(np.shape(entry) for entry in entries)))
        return split.quadruple(*entries)

    Omega = relu_state(coincide)
    units = blocks.units(K, M)
    S, J = units["S"], units["J"]
    shared = blocks.Split(split.coincident, split.generic, counted)
    tensor = jax.jit(lambda Omega: blocks.block_tensor(I4, Omega, (S, S, J, J), shared))(Omega)
    sets = {frozenset((i, k, c, d)) for i in S for k in S for c in J for d in J if len({i, k, c, d}) == 4}
    assert seen == [(len(sets),)]
    whole = jax.jit(lambda Omega: blocks.block_tensor(I4, Omega, (S, S, J, J)))(Omega)
    np.testing.assert_allclose(tensor, whole, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name, ranges", [
    ("I3", "STJ"),
    pytest.param("I4", "SSJJ", marks=pytest.mark.slow),  # over 4 s: the fast subset stays within a minute
])
def test_the_coincidence_variants_are_applied_once_to_every_block(name, ranges):
    """A split integral's generic form (GENERIC, or QUADRUPLES') sees only the blocks of distinct
    units and its coincidence variants are applied once, to every block (one copy of them in the
    compiled program; they were applied twice, to each set apart), with student 0 = teacher 0 so
    that distinct units coincide in value too; the values are the whole closed form's."""
    relu = load("relu")
    split = relu.split(name)
    assert split is not None and split.generic is not None
    seen = {"generic": [], "coincident": []}

    def counted(kind, function):
        def wrapped(*entries):
            seen[kind].append(np.broadcast_shapes(*(np.shape(entry) for entry in entries)))
            return function(*entries)
        return wrapped

    counting = blocks.Split(counted("coincident", split.coincident), counted("generic", split.generic),
                            split.quadruple)
    Omega = relu_state(coincide=True)
    units = blocks.units(K, M)
    slots = tuple(units[letter] for letter in ranges)
    tensor = jax.jit(lambda Omega: blocks.block_tensor(relu.module.INTEGRALS[name], Omega, slots, counting))(Omega)
    shape = tuple(len(slot) for slot in slots)
    distinct = sum(len(set(combination)) == len(slots) for combination in itertools.product(*slots))
    assert seen == {"generic": [(distinct,)], "coincident": [(int(np.prod(shape)),)]} and 0 < distinct < np.prod(shape)
    whole = jax.jit(lambda Omega: blocks.block_tensor(relu.module.INTEGRALS[name], Omega, slots))(Omega)
    np.testing.assert_allclose(tensor, whole, rtol=1e-13, atol=1e-15)  # the quadruple's slot order: ~1e-14


def test_every_integral_with_coincidence_variants_has_its_generic_form():
    """Every generated module gives each integral with coincidence variants its generic form
    (GENERIC or QUADRUPLES), so that none takes the variants twice."""
    checked = 0
    for info in pkgutil.iter_modules(generated.__path__):
        module = importlib.import_module(f"nndyn.generated.{info.name}")
        for key in getattr(module, "COINCIDENT", {}):
            assert key in getattr(module, "GENERIC", {}) or key in getattr(module, "QUADRUPLES", {}), (info.name, key)
            checked += 1
    assert checked >= 4 * 4  # ReLU's I2, J2, I3, I4 and its pairs'


@pytest.mark.parametrize("teacher", ["relu", "erf"])
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_vector_fields_split_by_repeated_units_equal_the_unsplit_ones(monkeypatch, teacher):
    """ReLU's flows (and a ReLU student's on an erf teacher: split per signature) with the
    repeated units' blocks given to the coincidence variants equal those without the split."""
    kernels = load("relu", teacher)
    _, state, args = random_state(seed=3)
    args = {**args, "T": jnp.asarray(args["T"]), "batch": 1.0}
    split = jax.jit(kernels.rhs)(0.0, state, args)
    monkeypatch.setattr(type(kernels), "split", lambda self, name, signature=None: None)
    whole = jax.jit(kernels.rhs)(0.0, state, args)
    for name in split:
        np.testing.assert_allclose(split[name], whole[name], rtol=1e-13, atol=1e-15, err_msg=name)
