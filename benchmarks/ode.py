"""Benchmark 1: one ODE run (two-layer erf, K = M = 4, η = 0.5, t ∈ [0, 1000], 200 saves),
the default adaptive integrator against the blog's Python loop over a jitted Euler step."""

from __future__ import annotations

import warnings

import jax
import numpy as np

import nndyn
from benchmarks.timing import ratio, repeat

N_BLOG = 784
TSIT5_EVALUATIONS_PER_STEP = 6  # first-same-as-last: 6 new evaluations a step


def problem(t_end: float):
    setting = nndyn.Setting(K=4, M=4, lr=0.5, train_second_layer=True)
    rng = np.random.default_rng(0)
    init = nndyn.OrderParameters.from_weights(rng.normal(size=(4, N_BLOG)), rng.normal(size=(4, N_BLOG)),
                                              v=rng.normal(size=4))
    return setting, init, np.linspace(0.0, t_end, 200)


def blog_style_loop(setting, init):
    """The blog's integration: a Python loop calling a jitted Euler step at dt = 1/N.
    Returns `loop(steps)`; the step is compiled once, here."""
    kernels = setting.kernels
    args = setting.ode_args(init.T, init.v_star)
    dt = 1.0 / N_BLOG

    @jax.jit
    def step(y):
        flow = kernels.rhs(0.0, y, args)
        return {name: y[name] + dt * flow[name] for name in y}, kernels.eg(y, args)

    def loop(steps: int) -> None:
        y = init.as_ode_state()
        for _ in range(steps):
            y, eg = step(y)
        jax.block_until_ready(eg)

    loop(2)
    return loop


def run(toy: bool) -> dict:
    t_end, baseline_steps, repeats = (5.0, 200, 2) if toy else (1000.0, 20_000, 5)
    setting, init, times = problem(t_end)
    reference = nndyn.integrate(setting, init, times, rtol=1e-12, atol=1e-14)
    ours = lambda: nndyn.integrate(setting, init, times).eg.block_until_ready()  # noqa: E731
    ours()
    ours_time = repeat(ours, repeats)
    options = nndyn.ODEOptions()
    steps = int(nndyn.solve(setting.activation, init.as_ode_state(), setting.ode_args(init.T, init.v_star),
                            times, options).steps)
    ours_error = float(np.max(np.abs(nndyn.integrate(setting, init, times).eg - reference.eg)))

    blog_style = blog_style_loop(setting, init)
    total_steps = int(round(t_end * N_BLOG))
    baseline = repeat(lambda: blog_style(baseline_steps), repeats)
    baseline_time = baseline.scaled(total_steps / baseline_steps)
    with warnings.catch_warnings():  # saves between Euler steps are interpolated: fine for an error measurement
        warnings.simplefilter("ignore", RuntimeWarning)
        euler = nndyn.integrate(setting, init, times, method="euler", dt=1.0 / N_BLOG)
    baseline_error = float(np.max(np.abs(euler.eg - reference.eg)))
    return {
        "title": f"1. ODE, one setting (two-layer erf, K = M = 4, t ∈ [0, {t_end:g}], 200 saves)",
        "rows": [
            ("blog-style Euler loop, dt = 1/784 (per step)", str(baseline.scaled(1 / baseline_steps))),
            (f"blog-style, whole run ({total_steps} steps, extrapolated from {baseline_steps})", str(baseline_time)),
            ("nndyn.integrate (Tsit5, rtol 1e-8), whole run", str(ours_time)),
            ("speed-up", ratio(baseline_time, ours_time)),
            ("solver steps / vector-field evaluations (ours)", f"{steps} / {TSIT5_EVALUATIONS_PER_STEP * steps + 1}"),
            ("vector-field evaluations (blog-style)", f"{total_steps}"),
            ("max |ε_g − reference| (ours; reference rtol 1e-12)", f"{ours_error:.1e}"),
            ("max |ε_g − reference| (Euler dt = 1/784)", f"{baseline_error:.1e}"),
        ],
    }
