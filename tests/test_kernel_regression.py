"""The kernels give bit-identical values across refactorings: values recorded from the code
before the redesign of issue 12 (commit 10bf758: every built-in's g, g', I2, J2, I3, I4 on
random blocks and on every index pattern of a joint covariance, the vector field and ε_g on
random states, short integrations and a short simulation), compared exactly, jitted as the
runtime runs them. A change of the numbers must be deliberate: re-record tests/data/kernel_values.npz
and say why in the commit."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nndyn
from nndyn.core.kernels import load

RECORDED = np.load(__import__("pathlib").Path(__file__).parent / "data" / "kernel_values.npz")
ACTIVATIONS = ("erf", "linear", "quadratic", "relu")
#: relu compiles slowly (its coincidence variants): in the full suite only
MARKED = [pytest.param(name, marks=pytest.mark.slow) if name == "relu" else name for name in ACTIVATIONS]


def inputs():
    """The blocks and states the values were recorded on (the same draws, in the same order)."""
    rng = np.random.default_rng(20261130)

    def random_blocks(size, count):
        A = rng.normal(size=(count, size, size + 1))
        return A @ np.swapaxes(A, -1, -2) / (size + 1)

    A = rng.normal(size=(4, 6)) / np.sqrt(6)
    Omega = A @ A.T

    def pattern_blocks(size):
        index = np.array(list(itertools.product(range(4), repeat=size)))
        return Omega[index[:, :, None], index[:, None, :]]

    states = []
    for K, M in ((2, 2), (3, 2), (1, 2), (4, 3)):
        W, W_star = rng.normal(size=(K, 50)), rng.normal(size=(M, 50))
        states.append((W @ W.T / 50, W @ W_star.T / 50, W_star @ W_star.T / 50, rng.normal(size=K), rng.normal(size=M)))
    blocks = {}
    for name in ACTIVATIONS:
        for integral, size in (("I2", 2), ("J2", 2), ("I3", 3), ("I4", 4)):
            blocks[name, integral] = (random_blocks(size, 64), pattern_blocks(size))
    return blocks, states, rng


@pytest.fixture(scope="module")
def recorded_inputs():
    return inputs()


@pytest.mark.parametrize("name", MARKED)
def test_kernels_are_bit_identical_to_the_recorded_values(name, recorded_inputs):
    blocks, states, _ = recorded_inputs
    kernels = load(name)
    x = np.concatenate([np.linspace(-3, 3, 61), [0.0, -0.0, 1e-300]])
    np.testing.assert_array_equal(jax.jit(kernels.g)(x), RECORDED[f"{name}/g"])
    np.testing.assert_array_equal(jax.jit(kernels.g_prime)(x), RECORDED[f"{name}/g_prime"])
    for integral in ("I2", "J2", "I3", "I4"):
        evaluate = jax.jit(lambda C, integral=integral: kernels.integral(integral, C))
        random, patterns = blocks[name, integral]
        np.testing.assert_array_equal(evaluate(random), RECORDED[f"{name}/{integral}/random"], err_msg=integral)
        np.testing.assert_array_equal(evaluate(patterns), RECORDED[f"{name}/{integral}/patterns"], err_msg=integral)
    for j, (Q, R, T, v, v_star) in enumerate(states):
        for train in (0.0, 1.0):
            y = {"Q": jnp.asarray(Q), "R": jnp.asarray(R), "v": jnp.asarray(v)}
            args = {"T": jnp.asarray(T), "v_star": jnp.asarray(v_star), "lr": 0.7, "lr_v": 0.3, "sigma": 0.2,
                    "batch": 2.0, "train_v": train}
            flows = jax.jit(kernels.rhs)(0.0, y, args)
            for key in ("Q", "R", "v"):
                np.testing.assert_array_equal(flows[key], RECORDED[f"{name}/rhs/{j}/{int(train)}/{key}"], err_msg=key)
            np.testing.assert_array_equal(jax.jit(kernels.eg)(y, args), RECORDED[f"{name}/eg/{j}/{int(train)}"])


@pytest.mark.slow
def test_integrations_and_a_simulation_are_bit_identical(recorded_inputs):
    *_, rng = inputs()  # the draws after the kernels' inputs, as recorded
    W, W_star = rng.normal(size=(2, 100)), rng.normal(size=(2, 100))
    init = nndyn.OrderParameters.from_weights(W, W_star)
    t = np.linspace(0, 20, 11)
    trajectory = nndyn.integrate(nndyn.Setting(K=2, M=2, lr=0.5), init, t)
    np.testing.assert_array_equal(trajectory.eg, RECORDED["integrate/erf/eg"])
    np.testing.assert_array_equal(trajectory.Q, RECORDED["integrate/erf/Q"])
    euler = nndyn.integrate(nndyn.Setting(K=2, M=2, lr=0.5), init, t, method="euler", dt=0.01)
    np.testing.assert_array_equal(euler.eg, RECORDED["integrate/erf_euler/eg"])
    init = nndyn.OrderParameters.from_weights(rng.normal(size=(3, 100)) * 0.5, W_star, v=rng.normal(size=3),
                                              v_star=np.ones(2))
    relu = nndyn.integrate(nndyn.Setting(K=3, M=2, lr=0.5, train_second_layer=True, activation="relu"), init, t)
    np.testing.assert_array_equal(relu.eg, RECORDED["integrate/relu/eg"])
    np.testing.assert_array_equal(relu.v, RECORDED["integrate/relu/v"])
    setting = nndyn.Setting(K=2, M=2, lr=0.5, train_second_layer=True, sigma=0.1, batch=2)
    sim = nndyn.simulate(setting, N=100, t_max=2, seeds=2, init_scale=0.5)
    for key in ("eg", "Q", "R", "v", "eg_test"):
        np.testing.assert_array_equal(getattr(sim, key), RECORDED[f"simulate/{key}"], err_msg=key)
