"""Timing helpers: medians of repeats, in-graph loops, machine peak."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp


@dataclass(frozen=True)
class Timing:
    """Seconds: the median of the repeats and their range."""

    median: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{_seconds(self.median)} [{_seconds(self.low)}–{_seconds(self.high)}]"

    def scaled(self, factor: float) -> "Timing":
        return Timing(self.median * factor, self.low * factor, self.high * factor)


def _seconds(value: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} s"


def repeat(function, repeats: int) -> Timing:
    """Time `function()` (which must block until its result is ready) `repeats` times."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return Timing(statistics.median(samples), min(samples), max(samples))


def per_evaluation(rhs, y, args, evaluations: int, repeats: int) -> Timing:
    """Seconds per evaluation of the vector field `rhs(t, y, args)` inside one jitted loop (each
    evaluation depends on the last)."""
    @jax.jit
    def loop(y):
        def body(_, y):
            flow = rhs(0.0, y, args)
            return {name: y[name] + 1e-9 * flow[name] for name in y}
        return jax.lax.fori_loop(0, evaluations, body, y)

    jax.block_until_ready(loop(y))
    return repeat(lambda: jax.block_until_ready(loop(y)), repeats).scaled(1 / evaluations)


def ratio(baseline: Timing, ours: Timing) -> str:
    """baseline / ours on the medians, with the range from the extreme pairs."""
    return f"{baseline.median / ours.median:.1f}× [{baseline.low / ours.high:.1f}–{baseline.high / ours.low:.1f}]"


def peak_flops(size: int, repeats: int) -> float:
    """float64 FLOP/s of a size×size matrix product: the machine's practical peak."""
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), dtype=jnp.float64)
    product = jax.jit(lambda a: a @ a)
    product(a).block_until_ready()
    timing = repeat(lambda: product(a).block_until_ready(), repeats)
    return 2 * size**3 / timing.low
