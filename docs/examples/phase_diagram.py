# %% [markdown]
# # A phase diagram from a sweep
#
# The soft committee machine with K = M = 2 learns for small η, converges fastest near η_opt,
# and fails beyond η_max, where perfect learning loses stability. A sweep integrates the ODEs
# over a grid of (η, σ) in one compiled, vmapped program per shape; the results come back as
# objects (`load_sweep`) and as a DataFrame.
#
# Toy grid when the site is built; `NNDYN_EXAMPLES=full` for a 24 × 8 grid to t = 1000.

# %%
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import nndyn

FULL = os.environ.get("NNDYN_EXAMPLES") == "full"
rates = np.round(np.geomspace(0.1, 4.0, 24 if FULL else 8), 4).tolist()
noises = np.round(np.linspace(0.0, 0.5, 8 if FULL else 3), 4).tolist()
t_max = 1000.0 if FULL else 300.0

# %%
points = nndyn.grid(defaults={"K": 2, "M": 2, "init_scale": 1.0}, product={"lr": rates, "sigma": noises})
folder = tempfile.mkdtemp() + "/lr_sigma"
nndyn.sweep(points, t_max=t_max, folder=folder, saves=101, sharded=False)
table = nndyn.sweep_dataframe(nndyn.load_sweep(folder))
table[["lr", "sigma", "status", "final_eg", "plateau_length", "escaped"]].head()

# %% [markdown]
# η_max from the Jacobian at perfect learning (σ = 0), for comparison:

# %%
eta_max = nndyn.learning_rate_threshold(nndyn.Setting(K=2, M=2, lr=1.0))
final = table.pivot(index="sigma", columns="lr", values="final_eg")
fig, ax = plt.subplots(figsize=(6, 3.5))
# ε_g is resolved to about 1e-16 (a sum of O(1) terms in float64), so it is shown from there;
# a diverged point has no ε_g and is left blank
shown = np.log10(np.maximum(np.ma.masked_invalid(final.to_numpy()), 1e-16))
image = ax.pcolormesh(final.columns, final.index, shown, shading="nearest", cmap="viridis")
ax.axvline(eta_max, color="w", ls="--", label=f"η_max = {eta_max:.3f}")
ax.set(xscale="log", xlabel="η", ylabel="σ", title=f"log₁₀ ε_g at t = {t_max:g}")
fig.colorbar(image)
ax.legend(loc="upper left")
fig.tight_layout()
print(f"η_max = {eta_max:.5f}; points per status: {table.status.value_counts().to_dict()}")
