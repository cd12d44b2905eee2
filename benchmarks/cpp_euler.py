"""Benchmark 11: whole processes as a user runs them, nndyn against a C++ forward-Euler code.

The erf soft committee machine (second layers fixed to 1), η = 0.5, t ∈ [0, 1000], K = M = 4
and 8, from one random start (N = 784): `python -c` importing nndyn and running one `integrate`
(200 saves; JAX's and nndyn's caches warm from a first run), against benchmarks/cpp/erf_ode.cpp
built here with `g++ -O3`: the same ODEs by forward Euler at dt = 0.01, every closed form at every
step, as nn2pp's scmpp_ode integrates them (nn2pp itself needs Armadillo; issue 33 recorded its
times on another 2-core machine: 1.0 s at K = 4, 17 s at K = 8). Each process is timed from
outside, start-up included."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.timing import Timing, ratio

SOURCE = Path(__file__).parent / "cpp" / "erf_ode.cpp"

SCRIPT = """
import numpy as np
import nndyn
K = {K}
rng = np.random.default_rng(0)
init = nndyn.OrderParameters.from_weights(rng.normal(size=(K, 784)), rng.normal(size=(K, 784)), v=np.ones(K))
trajectory = nndyn.integrate(nndyn.Setting(K=K, M=K, lr=0.5), init, np.linspace(0.0, {t_end}, 200))
print(float(trajectory.eg[-1]))
"""

FLOOR = "import jax"


def _start(K: int) -> str:
    """Q, R, T of the start, as the C++ code reads them (the same draw as SCRIPT's)."""
    import nndyn

    rng = np.random.default_rng(0)
    init = nndyn.OrderParameters.from_weights(rng.normal(size=(K, 784)), rng.normal(size=(K, 784)), v=np.ones(K))
    return " ".join(repr(float(value)) for value in (*np.ravel(init.Q), *np.ravel(init.R), *np.ravel(init.T)))


def _timed(command: list[str], repeats: int, stdin: str | None = None) -> tuple[Timing, str]:
    """Wall seconds of a fresh process (median [min–max] of `repeats`) and its last stdout line."""
    samples, output = [], ""
    for _ in range(repeats):
        began = time.perf_counter()
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, check=True)
        samples.append(time.perf_counter() - began)
        output = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
    samples.sort()
    return Timing(samples[len(samples) // 2], samples[0], samples[-1]), output


def run(toy: bool) -> dict:
    widths, t_end, repeats = ((2,), 10.0, 1) if toy else ((4, 8), 1000.0, 3)
    title = "11. Whole process against a C++ forward-Euler code (erf soft committee, η = 0.5)"
    compiler = shutil.which("g++")
    if compiler is None:
        return {"title": title, "rows": [("C++ baseline", "not built: no g++ on this machine")]}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        binary = str(Path(folder) / "erf_ode")
        subprocess.run([compiler, "-O3", "-o", binary, str(SOURCE)], check=True, capture_output=True)
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        rows.append(("C++ compiler (g++ -O3)", version))
        if not toy:  # toy size: the harness alone, one process of each kind
            floor, _ = _timed([sys.executable, "-c", FLOOR], repeats)
            rows.append(("floor: a fresh process that only imports jax", str(floor)))
        for K in widths:
            script = SCRIPT.format(K=K, t_end=t_end)
            if not toy:
                _timed([sys.executable, "-c", script], 1)  # fills the caches
            ours, eg = _timed([sys.executable, "-c", script], repeats)
            theirs, output = _timed([binary, str(K), str(K), "0.5", str(t_end), "0.01"], repeats, _start(K))
            rows.append((f"K = M = {K}, t ∈ [0, {t_end:g}]: C++ Euler dt = 0.01, whole process", str(theirs)))
            rows.append((f"K = M = {K}: nndyn, whole process (warm caches)", str(ours)))
            rows.append((f"K = M = {K}: speed-up of nndyn", ratio(theirs, ours)))
            rows.append((f"K = M = {K}: final ε_g, nndyn and C++", f"{float(eg):.6g}, {float(output):.6g}"))
    return {"title": title, "rows": rows}
