# %% [markdown]
# # A scaling law from a power-law input spectrum
#
# Inputs x ~ N(0, Σ) whose spectrum is a power law, ρ_ℓ ∝ ℓ^−(1+a) on L levels of N/L
# coordinates each (docs/structured.md). A linear student learning a linear teacher then has
# ε_g(t) ∝ t^−a/(1+a) between the fastest level's time and the slowest's; an erf network does
# something else. The flows are integrated per level, and SGD, with inputs drawn with that Σ,
# is checked against them by the verdict.
#
# Toy scale when the site is built; `NNDYN_EXAMPLES=full` for N = 2000 and 8 seeds.

# %%
import os

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import nndyn
from nndyn.core import spectrum

FULL = os.environ.get("NNDYN_EXAMPLES") == "full"
N, SEEDS = (2000, 8) if FULL else (400, 3)
a, lr = 1.0, 0.05

# %% [markdown]
# ## The linear network: the ODE against the exponent −a/(1+a)
#
# A zero student (the overlaps per level are all zero; the teacher's are T^ℓ = f_ℓ) and L = 1000
# levels. The exponent is fitted over two decades above ten times the fastest level's time.

# %%
L = 1000
levels = spectrum.power_law(a, L)
rho = spectrum.eigenvalues(levels)
linear = nndyn.Setting(K=1, M=1, lr=lr, activation="linear", input_spectrum=levels)
zero = np.zeros((L, 1, 1))
start = nndyn.OrderParameters(jnp.zeros((1, 1)), jnp.zeros((1, 1)), jnp.ones((1, 1)), jnp.ones(1), jnp.ones(1),
                              Q_levels=zero, R_levels=zero, T_levels=np.full((L, 1, 1), 1 / L))
fastest = 1 / (2 * lr * rho[0])
t = np.concatenate([[0.0], np.geomspace(fastest / 10, 1e4 * fastest, 60)])
eg = np.asarray(nndyn.integrate(linear, start, t).eg)
window = (t >= 10 * fastest) & (t <= 1000 * fastest)
slope = np.polyfit(np.log(t[window]), np.log(eg[window]), 1)[0]
print(f"fitted exponent {slope:.4f}; L → ∞ theory −a/(1+a) = {-a / (1 + a):.4f}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(t[1:], eg[1:], color="tab:red", label="ODE, linear network")
ax.loglog(t[window], eg[window][0] * (t[window] / t[window][0]) ** (-a / (1 + a)), "k:",
          label=f"t^−a/(1+a), a = {a:g}")
ax.axvspan(10 * fastest, 1000 * fastest, color="0.92", zorder=0, label="fit window")
ax.set(xlabel="t = samples / N", ylabel="ε_g", title=f"Linear network, power-law spectrum, L = {L}, η = {lr}")
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## An erf network beside SGD
#
# K = M = 2 from small weights, L = 8 levels (N/L coordinates each), SGD at finite N with inputs
# drawn with that Σ, and the verdict: the ODE restarted at every recorded SGD state must follow it.

# %%
erf = nndyn.Setting(K=2, M=2, lr=0.5, input_spectrum=spectrum.power_law(a, 8))
sim = nndyn.simulate(erf, N=N, t_max=40, seeds=SEEDS, init_scale=0.05)
ode = nndyn.integrate(erf, sim.initial_state(), sim.t)
agreement = nndyn.verdict(erf, sim)
print(f"verdict: {agreement.answer} (largest score {max(agreement.scores.values()):.2f}, "
      f"threshold {agreement.threshold:.2f})")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
axes[0].loglog(sim.t[1:], np.asarray(sim.eg).mean(0)[1:], color="tab:blue", label="SGD (mean over seeds)")
axes[0].loglog(ode.t[1:], np.asarray(ode.eg).mean(0)[1:], color="tab:red", ls="--", label="ODE")
axes[0].set(xlabel="t", ylabel="ε_g", title=f"erf, K = M = 2, L = 8, N = {N}")
axes[0].legend(fontsize=8)
for level in range(8):
    axes[1].plot(sim.t, np.asarray(sim.R_levels)[0, :, level, 0, 0], color=plt.cm.viridis(level / 8))
    axes[1].plot(ode.t, np.asarray(ode.R_levels)[0, :, level, 0, 0], color=plt.cm.viridis(level / 8), ls="--")
axes[1].set(xlabel="t", ylabel="R^ℓ_00 (seed 0)", title="per level: SGD solid, ODE dashed (dark = top level)")
fig.tight_layout()
