"""`nndyn analyse CONFIG.toml`: the fixed points of a run config's setting and their stability.

From the config's setting (the same file `nndyn run` takes), Newton's method is started at
- the state the ODE reaches at t_max from the config's initial state (the students of seeds
  0..seeds-1 at init_scale, against the teacher, in dimension N, as `nndyn run` draws them;
  the first seed's), and, for a realizable setting (K = M) with T = I and v* = 1,
- perfect learning Q = R = T, v = v*, and
- Saad & Solla's symmetric plateau Q_ik = 1/(2K−1), R_in = 1/√(K(2K−1)), v = 1.
Each point found is reported once (points closer than 1e-8 are one), with its ε_g, kind and
largest eigenvalues. For a realizable setting without label noise, η_max and η_opt too.
"""

from __future__ import annotations

import jax
import numpy as np

from nndyn.core.fixed_points import (
    FixedPoint,
    FixedPointError,
    fixed_point,
    learning_rate_threshold,
    optimal_learning_rate,
)
from nndyn.core.integrate import integrate
from nndyn.core.state import OrderParameters
from nndyn.core.weights import initial_states

#: Eigenvalues listed per fixed point (largest real parts first).
SHOWN_EIGENVALUES = 4


def starts(panel) -> dict[str, OrderParameters]:
    """Named starting states for Newton's method (see the module docstring)."""
    setting, simulation = panel.setting, panel.simulation
    first = initial_states(setting, [simulation.N], [0], [simulation.init_scale])
    first = jax.tree_util.tree_map(lambda value: np.asarray(value)[0], first)
    options = {key: value for key, value in vars(panel.options).items() if key != "method"}
    late = integrate(setting, first, np.array([0.0, simulation.t_max]), **options).state_at(-1)
    named = {f"ODE at t = {simulation.t_max:g}": late}
    K, M = setting.K, setting.M
    if K == M:
        eye, ones = np.eye(K), np.ones(K)
        named["perfect learning"] = OrderParameters(eye, eye, eye, ones, ones, first.b)
        named["symmetric plateau"] = OrderParameters(np.full((K, K), 1 / (2 * K - 1)),
                                                     np.full((K, K), 1 / np.sqrt(K * (2 * K - 1))), eye, ones, ones,
                                                     first.b)
    return named


def _record(name: str, point: FixedPoint) -> dict:
    shown = point.eigenvalues[:SHOWN_EIGENVALUES]
    return {"start": name, "kind": point.kind, "unstable_directions": point.unstable_directions,
            "eg": point.eg, "residual": point.residual, "iterations": point.iterations,
            "eigenvalues_real": np.real(point.eigenvalues).tolist(),
            "eigenvalues_imag": np.imag(point.eigenvalues).tolist(),
            "largest": [complex(value) for value in shown],
            **({"rate": point.rate, "eg_rate": point.eg_rate} if point.kind == "stable" else {}),
            "Q": np.asarray(point.state.Q).tolist(),
            "R": np.asarray(point.state.R).tolist(), "v": np.asarray(point.state.v).tolist()}


def analyse(panel) -> dict:
    """The fixed points found from `starts`, and η_max, η_opt where defined, as plain data."""
    setting = panel.setting
    found, failures = [], []
    for name, start in starts(panel).items():
        try:
            point = fixed_point(setting, start)
        except FixedPointError as error:
            failures.append({"start": name, "error": str(error)})
            continue
        x = np.concatenate([np.ravel(point.state.Q), np.ravel(point.state.R), np.ravel(point.state.v)])
        if all(np.max(np.abs(x - other[1])) > 1e-8 for other in found):
            found.append((_record(name, point), x))
    result = {"setting": vars(setting), "fixed_points": [record for record, _ in found], "failures": failures}
    if setting.K == setting.M and setting.sigma == 0:
        try:
            result["eta_max"] = learning_rate_threshold(setting, relative_tolerance=1e-10)
            result["eta_opt"], result["rate_at_eta_opt"] = optimal_learning_rate(setting)
            result["eta_opt_state"], result["rate_at_eta_opt_state"] = optimal_learning_rate(setting, of="state")
        except FixedPointError as error:  # no Jacobian at perfect learning (e.g. ReLU)
            result["eta_max_undefined"] = str(error)
    return result


def table(result: dict) -> str:
    """The analysis as lines for the terminal."""
    lines = [f"{'start':<24}{'kind':<10}{'unstable':>9}{'ε_g':>12}  largest eigenvalues"]
    for record in result["fixed_points"]:
        values = ", ".join(f"{value.real:.4g}" + (f"{value.imag:+.3g}i" if abs(value.imag) > 1e-12 else "")
                           for value in record["largest"])
        lines.append(f"{record['start']:<24}{record['kind']:<10}{record['unstable_directions']:>9}"
                     f"{record['eg']:>12.4g}  {values}")
    for failure in result["failures"]:
        lines.append(f"{failure['start']:<24}no fixed point found: {failure['error']}")
    if "eta_max" in result:
        lines.append(f"η_max = {result['eta_max']:.8g} (perfect learning loses stability); η_opt = "
                     f"{result['eta_opt']:.6g} (fastest learning: ε_g decays at {result['rate_at_eta_opt']:.4g})")
        lines.append(f"the order parameters approach perfect learning fastest at η = {result['eta_opt_state']:.6g} "
                     f"(rate {result['rate_at_eta_opt_state']:.4g}; a mode ε_g sees at second order counts twice "
                     "its rate in ε_g's)")
    if "eta_max_undefined" in result:
        lines.append(f"η_max, η_opt: undefined: {result['eta_max_undefined']}")
    return "\n".join(lines)
