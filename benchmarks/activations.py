"""Benchmark 9: activations beyond erf. One vector-field evaluation (K = M = 4, two-layer) of
ReLU (closed forms with the Plackett orthant rule, whose share is timed apart) and of tanh and
the sigmoid (no closed form: the erf-mixture fallback, derived here into a temporary folder), as
ratios to erf timed in the same run; and one integration of each over t ∈ [0, 100]."""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import nndyn
from benchmarks.model import _field
from benchmarks.wide import streaming
from nndyn.core.kernels import load
from nndyn.core.special import sign_quadruple
from nndyn.derive.special import PLACKETT_ORDER

#: Activations without a closed form: name -> expression.
FALLBACK = {"tanh": "tanh(x)", "sigmoid": "1/(1 + exp(-x))"}


def _integration(setting: nndyn.Setting) -> tuple[float, float]:
    """(wall seconds, compilation included; final ε_g) of one integration over t ∈ [0, 100]."""
    rng = np.random.default_rng(1)
    start = nndyn.OrderParameters.from_weights(rng.normal(size=(setting.K, 500)) / np.sqrt(500),
                                               rng.normal(size=(setting.M, 500)), v=np.ones(setting.K))
    began = time.perf_counter()
    trajectory = nndyn.integrate(setting, start, np.linspace(0.0, 100.0, 51))
    return time.perf_counter() - began, float(trajectory.eg[-1])


def distinct_blocks(K: int, M: int) -> int:
    """I4 blocks of four distinct units in the folded dQ term (students i < k, units c < d apart
    from them): the only blocks the sign quadruple runs on (nndyn.core.blocks.on_units)."""
    return K * (K - 1) // 2 * ((K + M - 2) * (K + M - 3) // 2)


def run(toy: bool) -> dict:
    evaluations, repeats = (20, 2) if toy else (2000, 5)
    plain = nndyn.Setting(K=4, M=4, lr=0.5, train_second_layer=True)
    base = _field(plain, evaluations, repeats)
    rows = [("erf: time per vector-field evaluation", str(base))]
    relu = _field(plain.replace(activation="relu", teacher_activation="relu"), evaluations, repeats)
    rows.append(("ReLU: time per evaluation, ratio to erf", f"{relu}, {relu.median / base.median:.0f}×"))
    quadruple, flops, transcendentals = streaming(functools.partial(sign_quadruple, order=PLACKETT_ORDER),
                                                  1 << 10, 2 if toy else 64, repeats)
    share = distinct_blocks(4, 4) * quadruple.median
    rows.append((f"ReLU's sign quadruple ({PLACKETT_ORDER}-point Plackett rule): time per block in cache, FLOPs "
                 f"and transcendental calls per block; on the {distinct_blocks(4, 4)} blocks of distinct units",
                 f"{quadruple}, {flops:.0f}, {transcendentals:.0f}; {share * 1e6:.0f} µs"))
    rows.append(("ReLU less its sign quadruple: time per evaluation, ratio to erf",
                 f"{(relu.median - share) * 1e6:.0f} µs, {(relu.median - share) / base.median:.1f}×"))
    with tempfile.TemporaryDirectory() as folder:
        for name, expression in ({} if toy else FALLBACK).items():  # toy size: deriving them takes minutes
            began = time.perf_counter()
            command = ["-m", "nndyn.derive", "--name", name, "--expr", expression, "--out", folder]
            subprocess.run([sys.executable, *command], check=True, capture_output=True)
            derived = time.perf_counter() - began
            path = str(Path(folder) / f"{name}.py")
            module = load(path).module
            setting = plain.replace(activation=path, teacher_activation=path)
            timing = _field(setting, evaluations, repeats)
            rows.append((f"{name} (erf mixture of {len(module.MIXTURE)} terms): time per evaluation, ratio to erf; "
                         "nndyn.derive's time", f"{timing}, {timing.median / base.median:.0f}×, {derived:.0f} s"))
            wall, eg = _integration(setting)
            rows.append((f"{name}, t ∈ [0, 100]: one integration (wall, compilation included), final ε_g",
                         f"{wall:.1f} s, {eg:.4g}"))
    if not toy:
        wall, eg = _integration(plain)
        rows.append(("erf, t ∈ [0, 100]: one integration (wall, compilation included), final ε_g",
                     f"{wall:.1f} s, {eg:.4g}"))
    title = "9. Activations beyond erf: ReLU and the fallback against erf (K = M = 4, two-layer)"
    return {"title": title, "rows": rows}
