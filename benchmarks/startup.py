"""Benchmark 2: a fresh process from `import nndyn` to its first finished `integrate` (the run of
benchmark 1), with nndyn's caches (JAX's persistent compilation cache and the exported solves,
nndyn.core.cache) empty and warm."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from benchmarks.timing import Timing, ratio

SCRIPT = """
import time
start = time.perf_counter()
import numpy as np
import nndyn
from benchmarks.ode import problem
setting, init, times = problem({t_end})
nndyn.integrate(setting, init, times).eg.block_until_ready()
print(time.perf_counter() - start)
"""


#: The floor: a fresh process that only imports JAX (timed the same way).
FLOOR = """
import time
start = time.perf_counter()
import jax
print(time.perf_counter() - start)
"""


def _fresh_process(t_end: float, cache: str, script: str = SCRIPT) -> float:
    environment = {**os.environ, "NNDYN_COMPILATION_CACHE": cache}
    result = subprocess.run([sys.executable, "-c", script.format(t_end=t_end)], env=environment,
                            capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def _timing(samples: list[float]) -> Timing:
    samples = sorted(samples)
    return Timing(samples[len(samples) // 2], samples[0], samples[-1])


def _repeat(t_end: float, cache: str, repeats: int, script: str = SCRIPT) -> Timing:
    return _timing([_fresh_process(t_end, cache, script) for _ in range(repeats)])


def run(toy: bool) -> dict:
    t_end, repeats = (5.0, 1) if toy else (1000.0, 5)
    cold = []  # each in an empty cache folder: a new machine's first run, which fills the cache
    for _ in range(repeats - 1):
        with tempfile.TemporaryDirectory() as empty:
            cold.append(_fresh_process(t_end, empty))
    with tempfile.TemporaryDirectory() as cache:
        cold.append(_fresh_process(t_end, cache))  # this one's cache is then warm
        warm = _repeat(t_end, cache, repeats)
    floor = _repeat(t_end, "off", repeats, FLOOR)
    return {
        "title": "2. Start-up: fresh process, `import nndyn` to the first finished `integrate`",
        "rows": [
            ("caches empty (a new cache folder, which the run fills)", str(_timing(cold))),
            ("caches warm (compiled programs and exported solves)", str(warm)),
            ("speed-up", ratio(_timing(cold), warm)),
            ("floor: a fresh process that only imports jax", str(floor)),
            ("warm start-up above the floor", f"{warm.median - floor.median:.2f} s"),
        ],
    }
