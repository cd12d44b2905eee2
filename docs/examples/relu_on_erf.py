# %% [markdown]
# # A ReLU student learning an erf teacher
#
# The blog's ODEs have one activation g for both networks. Here the student is ReLU and the
# teacher erf, so the integrals whose slots hold units of both (⟨g g*⟩, ⟨g' u g*⟩, ⟨g' g' g g*⟩, …)
# are mixed ones, derived in closed form and generated into `generated/relu__erf.py`. The
# student (K = 4, trained second layer) is wider than the teacher (M = 2): it cannot represent
# erf exactly with ReLUs, and the ODE says where it settles.
#
# Toy scale when the site is built; `NNDYN_EXAMPLES=full` for N = 1000, 8 seeds, t = 100.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import nndyn

FULL = os.environ.get("NNDYN_EXAMPLES") == "full"
N, T_MAX, SEEDS = (1000, 100.0, 8) if FULL else (300, 20.0, 6)
setting = nndyn.Setting(K=4, M=2, lr=0.5, train_second_layer=True, activation="relu", teacher_activation="erf")

# %%
sim = nndyn.simulate(setting, N=N, t_max=T_MAX, seeds=SEEDS, init_scale=0.5)
ode = nndyn.integrate(setting, sim.initial_state(), sim.t)

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
axes[0].plot(sim.t, np.asarray(sim.eg).mean(0), color="tab:blue", label="SGD (mean over seeds)")
axes[0].plot(ode.t, np.asarray(ode.eg).mean(0), color="tab:red", ls="--", label="ODE")
axes[0].set(xlabel="t", ylabel="ε_g", yscale="log")
axes[0].legend()
axes[1].plot(sim.t, np.asarray(sim.v)[0], color="tab:blue")
axes[1].plot(ode.t, np.asarray(ode.v)[0], color="tab:red", ls="--")
axes[1].set(xlabel="t", ylabel="v_k (seed 0)")
fig.tight_layout()

# %% [markdown]
# ## The verdict, and a model that would be wrong
#
# The same flows with the teacher taken to be ReLU too (the blog's single-g ODE) are rejected
# by the same simulation:

# %%
for label, flows in (
    ("ReLU student, erf teacher", setting),
    ("ReLU for both", setting.replace(teacher_activation="relu")),
):
    answer = nndyn.verdict(flows, sim)
    print(
        f"{label:26s} passed {answer.passed}: largest score {max(answer.scores.values()):6.1f}, "
        f"threshold {answer.threshold:.1f}"
    )
