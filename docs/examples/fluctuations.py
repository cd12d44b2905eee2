# %% [markdown]
# # SGD's spread at finite N, and a plateau left by noise alone
#
# The ODEs are N → ∞. At finite N each seed's order parameters scatter about its ODE by
# O(N^−1/2): `nndyn.fluctuations` predicts that spread from the diffusion matrix of one SGD step
# (linear noise), and `nndyn.sample_paths` draws paths of the SDE of SGD where the spread is not
# small, e.g. out of a plateau the ODE never leaves (docs/fluctuations.md).
#
# Toy scale when the site is built; `NNDYN_EXAMPLES=full` for 64 seeds.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import nndyn

FULL = os.environ.get("NNDYN_EXAMPLES") == "full"
SEEDS = 64 if FULL else 16

# %% [markdown]
# ## The predicted band beside the seeds
#
# Students half-aligned with their teachers (away from any saddle), N = 500. Each seed is
# compared with the ODE from its own initial order parameters; the prediction is taken about the
# seeds' mean initial state (they start alike).

# %%
N = 500
setting = nndyn.Setting(activation="erf", K=2, M=2, lr=0.5, sigma=0.2, train_second_layer=True)
rng = np.random.default_rng(0)
W_teacher = rng.standard_normal((2, N))
W0 = 0.5 * W_teacher[None] + 0.7 * rng.standard_normal((SEEDS, 2, N))
sim = nndyn.simulate(setting, N, 4.0, seeds=SEEDS, W0=W0, W_teacher=W_teacher, v0=np.full((SEEDS, 2), 0.7),
                     save_every=N // 4)
ode = nndyn.integrate(setting, sim.initial_state(), sim.t)
start = sim.initial_state()
mean_start = nndyn.OrderParameters(*(np.mean(np.asarray(getattr(start, name)), axis=0)
                                     for name in ("Q", "R", "T", "v", "v_star")))
spread = nndyn.fluctuations(setting, mean_start, N, t=np.asarray(sim.t))

t = np.asarray(sim.t)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
for ax, deviation, variance, name in (
        (axes[0], np.asarray(sim.eg - ode.eg), spread.eg_var, "ε_g"),
        (axes[1], np.asarray(sim.R - ode.R)[..., 0, 0], spread.variance("R")[:, 0, 0], "R₁₁")):
    ax.plot(t, deviation.T, color="tab:blue", lw=0.6, alpha=0.5)
    band = 2 * np.sqrt(variance)
    ax.fill_between(t, -band, band, color="tab:orange", alpha=0.3, label="predicted ±2σ (linear noise)")
    ax.plot([], [], color="tab:blue", lw=0.6, label=f"SGD seeds − their ODE ({SEEDS})")
    ax.set(xlabel="t", ylabel=f"{name}(SGD) − {name}(ODE)", title=f"{name}, N = {N}")
    ax.legend(fontsize=8, loc="upper left")
fig.suptitle("erf, K = M = 2, η = 0.5, σ = 0.2, v trained: SGD's spread about the ODE")
ratio = np.var(np.asarray(sim.eg - ode.eg)[:, 1:], axis=0, ddof=1) / spread.eg_var[1:]
print("seeds' variance of ε_g over the prediction, t = 1..4:", np.round(ratio[3::4], 2))

# %% [markdown]
# ## A plateau left by noise alone
#
# Students orthogonal to the teachers and to each other, Q = I/4, R = 0: the flows keep them
# unspecialised forever, so the ODE stays on the plateau, while SGD (and the SDE) leave it,
# later at larger N (to leading order ln N/(2λ_u), λ_u the saddle's escape rate).

# %%
setting = nndyn.Setting(activation="erf", K=2, M=2, lr=1.0)
level = 0.5 * min(point.eg for point in nndyn.plateaus(setting).values())
N = 100
t = np.linspace(0, 150, 301)
basis = np.linalg.qr(rng.standard_normal((N, 4)))[0].T * np.sqrt(N)
W_teacher, W0 = basis[:2], np.broadcast_to(0.5 * basis[2:], (SEEDS, 2, N))
sgd = nndyn.simulate(setting, N, 150.0, seeds=SEEDS, W0=W0, W_teacher=W_teacher, save_every=N // 2)
paths = nndyn.sample_paths(setting, sgd.initial_state(), sgd.t, N, seeds=SEEDS)
ode = nndyn.integrate(setting, sgd.initial_state(), sgd.t)

fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
axes[0].plot(sgd.t, np.asarray(sgd.eg).T, color="tab:blue", lw=0.6, alpha=0.5)
axes[0].plot(paths.t, np.asarray(paths.eg).T, color="tab:green", lw=0.6, alpha=0.5)
axes[0].plot(ode.t, np.asarray(ode.eg)[0], color="k", lw=1.5)
for color, label in (("tab:blue", "SGD"), ("tab:green", "SDE"), ("k", "ODE")):
    axes[0].plot([], [], color=color, label=label)
axes[0].axhline(level, color="gray", ls=":", label="escape level (½ plateau ε_g)")
axes[0].set(xlabel="t", ylabel="ε_g", yscale="log", title=f"ε_g, N = {N}")
axes[0].legend(fontsize=8)
times = {name: nndyn.escape_times(run, level) for name, run in (("SGD", sgd), ("SDE", paths))}
bins = np.linspace(0, 150, 16)
for (name, values), color in zip(times.items(), ("tab:blue", "tab:green")):
    axes[1].hist(np.minimum(values, 150), bins=bins, alpha=0.5, color=color, label=f"{name} ({SEEDS} paths)")
axes[1].set(xlabel="escape time (ε_g below the level)", ylabel="paths", title="escape times")
axes[1].legend(fontsize=8)
fig.suptitle("erf, K = M = 2, η = 1: students started orthogonal to the teachers, N = 100")
print({name: float(np.median(values)) for name, values in times.items()},
      "ODE escapes:", int(np.sum(np.isfinite(nndyn.escape_times(ode, level)))))
