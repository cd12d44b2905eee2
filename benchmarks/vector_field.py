"""Benchmark 3: one evaluation of the erf vector field (two-layer, K = M) by width, with its
FLOP count (XLA's cost analysis of the unchunked program), the achieved fraction of the
machine's matmul peak, and the compiled (chunked) program's temporary memory."""

from __future__ import annotations

import jax
import numpy as np

import nndyn
from benchmarks.timing import peak_flops, per_evaluation
from nndyn.core import blocks
from nndyn.core.kernels import load

erf = load("erf")


def _state(K: int):
    rng = np.random.default_rng(K)
    init = nndyn.OrderParameters.from_weights(rng.normal(size=(K, 4 * K + 50)), rng.normal(size=(K, 4 * K + 50)),
                                              v=rng.normal(size=K))
    args = nndyn.Setting(K=K, M=K, lr=0.5, train_second_layer=True).ode_args(init.T, init.v_star)
    return init.as_ode_state(), args


def by_width(K: int, evaluations: int, repeats: int):
    """Seconds per evaluation inside one jitted loop, FLOPs and temporary memory."""
    y, args = _state(K)
    timing = per_evaluation(erf.rhs, y, args, evaluations, repeats)
    memory = jax.jit(erf.rhs).lower(0.0, y, args).compile().memory_analysis().temp_size_in_bytes
    # XLA's cost analysis counts a loop body once: count the FLOPs of the unchunked program
    # (traced afresh: a new function, so that JAX's trace cache does not return the chunked one)
    chunk, blocks.CHUNK_ELEMENTS = blocks.CHUNK_ELEMENTS, 1 << 62
    try:
        cost = jax.jit(lambda t, y, args: erf.rhs(t, y, args)).lower(0.0, y, args).cost_analysis()
    finally:
        blocks.CHUNK_ELEMENTS = chunk
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return timing, float(cost.get("flops", float("nan"))), memory


def run(toy: bool) -> dict:
    widths, repeats = ((2, 4), 2) if toy else ((2, 4, 8, 16, 32), 5)
    peak = peak_flops(256 if toy else 1024, repeats)
    rows = [("float64 matmul peak of this machine", f"{peak / 1e9:.1f} GFLOP/s")]
    for K in widths:
        evaluations = max(2, int(2e5 / K**4))
        timing, flops, memory = by_width(K, evaluations, repeats)
        achieved = flops / timing.median
        rows.append((f"K = M = {K}: time per evaluation", str(timing)))
        rows.append((f"K = M = {K}: FLOPs, achieved, fraction of peak, temp memory",
                     f"{flops:.3g}, {achieved / 1e9:.2f} GFLOP/s, {achieved / peak:.1%}, {memory / 2**20:.2f} MiB"))
    if not toy:  # the widest: chunked contractions keep it within memory; one evaluation
        timing, flops, memory = by_width(100, 1, 1)
        rows.append(("K = M = 100: time of one evaluation, FLOPs, temp memory",
                     f"{timing}, {flops:.3g}, {memory / 2**20:.0f} MiB"))
    return {"title": "3. Vector field: one evaluation by width (two-layer erf)", "rows": rows}
