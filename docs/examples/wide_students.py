# %% [markdown]
# # Ten thousand hidden units: the symmetric reduction
#
# The full flows cost O(K⁴) per evaluation, so they stop at K of a few dozen. On Saad & Solla's
# ansatz (K = M, T = I, Q_jj = Q, Q_jk = C, R_jj = R, R_jk = S, v_j = v) they close on five
# scalars, whose flows `nndyn.derive` derives with K as a symbol (`generated/symmetric.py`):
# one evaluation costs the same at K = 2 and K = 10⁵. This example measures, for the soft
# committee machine with erf (κ = 1, so η has to shrink like 1/K):
#
# - η_max(K), where perfect learning loses stability, and its large-K limit;
# - the symmetric plateau: its unstable eigenvalue λ_u, the plateau length it predicts, the
#   length the reduction's own integration shows, and the learning rate η_c(K) above which the
#   plateau stops being a saddle at all.
#
# Every number is computed when the site is built.

# %%
import matplotlib.pyplot as plt
import numpy as np

import nndyn
from nndyn.core import symmetric
from nndyn.core.fixed_points import learning_rate_threshold
from nndyn.core.symmetric import SymmetricState

WIDTHS = [2, 10, 100, 1_000, 10_000, 100_000]

# %% [markdown]
# ## The reduction is the full flows on the ansatz
#
# At K = 4, the reduction's flows against the full ones on one state of the ansatz:

# %%
setting = nndyn.Setting(K=4, M=4, lr=0.5, sigma=0.1)
state = SymmetricState(0.8, 0.1, 0.4, 0.05, 1.0)
full = state.expand(4)
flow = setting.kernels.rhs(0.0, full.as_ode_state(), setting.ode_args(full.T, full.v_star))
reduced = symmetric.flows(setting, state)
print(f"dQ/dt: full {float(flow['Q'][0, 0]):.15f}, reduced {float(reduced.Q):.15f}")
print(f"dS/dt: full {float(flow['R'][0, 1]):.15f}, reduced {float(reduced.S):.15f}")

# %% [markdown]
# ## η_max(K)
#
# Bisection on the largest real part of the reduction's Jacobian at perfect learning. The
# reduction sees only perturbations within the ansatz, so this is an upper bound of the full
# η_max; for K = 2 … 5 the two agree to every digit (the tests check K = 2 and 4).

# %%
eta_max = {K: learning_rate_threshold(nndyn.Setting(K=K, M=K, lr=1.0 / K), symmetric=True,
                                      relative_tolerance=1e-12) for K in WIDTHS}
for K in WIDTHS:
    print(f"K = {K:>6}: η_max = {eta_max[K]:.10g},  K η_max = {K * eta_max[K]:.10f}")
# K η_max = a + b/K + …: Richardson's extrapolation from the two widest
extrapolated = (WIDTHS[-1] * eta_max[WIDTHS[-1]] * WIDTHS[-1] - WIDTHS[-2] * eta_max[WIDTHS[-2]] * WIDTHS[-2]) / (
    WIDTHS[-1] - WIDTHS[-2])
print(f"K η_max extrapolated to K → ∞: {extrapolated:.10f};  π√3 = {np.pi * np.sqrt(3):.10f}")

# %% [markdown]
# ## The plateau at large K
#
# At η = η̃/K the reduction, started with R = S (no specialisation), settles on the plateau; its
# fixed point and eigenvalues follow from Newton's method (tolerances scaled to η: the flows
# are O(η) sums of O(1) terms). The plateau's λ_u gives its length per decade of initial
# asymmetry, ln 10/λ_u; the reduction's own integration from R − S = 10⁻³/K and 10⁻⁶/K (the
# plateau's R is O(1/K)) gives the measured one (the time at which ε_g falls below half its
# plateau value).

# %%
def plateau(K, lr):
    setting = nndyn.Setting(K=K, M=K, lr=lr)
    late = symmetric.integrate(setting, SymmetricState(0.5, 0.0, 0.0, 0.0, 1.0), np.array([0.0, 300 / lr]))
    return nndyn.fixed_point(setting, late.state(-1), tolerance=1e-14 * lr, eigen_tolerance=1e-15 * lr ** 2)


def escape(K, lr, asymmetry, level, horizon):
    setting = nndyn.Setting(K=K, M=K, lr=lr)
    t = np.linspace(0.0, horizon, 4001)
    run = symmetric.integrate(setting, SymmetricState(0.5, 0.0, asymmetry, 0.0, 1.0), t)
    below = np.flatnonzero(run.eg < level)
    return t[below[0]] if below.size else np.inf


ETA_TILDE = 0.05
rows = []
for K in WIDTHS[1:-1]:
    lr = ETA_TILDE / K
    saddle = plateau(K, lr)
    growth = float(saddle.eigenvalues.real[0])
    horizon = 3 * np.log(1e6) / growth
    times = [escape(K, lr, asymmetry / K, saddle.eg / 2, horizon) for asymmetry in (1e-3, 1e-6)]
    rows.append((K, saddle.eg / K, growth * K ** 2 / ETA_TILDE, np.log(10) / growth, (times[1] - times[0]) / 3))
    print(f"K = {K:>6}: plateau ε_g/K = {saddle.eg / K:.6f}, λ_u K/η = {growth * K ** 2 / ETA_TILDE:.5f}, "
          f"per decade of δ₀: predicted {np.log(10) / growth:.4g}, integrated {(times[1] - times[0]) / 3:.4g}")

# %% [markdown]
# ## Where the plateau stops being a saddle
#
# Within the ansatz the plateau's unstable direction is the specialisation R − S. Its eigenvalue
# falls with η, and crosses zero at η_c(K): above it the unspecialised plateau is *stable*
# against specialising, and learning stays there. K η_c falls with K, so at any fixed K η the
# plateau traps wide enough students.

# %%
def critical(K):
    low, high = 1e-3 / K, 4.0 / K
    if plateau(K, high).eigenvalues.real[0] > 0:
        return np.nan
    while high - low > 1e-4 * high:
        middle = np.sqrt(low * high)
        low, high = (middle, high) if plateau(K, middle).eigenvalues.real[0] > 0 else (low, middle)
    return np.sqrt(low * high)


eta_c = {K: critical(K) for K in WIDTHS[1:-1]}
for K, value in eta_c.items():
    print(f"K = {K:>6}: K η_c = {K * value:.4f}")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
left.semilogx(WIDTHS, [K * eta_max[K] for K in WIDTHS], "o-", label="K η_max")
left.axhline(np.pi * np.sqrt(3), color="gray", ls=":", label="π√3")
left.semilogx(list(eta_c), [K * value for K, value in eta_c.items()], "s-", label="K η_c (plateau stable above)")
left.set_xlabel("K")
left.legend()
right.loglog([row[0] for row in rows], [row[3] for row in rows], "o-", label="predicted ln 10/λ_u")
right.loglog([row[0] for row in rows], [row[4] for row in rows], "x", ms=10, label="integrated")
right.set_xlabel("K")
right.set_ylabel(f"plateau length per decade of δ₀ (η = {ETA_TILDE}/K)")
right.legend()
fig.tight_layout()
