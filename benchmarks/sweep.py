"""Benchmark 5: 64 ODE settings (4 η × 4 σ × 4 initial states) in one vmapped `nndyn.solve`
against a Python loop of single `nndyn.integrate` calls."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

import nndyn
from benchmarks.timing import ratio, repeat


def run(toy: bool) -> dict:
    t_end, repeats = (5.0, 2) if toy else (100.0, 5)
    times = np.linspace(0.0, t_end, 50)
    setting = nndyn.Setting(K=4, M=4, lr=0.5, train_second_layer=True)
    rng = np.random.default_rng(0)
    W_teacher = rng.normal(size=(4, 200))
    inits = [nndyn.OrderParameters.from_weights(rng.normal(size=(4, 200)), W_teacher, v=rng.normal(size=4))
             for _ in range(4)]
    grid = list(itertools.product([0.1, 0.3, 0.5, 0.8], [0.0, 0.1, 0.3, 0.5], range(4)))
    lrs, sigmas, which = (jnp.asarray(column) for column in zip(*grid))
    states = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves)[which], *[i.as_ode_state() for i in inits])
    args = setting.ode_args(inits[0].T, inits[0].v_star)
    options = nndyn.ODEOptions()

    @jax.jit
    def vmapped(states, lrs, sigmas):
        one = lambda y, lr, sigma: nndyn.solve("erf", y, {**args, "lr": lr, "lr_v": lr, "sigma": sigma},  # noqa: E731
                                               jnp.asarray(times), options).eg
        return jax.vmap(one)(states, lrs, sigmas)

    def loop():
        for lr, sigma, index in grid:
            nndyn.integrate(setting.replace(lr=lr, lr_v=lr, sigma=sigma), inits[index], times).eg.block_until_ready()

    vmapped(states, lrs, sigmas).block_until_ready()
    loop()
    ours = repeat(lambda: vmapped(states, lrs, sigmas).block_until_ready(), repeats)
    baseline = repeat(loop, repeats)
    return {
        "title": f"5. Sweep: 64 settings (η × σ × initial state), t ∈ [0, {t_end:g}], 50 saves",
        "rows": [
            ("Python loop of nndyn.integrate", str(baseline)),
            ("one vmapped nndyn.solve", str(ours)),
            ("speed-up", ratio(baseline, ours)),
        ],
    }
