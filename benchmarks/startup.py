"""Benchmark 2: a fresh process from `import nndyn` to its first finished `integrate` (the run of
benchmark 1), with nndyn's caches (JAX's persistent compilation cache and the exported solves,
nndyn.core.cache) off and warm."""

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


def _repeat(t_end: float, cache: str, repeats: int, script: str = SCRIPT) -> Timing:
    samples = sorted(_fresh_process(t_end, cache, script) for _ in range(repeats))
    return Timing(samples[len(samples) // 2], samples[0], samples[-1])


def run(toy: bool) -> dict:
    t_end, repeats = (5.0, 1) if toy else (1000.0, 5)
    cold = _repeat(t_end, "off", repeats)
    with tempfile.TemporaryDirectory() as cache:
        _fresh_process(t_end, cache)  # fills the cache
        warm = _repeat(t_end, cache, repeats)
    floor = _repeat(t_end, "off", repeats, FLOOR)
    return {
        "title": "2. Start-up: fresh process, `import nndyn` to the first finished `integrate`",
        "rows": [
            ("caches off (NNDYN_COMPILATION_CACHE=off)", str(cold)),
            ("caches warm (compiled programs and exported solves)", str(warm)),
            ("speed-up", ratio(cold, warm)),
            ("floor: a fresh process that only imports jax", str(floor)),
            ("warm start-up above the floor", f"{warm.median - floor.median:.2f} s"),
        ],
    }
