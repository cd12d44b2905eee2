"""Benchmark 4: online SGD, N = 784, K = M = 4, B = 1: the simulator (float64 and float32; 1 seed,
16 seeds) against a Python loop calling a jitted single step; the cost of drawing the inputs, of
float32, and an estimate of the per-sample limit."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

import nndyn
from benchmarks.timing import Timing, peak_flops, ratio, repeat
from nndyn.core import normals

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


def _seconds_per_normal(draw, repeats: int) -> Timing:
    """Time per float32 normal of `draw(key, shape)`, jitted, on 16 seeds' blocks of inputs."""
    shape = (16 * 196, N)
    jitted = jax.jit(draw, static_argnums=1)
    jitted(jax.random.PRNGKey(0), shape).block_until_ready()
    return repeat(lambda: jitted(jax.random.PRNGKey(1), shape).block_until_ready(), repeats).scaled(
        1 / math.prod(shape)
    )


def run(toy: bool) -> dict:
    steps, baseline_steps, repeats = (2_000, 500, 2) if toy else (200_000, 20_000, 5)
    setting = nndyn.Setting(K=K, M=M, lr=0.5)
    blog_style = blog_style_loop(setting)
    baseline = repeat(lambda: blog_style(baseline_steps), repeats).scaled(1 / baseline_steps)
    rows = [
        ("blog-style loop: time per sample", str(baseline)),
        ("blog-style loop: samples/s", f"{1 / baseline.median:.3g}"),
    ]
    jax_normal = _seconds_per_normal(lambda key, shape: jax.random.normal(key, shape, jnp.float32), repeats)
    our_normal = _seconds_per_normal(normals.normal, repeats)
    rows.append(
        (
            "one float32 normal: jax.random.normal, nndyn.core.normals (same stream), ratio",
            f"{jax_normal}, {our_normal}, {ratio(jax_normal, our_normal)}",
        )
    )
    per_sample, final = {}, {}
    for dtype in (jnp.float64, jnp.float32):
        for seeds in (1, 16):

            def run_once(seeds=seeds, dtype=dtype):
                trajectory = nndyn.simulate(setting, N, steps / N, seeds=seeds, held_out=100, dtype=dtype)
                return trajectory.eg.block_until_ready()

            final[dtype, seeds] = np.asarray(run_once())
            timing = repeat(run_once, repeats).scaled(1 / (steps * seeds))
            per_sample[dtype, seeds] = timing
            label = f"nndyn.simulate, {jnp.dtype(dtype).name}, {seeds} seed(s)"
            rows.append((f"{label}: time per sample", str(timing)))
            rows.append((f"{label}: samples/s, speed-up", f"{1 / timing.median:.3g}, {ratio(baseline, timing)}"))
    rounding = np.abs(final[jnp.float32, 16] - final[jnp.float64, 16]).max()
    spread = final[jnp.float64, 16].std(axis=0)[1:].mean()
    rows.append(
        (
            "float32 cost: max |ε_g(float32) − ε_g(float64)| (same inputs), against the seeds' spread of ε_g",
            f"{rounding:.1e}, {spread:.1e}",
        )
    )
    peak = peak_flops(512, repeats)
    flops = 2 * (K + M) * N + 2 * K * N  # the local fields λ and ρ, then the rank-1 update of W
    limit = N * our_normal.low + flops / peak
    rows.append(
        (
            "limit per sample: N normals (nndyn.core.normals) + matrix-vector FLOPs at float64 peak",
            f"{limit * 1e6:.2f} µs ({N * our_normal.low * 1e6:.2f} µs drawing, {flops / peak * 1e6:.2f} µs arithmetic)",
        )
    )
    rows.append(
        ("achieved fraction of that limit (float64, 16 seeds)", f"{limit / per_sample[jnp.float64, 16].median:.0%}")
    )
    return {"title": f"4. SGD: N = {N}, K = M = {K}, B = 1, {steps} steps", "rows": rows}
