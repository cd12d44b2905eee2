"""Benchmark 4: online SGD, N = 784, K = M = 4, B = 1: the simulator (1 seed, 16 seeds) against a
Python loop calling a jitted single step, with an estimate of the per-sample limit."""

from __future__ import annotations

import jax
import jax.numpy as jnp

import nndyn
from benchmarks.timing import peak_flops, ratio, repeat

N, K, M = 784, 4, 4


def blog_style_loop(setting):
    """The blog's training loop, one jitted call per SGD step. Returns `loop(steps)`; the step
    is compiled once, here."""
    kernels = setting.kernels
    W_teacher = jax.random.normal(jax.random.PRNGKey(0), (M, N))

    @jax.jit
    def step(W, key):
        key, draw = jax.random.split(key)
        x = jax.random.normal(draw, (1, N))
        lam = x @ W.T / jnp.sqrt(N)
        delta = kernels.g(x @ W_teacher.T / jnp.sqrt(N)).sum(-1) - kernels.g(lam).sum(-1)
        return W + (setting.lr / jnp.sqrt(N)) * (delta[:, None] * kernels.g_prime(lam)).T @ x, key

    def loop(steps: int) -> None:
        W, key = jax.random.normal(jax.random.PRNGKey(1), (K, N)), jax.random.PRNGKey(2)
        for _ in range(steps):
            W, key = step(W, key)
        W.block_until_ready()

    loop(2)
    return loop


def _normals_per_second(repeats: int) -> float:
    draw = jax.jit(lambda key: jax.random.normal(key, (256, N), dtype=jnp.float32))
    draw(jax.random.PRNGKey(0)).block_until_ready()
    timing = repeat(lambda: draw(jax.random.PRNGKey(1)).block_until_ready(), repeats)
    return 256 * N / timing.low


def run(toy: bool) -> dict:
    steps, baseline_steps, repeats = (2_000, 500, 2) if toy else (200_000, 20_000, 5)
    setting = nndyn.Setting(K=K, M=M, lr=0.5)
    blog_style = blog_style_loop(setting)
    baseline = repeat(lambda: blog_style(baseline_steps), repeats).scaled(1 / baseline_steps)
    rows = [("blog-style loop: time per sample", str(baseline)),
            ("blog-style loop: samples/s", f"{1 / baseline.median:.3g}")]
    per_sample = {}
    for seeds in (1, 16):
        run_once = lambda seeds=seeds: nndyn.simulate(setting, N, steps / N, seeds=seeds, held_out=100).eg.block_until_ready()  # noqa: E731
        run_once()
        timing = repeat(run_once, repeats).scaled(1 / (steps * seeds))
        per_sample[seeds] = timing
        rows.append((f"nndyn.simulate, {seeds} seed(s): time per sample", str(timing)))
        rows.append((f"nndyn.simulate, {seeds} seed(s): samples/s, speed-up", f"{1 / timing.median:.3g}, {ratio(baseline, timing)}"))
    normals, peak = _normals_per_second(repeats), peak_flops(512, repeats)
    flops = 2 * (K + M) * N + 3 * K * N  # λ and ρ, then the rank-1 update of W
    limit = N / normals + flops / peak
    rows.append(("limit per sample: N float32 normals + matrix-vector FLOPs at peak",
                 f"{limit * 1e6:.2f} µs ({N / normals * 1e6:.2f} µs drawing, {flops / peak * 1e6:.2f} µs arithmetic)"))
    rows.append(("achieved fraction of that limit (16 seeds)", f"{limit / per_sample[16].median:.0%}"))
    return {"title": f"4. SGD: N = {N}, K = M = {K}, B = 1, {steps} steps", "rows": rows}
