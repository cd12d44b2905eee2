"""`nndyn analyse CONFIG.toml`: the fixed points of a run config's setting and their stability.

One teacher throughout: the one `nndyn run` draws for the config (seed 0, dimension N), its
T and v* (T ≈ I + O(1/√N)). From the config's setting (the same file `nndyn run` takes),
Newton's method is started at
- the state the ODE reaches at t_max from the config's initial state (the students of seed 0
  at init_scale, against that teacher, in dimension N, as `nndyn run` draws them), and, for a
  realizable setting (K = M),
- perfect learning Q = R = T, v = v*, and
- with backprop, the two unspecialised plateaus (`nndyn.core.plateaus`: identical students,
  Q = C, and distinct students, Q > C, the one learning from random students visits), reached
  from those of T = I.
Each point found is reported once (points closer than 1e-8 are one, its other starts in
"also_from"), with its ε_g, kind, unstable
directions and largest eigenvalues (a saddle's largest is its escape rate λ_u). For a realizable
setting without label noise, η_max and η_opt of that teacher too, and η_c (the symmetric
reduction's: T = I exactly, stability within the ansatz). At the config's N: each stable
point's predicted stationary spread of ε_g (`nndyn.stationary_fluctuations`) and each saddle's
leading-order escape time ln N/(2λ_u).
"""

from __future__ import annotations

import jax
import numpy as np

from nndyn.app.progress import Silent
from nndyn.core.fixed_points import (
    FixedPoint,
    FixedPointError,
    fixed_point,
    learning_rate_threshold,
    optimal_learning_rate,
)
from nndyn.core.fluctuations import stationary_fluctuations
from nndyn.core.integrate import integrate
from nndyn.core.plateaus import PLATEAUS, plateau, plateau_threshold
from nndyn.core.state import OrderParameters
from nndyn.core.weights import initial_states

#: Eigenvalues listed per fixed point (largest real parts first).
SHOWN_EIGENVALUES = 4


def _teacher(panel) -> OrderParameters:
    """The initial state of seed 0 against the teacher `nndyn run` draws for `panel`."""
    setting, simulation = panel.setting, panel.simulation
    first = initial_states(setting, [simulation.N], [0], [simulation.init_scale])
    return jax.tree_util.tree_map(lambda value: np.asarray(value)[0], first)


def starts(panel, first: OrderParameters, report=None) -> tuple[dict[str, OrderParameters], dict[str, str]]:
    """Named starting states for Newton's method (see the module docstring) from `first`, seed
    0's initial state against the drawn teacher (`_teacher`), and for each start that could not
    be built (a plateau learning does not reach) the reason. `report` is told each stage
    (`nndyn.app.progress.Line`)."""
    report = report or Silent()
    setting, simulation = panel.setting, panel.simulation
    report.stage(f"integrating the ODE to t = {simulation.t_max:g}")
    options = {key: value for key, value in vars(panel.options).items() if key != "method"}
    late = integrate(setting, first, np.array([0.0, simulation.t_max]), **options).state_at(-1)
    named, missing = {f"ODE at t = {simulation.t_max:g}": late}, {}
    if setting.K == setting.M:
        named["perfect learning"] = OrderParameters(first.T, first.T, first.T, first.v_star, first.v_star, first.b)
        if setting.K > 1 and setting.feedback == "backprop":
            for name in PLATEAUS:
                report.stage(f"the {name} students' plateau (the symmetric reduction, then Newton)")
                try:
                    state = plateau(setting, name, first.T, first.v_star).state
                except FixedPointError as error:
                    missing[f"plateau, {name} students"] = str(error)
                    continue
                assert isinstance(state, OrderParameters)  # with a teacher given: the full flows'
                named[f"plateau, {name} students"] = state
    return named, missing


def _record(name: str, point: FixedPoint) -> dict:
    shown = point.eigenvalues[:SHOWN_EIGENVALUES]
    return {"start": name, "also_from": [], "kind": point.kind, "unstable_directions": point.unstable_directions,
            "eg": point.eg, "residual": point.residual, "iterations": point.iterations,
            "eigenvalues_real": np.real(point.eigenvalues).tolist(),
            "eigenvalues_imag": np.imag(point.eigenvalues).tolist(),
            "largest": [complex(value) for value in shown],
            **({"rate": point.rate, "eg_rate": point.eg_rate} if point.kind == "stable" else {}),
            **({"escape_rate": point.escape_rate} if point.kind == "saddle" else {}),
            "Q": np.asarray(point.state.Q).tolist(),
            "R": np.asarray(point.state.R).tolist(), "v": np.asarray(point.state.v).tolist()}


#: The most units K + M for which a stable point's spread is reported: the diffusion matrix's
#: rule costs P² per point for P ~ K²/2 + K M coordinates (4 s at K = M = 8 with compilation).
SPREAD_UNITS = 16


def _finite_N(setting, point: FixedPoint, N: int) -> dict:
    """What the point means for SGD at the config's N (docs/conventions.md, "Finite N"): a stable
    point's stationary standard deviation of ε_g (linear noise, "eg_std": zero at perfect learning
    without label noise, where every step's increment vanishes; for K + M ≤ SPREAD_UNITS), a
    saddle's leading-order escape time from a deviation N^−1/2, ln N/(2λ_u) ("escape_time")."""
    if point.kind == "stable" and setting.K + setting.M <= SPREAD_UNITS:
        return {"eg_std": float(np.sqrt(stationary_fluctuations(setting, point, N).eg_var[0]))}
    if point.kind == "saddle":
        return {"escape_time": point.escape_time(N ** -0.5)}
    return {}


def refuse(panel) -> None:
    """Raise ValueError (one line) for a panel `analyse` does not take: structured inputs."""
    if panel.setting.input_spectrum is not None:
        raise ValueError("nndyn analyse takes isotropic inputs; with an input_spectrum use nndyn.fixed_point, "
                         "nndyn.plateaus and nndyn.learning_rate_threshold (docs/structured.md)")


def analyse(panel, report=None) -> dict:
    """The fixed points found from `starts`, and η_max, η_opt, η_c where defined, as plain data.
    Isotropic inputs only (a ValueError of one line for a spectrum). `report` is told each stage
    (`nndyn.app.progress.Line`)."""
    report = report or Silent()
    setting = panel.setting
    refuse(panel)
    found = []
    teacher = _teacher(panel)
    named, missing = starts(panel, teacher, report)
    failures = [{"start": name, "error": error} for name, error in missing.items()]
    for name, start in named.items():
        report.stage(f"Newton's method from {name}")
        try:
            point = fixed_point(setting, start)
        except FixedPointError as error:
            failures.append({"start": name, "error": str(error)})
            continue
        x = np.concatenate([np.ravel(point.state.Q), np.ravel(point.state.R), np.ravel(point.state.v)])
        same = [record for record, other in found if np.max(np.abs(x - other)) <= 1e-8]
        if same:
            same[0]["also_from"].append(name)
        else:
            if point.kind == "stable":
                report.stage(f"the stationary spread at N = {panel.simulation.N} about the point from {name}")
            found.append((_record(name, point) | _finite_N(setting, point, panel.simulation.N), x))
    T, v_star = np.asarray(teacher.T), np.asarray(teacher.v_star)
    result = {"setting": vars(setting), "teacher": {"seed": 0, "N": panel.simulation.N, "T": T.tolist(),
                                                    "v_star": v_star.tolist()},
              "fixed_points": [record for record, _ in found], "failures": failures}
    if setting.K == setting.M and setting.sigma == 0:
        report.stage("η_max and η_opt (the Jacobian at perfect learning against η)")
        try:
            result["eta_max"] = learning_rate_threshold(setting, T, v_star, relative_tolerance=1e-10)
            result["eta_opt"], result["rate_at_eta_opt"] = optimal_learning_rate(setting, T, v_star)
            result["eta_opt_state"], result["rate_at_eta_opt_state"] = optimal_learning_rate(setting, T, v_star,
                                                                                             of="state")
        except FixedPointError as error:  # no Jacobian at perfect learning (e.g. ReLU)
            result["eta_max_undefined"] = str(error)
        if setting.K > 1 and setting.feedback == "backprop" and "eta_max" in result:
            report.stage("η_c (the plateau's stability against η, in the symmetric reduction)")
            try:
                result["eta_c"] = plateau_threshold(setting)
            except FixedPointError as error:
                result["eta_c_undefined"] = str(error)
    report.finish()
    return result


def table(result: dict) -> str:
    """The analysis as lines for the terminal."""
    teacher = result["teacher"]
    T = np.asarray(teacher["T"])
    names = {id(record): " = ".join([record["start"], *record["also_from"]]) for record in result["fixed_points"]}
    width = 2 + max([len("start"), *map(len, names.values()),
                     *(len(failure["start"]) for failure in result["failures"])])
    lines = [f"teacher: seed {teacher['seed']} at N = {teacher['N']} (T = I within "
             f"{np.max(np.abs(T - np.eye(len(T)))):.2g}), for every row below",
             f"{'start':<{width}}{'kind':<10}{'unstable':>9}{'ε_g':>12}  largest eigenvalues"]
    for record in result["fixed_points"]:
        values = ", ".join(f"{value.real:.4g}" + (f"{value.imag:+.3g}i" if abs(value.imag) > 1e-12 else "")
                           for value in record["largest"])
        lines.append(f"{names[id(record)]:<{width}}{record['kind']:<10}{record['unstable_directions']:>9}"
                     f"{record['eg']:>12.4g}  {values}")
    for failure in result["failures"]:
        lines.append(f"{failure['start']:<{width}}no fixed point found: {failure['error']}")
    for record in result["fixed_points"]:
        if "eg_std" in record:
            lines.append(f"{names[id(record)]}: at N = {teacher['N']}, SGD's ε_g spreads ±{record['eg_std']:.3g} (1σ, "
                         "stationary, linear noise)")
        if "escape_time" in record:
            lines.append(f"{names[id(record)]}: at N = {teacher['N']}, left after ≈ ln N/(2λ_u) = "
                         f"{record['escape_time']:.3g} from a deviation N^-1/2 (to leading order)")
    if "eta_max" in result:
        lines.append(f"η_max = {result['eta_max']:.8g} (perfect learning loses stability); η_opt = "
                     f"{result['eta_opt']:.6g} (fastest learning: ε_g decays at {result['rate_at_eta_opt']:.4g})")
        lines.append(f"the order parameters approach perfect learning fastest at η = {result['eta_opt_state']:.6g} "
                     f"(rate {result['rate_at_eta_opt_state']:.4g}; a mode ε_g sees at second order counts twice "
                     "its rate in ε_g's)")
    if "eta_max_undefined" in result:
        lines.append(f"η_max, η_opt: undefined: {result['eta_max_undefined']}")
    if "eta_c" in result:
        lines.append("η_c (T = I, within the symmetric ansatz): " + (
            "none below η_max: the plateau stays a saddle" if result["eta_c"] is None else
            f"{result['eta_c']:.6g}: above it the distinct-students plateau is stable and students never specialise"))
    if "eta_c_undefined" in result:
        lines.append(f"η_c: undefined: {result['eta_c_undefined']}")
    return "\n".join(lines)
