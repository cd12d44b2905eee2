# %% [markdown]
# # Forgetting against task similarity
#
# A student learns teacher 0, then teacher 1, whose first layer has feature similarity γ_f
# with teacher 0 (W*₁ = γ_f W*₀ + √(1 − γ_f²) W*_⊥, Lee et al., ICML 2021). How much of task
# 0 does it forget while learning task 1? The ODE tracks R against every teacher unit, so it
# answers for every γ_f, with SGD beside it.
#
# Toy scale when the site is built; `NNDYN_EXAMPLES=full` for N = 784, 10 seeds, t = 50 per
# phase (the `nndyn reproduce continual --full` setting).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import nndyn

FULL = os.environ.get("NNDYN_EXAMPLES") == "full"
N, SEEDS, PHASE = (784, 10, 50.0) if FULL else (300, 3, 20.0)
setting = nndyn.Setting(K=2, M=1, lr=1.0, train_second_layer=True)
similarities = (0.0, 0.25, 0.5, 0.75, 1.0)

# %%
results = {}
for gamma in similarities:
    protocol = nndyn.Protocol(nndyn.Teachers(count=2, feature_similarity=gamma, heads="single"),
                              (nndyn.Phase(teacher=0, t=PHASE), nndyn.Phase(teacher=1, t=PHASE)))
    sim = nndyn.simulate_protocol(setting, protocol, N=N, seeds=SEEDS, init_scale=0.5)
    init = sim.initial_state()
    ode = nndyn.integrate_protocol(setting, protocol, init, sim.t)
    results[gamma] = (sim.metrics(protocol)["forgetting"][:, 0], ode.metrics(protocol)["forgetting"][:, 0], sim, ode)

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
sim_mean = [np.mean(results[g][0]) for g in similarities]
sim_se = [np.std(results[g][0], ddof=1) / np.sqrt(SEEDS) for g in similarities]
axes[0].errorbar(similarities, sim_mean, sim_se, fmt="o", color="tab:blue", label="SGD (mean ± s.e.)")
axes[0].plot(similarities, [np.mean(results[g][1]) for g in similarities], color="tab:red", ls="--", label="ODE")
axes[0].set(xlabel="feature similarity γ_f", ylabel="forgetting of task 0")
axes[0].legend()
for gamma in (0.0, 0.5, 1.0):
    ode = results[gamma][3]
    axes[1].plot(ode.t, np.asarray(ode.eg_teacher)[:, :, 0].mean(0), label=f"γ_f = {gamma:g}")
axes[1].axvline(PHASE, color="k", lw=0.8, ls=":")
axes[1].set(xlabel="t", ylabel="ε_g on task 0 (ODE)", yscale="log")
axes[1].legend()
fig.tight_layout()
for gamma in similarities:
    print(f"γ_f = {gamma:4.2f}: forgetting SGD {np.mean(results[gamma][0]):.4f}, ODE {np.mean(results[gamma][1]):.4f}")
