"""Benchmark 10: structured inputs, the cost of the flows per level against L: one vector-field
evaluation (erf soft committee machine, K = M = 4) as a ratio to the isotropic field timed in
the same run, and a whole `integrate` over t ∈ [0, 1000] from small weights, power-law spectra
(a = 1) in L levels."""

from __future__ import annotations

import time

import jax
import numpy as np

import nndyn
from benchmarks.timing import per_evaluation
from nndyn.core import spectrum


def _state(setting: nndyn.Setting, N: int = 1200):
    rng = np.random.default_rng(0)
    W, W_star = 0.1 * rng.normal(size=(setting.K, N)), rng.normal(size=(setting.M, N))
    return nndyn.OrderParameters.from_weights(W, W_star, spectrum=setting.input_spectrum)


def _field(setting: nndyn.Setting, evaluations: int, repeats: int):
    """Seconds per vector-field evaluation of `setting` inside one jitted loop."""
    state = _state(setting)
    args = setting.ode_args(state.T_levels if setting.structured else state.T, state.v_star)
    return per_evaluation(setting.kernels.rhs, state.as_ode_state(), args, evaluations, repeats)


def run(toy: bool) -> dict:
    evaluations, repeats, counts, t_end = (20, 2, (1, 10), 50.0) if toy else (2000, 5, (1, 10, 30, 100), 1000.0)
    isotropic = nndyn.Setting(K=4, M=4, lr=0.5)
    base = _field(isotropic, evaluations, repeats)
    rows = [("isotropic: time per vector-field evaluation", str(base))]
    for count in counts:
        setting = isotropic.replace(input_spectrum=spectrum.power_law(1.0, count) if count > 1 else ((1.0, 1.0),))
        timing = _field(setting, evaluations, repeats)
        rows.append((f"L = {count}: time per evaluation, ratio to isotropic",
                     f"{timing}, {timing.median / base.median:.1f}×"))
        state, t = _state(setting), np.linspace(0, t_end, 201)
        nndyn.integrate(setting, state, t)  # compiled (and run) once
        start = time.perf_counter()
        jax.block_until_ready(nndyn.integrate(setting, state, t).eg)
        rows.append((f"L = {count}: integrate t ∈ [0, {t_end:g}] (Tsit5, rtol 1e-8)",
                     f"{time.perf_counter() - start:.2f} s"))
    return {"title": "10. Structured inputs: flows per level against L (erf, K = M = 4)", "rows": rows}
