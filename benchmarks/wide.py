"""Benchmark 8: wide networks. The arithmetic limit of the erf vector field (its I4 blocks
evaluated at the rate the machine streams them), the vector field against it at K = M = 32,
K = 100 with M = 2, and K = M = 100, and one integration of a wide two-layer network."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import nndyn
from benchmarks.timing import Timing, per_evaluation, repeat
from nndyn.core.kernels import load

erf = load("erf")


def _covariances(count: int, seed: int = 0) -> jnp.ndarray:
    """`count` random valid 4×4 covariance blocks (count, 4, 4), of unit scale."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(count, 4, 8)) / np.sqrt(8)
    return jnp.asarray(A @ np.swapaxes(A, 1, 2))


def streaming(integral, count: int, sweeps: int, repeats: int) -> tuple[Timing, float, float]:
    """Seconds per block of `integral` (a function of a 4×4 block's 10 entries c_pq, p ≤ q, e.g.
    erf's I4) at the machine's rate for its mix of arithmetic and transcendental calls: on `count`
    blocks held in cache, `sweeps` times inside one jitted loop (each sweep depends on the last;
    no gathers, no contraction); and XLA's count of FLOPs and transcendental calls per block."""
    entries = tuple(_covariances(count)[:, p, q] for p in range(4) for q in range(p, 4))

    @jax.jit
    def loop(entries):
        def body(_, entries):
            value = integral(*entries)
            return (entries[0] + 1e-30 * value, *entries[1:])
        return jax.lax.fori_loop(0, sweeps, body, entries)

    jax.block_until_ready(loop(entries))
    timing = repeat(lambda: jax.block_until_ready(loop(entries)), repeats).scaled(1 / (count * sweeps))
    cost = jax.jit(integral).lower(*entries).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return timing, float(cost.get("flops", np.nan)) / count, float(cost.get("transcendentals", np.nan)) / count


def i4_blocks(K: int, M: int) -> int:
    """I4 blocks per vector-field evaluation: the dQ term is folded on pairs i ≤ k of students
    and pairs c ≤ d of all units (nndyn.core.blocks.folded_contraction)."""
    return K * (K + 1) // 2 * ((K + M) * (K + M + 1) // 2)


def integration(K: int, M: int, t_max: float) -> tuple[float, float, float]:
    """Wall seconds of one `nndyn.integrate` (two-layer erf, default options, compilation
    included), its ε_g at the end, and the vector field's temporary memory in bytes (XLA's
    memory analysis of the compiled, chunked program)."""
    rng = np.random.default_rng(0)
    N = 10 * (K + M)
    init = nndyn.OrderParameters.from_weights(rng.normal(size=(K, N)) * 0.5, rng.normal(size=(M, N)),
                                              v=rng.normal(size=K) * 0.5)
    setting = nndyn.Setting(K=K, M=M, lr=0.5, train_second_layer=True)
    start = time.perf_counter()
    trajectory = nndyn.integrate(setting, init, np.linspace(0.0, t_max, 11))
    seconds = time.perf_counter() - start
    args = setting.ode_args(init.T, init.v_star)
    memory = jax.jit(erf.rhs).lower(0.0, init.as_ode_state(), args).compile().memory_analysis().temp_size_in_bytes
    return seconds, float(np.asarray(trajectory.eg)[-1]), float(memory)


def run(toy: bool) -> dict:
    repeats = 2 if toy else 5
    per_block, flops, transcendentals = streaming(erf.module.INTEGRALS["I4"], 1 << 12, 4 if toy else 256, repeats)
    rows = [("I4 (erf) on blocks in cache: time per block, FLOPs and transcendental calls per block",
             f"{per_block}, {flops:.0f}, {transcendentals:.0f}")]
    shapes = ((4, 4), (8, 2)) if toy else ((32, 32), (100, 2), (100, 100))
    for K, M in shapes:
        timing = _evaluation(K, M, 1 if K >= 100 else max(2, int(2e5 / K**4)), 1 if K >= 100 else repeats)
        limit = i4_blocks(K, M) * per_block.median
        rows.append((f"K = {K}, M = {M}: time per evaluation, I4 blocks, their streaming time, ratio",
                     f"{timing}, {i4_blocks(K, M):.3g}, {limit * 1e3:.3g} ms, {timing.median / limit:.2f}×"))
    K, M, t_max = (8, 4, 10.0) if toy else (100, 4, 100.0)
    seconds, eg, memory = integration(K, M, t_max)
    rows.append((f"K = {K}, M = {M}, t ∈ [0, {t_max:g}]: one integration (wall, compilation included), final ε_g, "
                 "temp memory of the vector field", f"{seconds:.1f} s, {eg:.4g}, {memory / 2**20:.0f} MiB"))
    return {"title": "8. Wide networks: the vector field against its arithmetic limit", "rows": rows}


def _evaluation(K: int, M: int, evaluations: int, repeats: int) -> Timing:
    """Seconds per evaluation of the two-layer erf vector field at a random (K, M) state."""
    rng = np.random.default_rng(K + M)
    N = 4 * (K + M) + 50
    init = nndyn.OrderParameters.from_weights(rng.normal(size=(K, N)), rng.normal(size=(M, N)), v=rng.normal(size=K))
    args = nndyn.Setting(K=K, M=M, lr=0.5, train_second_layer=True).ode_args(init.T, init.v_star)
    return per_evaluation(erf.rhs, init.as_ode_state(), args, evaluations, repeats)
