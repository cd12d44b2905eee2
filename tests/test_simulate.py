"""The SGD simulator's own guarantees: its input stream is JAX's, each seed's run is its own,
and float32 costs only rounding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nndyn
from nndyn.core import normals

# Random123's known-answer vectors for Threefry-2x32-20: (key, counter) -> output
THREEFRY_KAT = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("key, counter, expected", THREEFRY_KAT)
def test_threefry_matches_the_known_answers(key, counter, expected):
    key, counter = jnp.asarray(key, jnp.uint32), jnp.asarray(counter, jnp.uint32)
    assert tuple(int(word) for word in normals.threefry2x32(key, counter[0], counter[1])) == expected


@pytest.mark.parametrize("shape", [(1,), (7,), (5, 3), (196, 1, 784), (2, 3, 4)])
def test_normals_are_jax_normals_bit_for_bit(shape):
    key = jax.random.fold_in(jax.random.PRNGKey(11), len(shape))
    with jax.threefry_partitionable(False):
        expected = jax.random.normal(key, shape, jnp.float32)
    ours = jax.jit(normals.normal, static_argnums=1)(key, shape)
    assert ours.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(expected))


def test_a_typed_key_draws_what_its_raw_key_draws():
    np.testing.assert_array_equal(np.asarray(normals.normal(jax.random.key(5), (6,))),
                                  np.asarray(normals.normal(jax.random.PRNGKey(5), (6,))))


def test_normals_under_vmap_are_each_keys_normals():
    keys = jax.random.split(jax.random.PRNGKey(3), 5)
    batched = jax.jit(jax.vmap(lambda key: normals.normal(key, (9, 4))))(keys)
    with jax.threefry_partitionable(False):
        for key, values in zip(keys, batched):
            np.testing.assert_array_equal(np.asarray(values), np.asarray(jax.random.normal(key, (9, 4), jnp.float32)))


@pytest.mark.slow
def test_a_seeds_run_does_not_depend_on_the_seeds_run_with_it():
    setting = nndyn.Setting(K=2, M=2, lr=0.5, train_second_layer=True)
    together = nndyn.simulate(setting, N=100, t_max=3, seeds=[0, 1, 2, 3, 4, 5], held_out=50)
    alone = nndyn.simulate(setting, N=100, t_max=3, seeds=[4], held_out=50)
    # equal up to the order of floating-point operations, which batching may change
    np.testing.assert_allclose(together.Q[4], alone.Q[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(together.eg[4], alone.eg[0], rtol=1e-12, atol=1e-14)
    assert not np.allclose(together.Q[3], together.Q[4])


@pytest.mark.slow
def test_float32_costs_rounding_far_below_the_sampling_noise():
    """Same inputs in both precisions, so the difference is rounding alone; it must be < 1% of
    the seed-to-seed spread of ε_g (which is O(1/√N))."""
    setting = nndyn.Setting(K=3, M=2, lr=0.5, sigma=0.1, train_second_layer=True)
    runs = {dtype: nndyn.simulate(setting, N=400, t_max=10, seeds=8, held_out=50, dtype=dtype)
            for dtype in (jnp.float64, jnp.float32)}
    difference = np.abs(np.asarray(runs[jnp.float32].eg) - np.asarray(runs[jnp.float64].eg)).max()
    spread = np.asarray(runs[jnp.float64].eg).std(axis=0)[1:].min()
    assert difference < 0.01 * spread, (difference, spread)


def test_float16_is_refused():
    with pytest.raises(ValueError, match="dtype"):
        nndyn.simulate(nndyn.Setting(K=1, M=1, lr=0.5), N=10, t_max=1, seeds=1, dtype=jnp.float16)
