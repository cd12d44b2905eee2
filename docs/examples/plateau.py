# %% [markdown]
# # A plateau and its escape, with the fixed-point picture
#
# Saad & Solla's soft committee machine (K = M = 2, erf, v = v* = 1) started from small weights
# first learns the teacher's mean, then sits on a plateau where both student units are alike,
# and escapes when the units specialise. The plateau is a fixed point of the flows, a saddle:
# its unstable direction grows like exp(λ_u t), so a start at distance δ₀ from it leaves after
# about ln(1/δ₀)/λ_u. `nndyn.fixed_point` finds the saddle and its eigenvalues.
#
# Toy scale when the site is built; `NNDYN_EXAMPLES=full` for N = 4000 and 8 seeds.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import nndyn

FULL = os.environ.get("NNDYN_EXAMPLES") == "full"
N, SEEDS = (4000, 8) if FULL else (500, 4)
setting = nndyn.Setting(K=2, M=2, lr=0.5)

# %% [markdown]
# ## The saddles
#
# There are two unspecialised plateaus (docs/fixed-points.md): one where the students are
# identical (Q_11 = Q_12, Saad & Solla's symmetric state as η → 0) and one where SGD's own
# fluctuations keep them apart (Q_11 > Q_12), the one learning from random students visits.
# `nndyn.plateaus` finds both, here in the full flows:

# %%
K = 2
found = nndyn.plateaus(setting, full=True)
for name, point in found.items():
    print(f"{name} students: {point.kind} with {point.unstable_directions} unstable direction(s); "
          f"Q_11 = {point.state.Q[0, 0]:.4f}, Q_12 = {point.state.Q[0, 1]:.4f}; ε_g = {point.eg:.5f}; "
          f"λ_u = {point.escape_rate:.4f}")
saddle = found["identical"]
growth = saddle.escape_rate

# %% [markdown]
# ## The ODE from smaller and smaller asymmetries
#
# At the identical-students saddle both students are one vector w̄ (Q is all one number). Move them apart by
# ±δ₀ (e₁ − e₂) along the difference of the two teacher vectors: R_in = R ± δ₀, Q_ii = Q + 2δ₀²,
# Q_12 = Q − 2δ₀², the overlaps of real vectors. Each tenfold smaller δ₀ should add ln 10/λ_u
# to the escape.

# %%
t = np.linspace(0, 400, 2001)
escapes = {}
fig, ax = plt.subplots(figsize=(6, 3.5))
for delta in (1e-2, 1e-3, 1e-4):
    apart = np.array([[1.0, -1.0], [-1.0, 1.0]])
    start = nndyn.OrderParameters(
        saddle.state.Q + 2 * delta**2 * apart,
        saddle.state.R + delta * apart,
        saddle.state.T,
        saddle.state.v,
        saddle.state.v_star,
    )
    run = nndyn.integrate(setting, start, t)
    eg = np.asarray(run.eg)
    escapes[delta] = float(t[np.argmax(eg < saddle.eg / 2)])
    ax.plot(t, eg, label=f"δ₀ = {delta:g}")
ax.axhline(saddle.eg, color="k", ls=":", lw=1, label="saddle's ε_g")
ax.set(xlabel="t", ylabel="ε_g", yscale="log", title="escape from the plateau")
ax.legend()
fig.tight_layout()
shifts = np.diff(list(escapes.values()))
print("escape times:", escapes)
print(f"shift per decade: {shifts}, predicted ln 10/λ_u = {np.log(10) / growth:.2f}")

# %% [markdown]
# ## SGD: the asymmetry comes from finite N
#
# A student drawn at random starts with an asymmetry of order N^(−1/2), so the plateau of SGD
# lengthens like ln N/(2λ_u), λ_u of the plateau it sits on (at K = 2 the students leave before
# they have settled on either: the two λ_u differ by 8 %). Each seed against its own ODE:

# %%
sim = nndyn.simulate(setting, N=N, t_max=200.0 if not FULL else 400.0, seeds=SEEDS, init_scale=0.01)
ode = nndyn.integrate(setting, sim.initial_state(), sim.t)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(sim.t, np.asarray(sim.eg).T, color="tab:blue", alpha=0.5, lw=1)
ax.plot(ode.t, np.asarray(ode.eg).T, color="tab:red", ls="--", lw=1)
for (name, point), style in zip(found.items(), (":", "-.")):
    ax.axhline(point.eg, color="k", ls=style, lw=1, label=f"plateau, {name} students")
ax.legend(fontsize=8)
ax.set(xlabel="t", ylabel="ε_g", yscale="log", title=f"SGD (blue) and the ODE (dashed), N = {N}")
fig.tight_layout()
answer = nndyn.verdict(setting, sim)
print(
    f"verdict: passed {answer.passed} (largest score {max(answer.scores.values()):.1f}, "
    f"threshold {answer.threshold:.1f})"
)

# %% [markdown]
# The escape itself wanders from seed to seed: SGD noise during the plateau shifts it by O(1)
# at every N, which is why the verdict compares SGD with the flows one interval at a time rather
# than whole trajectories.
