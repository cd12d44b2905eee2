"""Standard normal float32 variates for the SGD simulator, fast on CPU.

`normal(key, shape)` returns exactly `jax.random.normal(key, shape, jnp.float32)` as JAX computes
it with ``jax_threefry_partitionable`` off (JAX's original stream): the counters 0..n-1 are split
in two halves, hashed in pairs by Threefry-2x32 with 20 rounds (Salmon et al., SC 2011; JAX's
default key), the 32-bit words become uniforms in [nextafter(-1, 0), 1) through their top 23
bits, and a normal is √2 erf⁻¹(u). tests/test_simulate.py checks it bit for bit against JAX and
the hash against Random123's known-answer vectors.

Why not call JAX: on CPU, JAX lowers Threefry as a rolled loop over its five groups of four
rounds (to keep compile time small), so the whole counter array goes through memory five times;
and its partitionable stream (the default since JAX 0.5) spends one hash per word instead of
one per two words. Written out here, XLA fuses the hash into one vectorised loop and uniform
and erf⁻¹ into another: 1.5–3× cheaper per normal than `jax.random.normal` on this project's
CPUs (benchmarks/RESULTS.md: 2.3 against 3.4 ns with AVX-512, 3.3 against 10 ns with AVX2
only). Drawing inputs is most of the cost of an SGD step.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)  # rotation of round r is ROTATIONS[r % 8]
KEY_PARITY = np.uint32(0x1BD11BDA)
ROUNDS = 20


def _rotate_left(x, bits: int):
    return (x << np.uint32(bits)) | (x >> np.uint32(32 - bits))


def threefry2x32(key, x0, x1):
    """Threefry-2x32-20 of the counter pairs (x0, x1) (uint32 arrays of one shape) under `key`
    (uint32 (2,)); returns the two hashed words, each of x0's shape."""
    schedule = (key[0], key[1], key[0] ^ key[1] ^ KEY_PARITY)
    x0, x1 = x0 + schedule[0], x1 + schedule[1]
    for r in range(ROUNDS):
        x0 = x0 + x1
        x1 = _rotate_left(x1, ROTATIONS[r % 8]) ^ x0
        if r % 4 == 3:  # key injection s after every fourth round
            s = r // 4 + 1
            x0 = x0 + schedule[s % 3]
            x1 = x1 + schedule[(s + 1) % 3] + np.uint32(s)
    return x0, x1


def random_bits(key, count: int):
    """`count` uint32 words of key's stream (JAX's `_threefry_random_bits_original`): (count,)."""
    if count >= 2**32:
        raise ValueError(f"at most 2**32 - 1 words per key, asked for {count}")
    counters = jnp.arange(count, dtype=jnp.uint32)
    if count % 2:
        counters = jnp.append(counters, jnp.uint32(0))  # JAX pads an odd count with counter 0
    half = len(counters) // 2
    first, second = threefry2x32(key, counters[:half], counters[half:])
    # XLA fuses elementwise: two outputs would be two fusions, each hashing everything. Packed
    # in one uint64 and materialised (the barrier), each pair of counters is hashed once.
    packed = jax.lax.optimization_barrier(
        (first.astype(jnp.uint64) << np.uint64(32)) | second.astype(jnp.uint64))
    words = jnp.concatenate([(packed >> np.uint64(32)).astype(jnp.uint32), packed.astype(jnp.uint32)])
    return words[:count]


def normal(key, shape) -> jax.Array:
    """Standard normal float32 variates of `shape` from `key` (a raw uint32 (2,) key such as
    `jax.random.PRNGKey(seed)`, or a typed threefry key): equal to
    `jax.random.normal(key, shape, jnp.float32)` under ``jax_threefry_partitionable=False``."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    bits = random_bits(key, math.prod(shape)).reshape(shape)
    one = np.float32(1.0)
    low = np.nextafter(np.float32(-1.0), np.float32(0.0))
    uniform = jax.lax.bitcast_convert_type((bits >> np.uint32(9)) | one.view(np.uint32), jnp.float32) - one
    uniform = jnp.maximum(low, uniform * (one - low) + low)
    # materialised once (the barrier), not recomputed by each consumer XLA would fuse it into
    return jax.lax.optimization_barrier(np.float32(math.sqrt(2.0)) * jax.lax.erf_inv(uniform))
