"""Benchmark 7: ε_g in the exponential tail (soft committee machine, K = M = 2, η = 0.5, from a
plateau start, t ∈ [0, 800]): the relative error of the default integration with and without the
tail's re-integration about its fixed point, against a converged reference (rtol 1e-12; its own
agreement with rtol 1e-11 is the last row), and what the re-integration costs."""

from __future__ import annotations

import numpy as np

import nndyn
from benchmarks.timing import repeat


def _start(K: int):
    rng = np.random.default_rng(1)
    return nndyn.OrderParameters.from_weights(0.5 * rng.normal(size=(K, 1000)), rng.normal(size=(K, 1000)))


def _errors(run, reference, levels):
    eg, ours = np.asarray(reference.eg), np.asarray(run.eg)
    return [float(abs(ours[np.argmax(eg < level)] / eg[np.argmax(eg < level)] - 1)) for level in levels]


def run(toy: bool) -> dict:
    setting, start = nndyn.Setting(K=2, M=2, lr=0.5), _start(2)
    t = np.linspace(0, 100 if toy else 800, 101 if toy else 801)
    levels = (1e-4,) if toy else (1e-6, 1e-8, 1e-10)
    reference = nndyn.integrate(setting, start, t, rtol=1e-12, atol=1e-13, max_steps=10**7)
    coarser = nndyn.integrate(setting, start, t, rtol=1e-11, atol=1e-12, max_steps=10**7)
    rows = []
    for refine in (False, True):
        nndyn.integrate(setting, start, t, refine_tail=refine)
        timing = repeat(
            lambda refine=refine: nndyn.integrate(setting, start, t, refine_tail=refine).eg.block_until_ready(),
            2 if toy else 5,
        )
        errors = _errors(nndyn.integrate(setting, start, t, refine_tail=refine), reference, levels)
        label = "with the tail re-integrated (default)" if refine else "refine_tail = false"
        rows.append(
            (
                f"{label}: relative ε_g error at ε_g = {', '.join(f'{level:g}' for level in levels)}",
                ", ".join(f"{error:.1e}" for error in errors),
            )
        )
        rows.append((f"{label}: time per integration (warm)", str(timing)))
    rows.append(
        (
            "the reference against rtol 1e-11, same levels",
            ", ".join(f"{error:.1e}" for error in _errors(coarser, reference, levels)),
        )
    )
    return {"title": "7. ε_g in the exponential tail (K = M = 2, η = 0.5)", "rows": rows}
