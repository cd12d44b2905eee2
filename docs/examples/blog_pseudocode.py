# %% [markdown]
# # The blog's pseudo-code in this API
#
# The blog post builds a teacher, a student and an SGD loop, measures the order parameters
# Q = W Wᵀ/N, R = W W*ᵀ/N, T = W* W*ᵀ/N along the way, and steps an "ODE object" by hand from the
# same start. In nndyn each of those is one call: `simulate` is the teacher, the students and
# the loop (several seeds at once, one jitted `lax.scan`), `integrate` is the ODE (one jitted
# Diffrax solve), and `verdict` says whether the first follows the second.
#
# This page runs at a toy scale when the site is built; `NNDYN_EXAMPLES=full` runs it at the
# blog's (N = 784, t = 300, 8 seeds).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import nndyn

FULL = os.environ.get("NNDYN_EXAMPLES") == "full"
N, T_MAX, SEEDS = (784, 300.0, 8) if FULL else (400, 40.0, 16)

# %% [markdown]
# ## Teacher, students and the SGD loop
#
# A two-layer network with K = 4 erf units learns a teacher with M = 4 (Goldt et al.'s setting,
# the blog's Figure 2): first-layer step η/√N, second-layer step η_v/N, recorded once per unit
# of time t = steps/N.

# %%
setting = nndyn.Setting(K=4, M=4, lr=0.5, train_second_layer=True)
sim = nndyn.simulate(setting, N=N, t_max=T_MAX, seeds=SEEDS, init_scale=0.5)
print("ε_g:", sim.eg.shape, " Q:", sim.Q.shape, " R:", sim.R.shape, " v:", sim.v.shape)

# %% [markdown]
# ## The ODE from each seed's initial order parameters
#
# `sim.initial_state()` holds one state per seed; `integrate` solves them in one vmapped call.

# %%
ode = nndyn.integrate(setting, sim.initial_state(), sim.t)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(sim.t, np.asarray(sim.eg).T, color="tab:blue", alpha=0.4, lw=1)
ax.plot(ode.t, np.asarray(ode.eg).T, color="tab:red", ls="--", lw=1)
ax.set(xlabel="t = steps / N", ylabel="ε_g", yscale="log", title="SGD (blue) and the ODE (dashed), per seed")
fig.tight_layout()

# %% [markdown]
# ## The blog's hand-stepped ODE
#
# The blog steps the ODE by Euler at dt = 1/N, in step with SGD. `method="euler"` does exactly
# that (and is what `nndyn reproduce` can use for parity); the adaptive default is faster and
# more accurate.

# %%
euler = nndyn.integrate(setting, sim.initial_state(), sim.t, method="euler", dt=1 / N)
print("largest |ε_g(Euler) − ε_g(adaptive)|:", float(np.max(np.abs(euler.eg - ode.eg))))

# %% [markdown]
# ## Does SGD follow these flows?
#
# The verdict restarts the ODE at every recorded state and tests what SGD did next against it
# (see [the Python API](../api.md#the-verdict-does-sgd-follow-the-flows)). It says no to the
# same flows with twice the batch size, whose η²/B term is half as large:

# %%
right = nndyn.verdict(setting, sim)
wrong = nndyn.verdict(setting.replace(batch=2), sim)
print(f"right flows: largest score {max(right.scores.values()):.1f}, threshold {right.threshold:.1f}, "
      f"passed {right.passed}")
print(f"B = 2 flows: largest score {max(wrong.scores.values()):.1f}, passed {wrong.passed}")

# %% [markdown]
# ## Order parameters of any weights
#
# `OrderParameters.from_weights` measures Q, R, T of explicit weights, to start the ODE from a
# student of your own.

# %%
rng = np.random.default_rng(0)
W, W_teacher = rng.standard_normal((4, N)), rng.standard_normal((4, N))
start = nndyn.OrderParameters.from_weights(W, W_teacher, v=np.full(4, 0.1))
trajectory = nndyn.integrate(setting, start, np.linspace(0, T_MAX, 101))
print("final ε_g from these weights:", float(trajectory.eg[-1]))
