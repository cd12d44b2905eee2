# %% [markdown]
# # Your own activation
#
# An activation is an expression in `x`. One command derives its Gaussian integrals (in closed
# form where the rules reach, by an erf mixture or quadrature otherwise: see the derivation
# page), verifies them against 30-digit quadrature and Monte Carlo, and writes a kernel module
# into a folder of yours. The expression is parsed, never executed, and the module holds only
# what SymPy printed.
#
# Here g(x) = erf(2x), a steeper erf: its integrals are closed forms like erf's.

# %%
import os
import subprocess
import sys
import tempfile

import matplotlib.pyplot as plt
import numpy as np

import nndyn

FULL = os.environ.get("NNDYN_EXAMPLES") == "full"
N, T_MAX, SEEDS = (1000, 100.0, 8) if FULL else (300, 30.0, 8)
folder = tempfile.mkdtemp()

# %%
derive = [sys.executable, "-m", "nndyn.derive", "--name", "steep", "--expr", "erf(2*x)", "--out", folder]
print(subprocess.run(derive, capture_output=True, text=True, check=True).stdout)

# %% [markdown]
# The module is used by its path, in `Setting` or as `activation = "…"` in a run config:

# %%
setting = nndyn.Setting(K=3, M=2, lr=0.5, activation=f"{folder}/steep.py")
sim = nndyn.simulate(setting, N=N, t_max=T_MAX, seeds=SEEDS, init_scale=0.5)
ode = nndyn.integrate(setting, sim.initial_state(), sim.t)
answer = nndyn.verdict(setting, sim)
print(f"verdict: passed {answer.passed} (largest score {max(answer.scores.values()):.1f}, "
      f"threshold {answer.threshold:.1f})")

plain = nndyn.integrate(nndyn.Setting(K=3, M=2, lr=0.5), sim.initial_state(), sim.t)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(sim.t, np.asarray(sim.eg).mean(0), color="tab:blue", label="SGD, erf(2x) (mean)")
ax.plot(ode.t, np.asarray(ode.eg).mean(0), color="tab:red", ls="--", label="ODE, erf(2x)")
ax.plot(plain.t, np.asarray(plain.eg).mean(0), color="gray", ls=":", label="ODE, erf(x/√2) (built-in)")
ax.set(xlabel="t", ylabel="ε_g", yscale="log")
ax.legend()
fig.tight_layout()

# %% [markdown]
# A teacher of another activation is one more option, `--teacher-name relu` (or `--teacher-expr`),
# which also writes the pair module of mixed integrals. An expression that is neither a closed
# form nor accurately integrable (a kink such as `Abs(x)`) is refused with nothing written.
