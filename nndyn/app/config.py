"""Config files: `nndyn run CONFIG.toml` (one setting, simulated and integrated) and `nndyn sweep
SWEEP.toml` (ODEs over a grid). Every key is a parameter of the schema (`nndyn.core.schema`),
checked by the same rule as in the Python API; every problem of a file is reported, one line each.

A run config takes `name` and the fields of `Setting`, `Simulation`
(seeds >= 2: the verdict estimates fluctuations from the seeds) and `ODEOptions`, and `band`
(`BAND`);
structured inputs in an [inputs] table (`INPUTS`: `spectrum = [[ρ, f], …]`, or `power_law = a`
with `levels = L` and `normalise`; `teacher_spectrum`), or as the Setting's `input_spectrum`;
for continual learning also a [teachers] table (`Teachers`) and [[phases]] tables
(`Phase`; t_max is then the sum of the phases' t).
A sweep config takes `name`, `t_max`, `saves`, `chunk` and the Setting's fields fixed over a
sweep (activation, train_second_layer) at the top; the grid parameters in a [defaults] table
and either a [grid] table of lists (the Cartesian product) or [[points]] tables; and
`ODEOptions` fields (adaptive only) in an [options] table.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from nndyn.app.experiments import Experiment, Panel, band_problem
from nndyn.core import schema, spectrum
from nndyn.core.continual import Phase, Protocol, Teachers
from nndyn.core.schema import Parameter
from nndyn.core.setting import Setting
from nndyn.core.simulate import Simulation
from nndyn.core.solver import ODEOptions
from nndyn.sweeps.grid import GRID_PARAMETERS, SWEEP_WIDE, Sweep, check_point, grid

#: A run's name.
RUN_NAME = Parameter("name", str, False, "run", "the run's name (its folder is runs/<name>-<time>)", identifier=True)
#: Whether a run draws the linear-noise band of ε_g (`Panel.band`).
BAND = Parameter("band", bool, False, False, "draw the linear-noise ±2σ band of ε_g about the ODE from the seeds' "
                 "mean start (nndyn.fluctuations; isotropic inputs, no phases, v not trained)")
#: The keys of a run config's [inputs] table: a spectrum given as levels, or a power law.
INPUTS = {
    "spectrum": schema.parameters(Setting)["input_spectrum"].replace(name="spectrum"),
    "power_law": Parameter("power_law", float, True, None, "exponent a of ρ_ℓ ∝ ℓ^−(1+a)", above=-1),
    "levels": Parameter("levels", int, True, None, "levels of the power law (each a fraction 1/levels)", minimum=1),
    "normalise": Parameter("normalise", bool, False, True, "normalise the power law to tr Σ/N = 1"),
    "teacher_spectrum": schema.parameters(Setting)["teacher_spectrum"],
}
#: The sweep tables.
SWEEP_TABLES = ("defaults", "grid", "points", "options")


class ConfigError(ValueError):
    """Every problem of a config file, one line each, prefixed with the file's path."""

    def __init__(self, path: Path, problems: list[str]):
        self.problems = [f"{path}: {problem}" for problem in problems]
        super().__init__("\n".join(self.problems))


def run_parameters() -> dict[str, Parameter]:
    """The keys of a run config and their rules."""
    simulation = schema.parameters(Simulation)
    simulation["seeds"] = simulation["seeds"].replace(minimum=2)
    return {"name": RUN_NAME, **schema.parameters(Setting), **simulation, **schema.parameters(ODEOptions), "band": BAND}


def _load(path: Path) -> dict:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(path, [f"cannot read: {error}"]) from None


Built = TypeVar("Built")


def _build(build: Callable[[], Built], problems: list[str]) -> Built | None:
    """`build()`, with a ValueError it raises (a check across fields, the activation) added to
    `problems`; None when it failed or there were problems already."""
    if problems:
        return None
    try:
        return build()
    except ValueError as error:
        problems.append(str(error))
        return None


def read_config(path: Path) -> Experiment:
    """The one-panel experiment of the run config `path`; raises ConfigError."""
    raw = _load(path)
    protocol, problems = _read_protocol(raw)
    problems += _read_inputs(raw)
    values, found = schema.read(run_parameters(), raw)
    problems += found
    fields = {cls: {name: values[name] for name in schema.parameters(cls) if name in values}
              for cls in (Setting, Simulation, ODEOptions)}
    setting = _build(lambda: Setting(**fields[Setting]), problems)
    simulation = _build(lambda: Simulation(**fields[Simulation]), problems)
    options = _build(lambda: ODEOptions(**fields[ODEOptions]), problems)
    problems += [problem for problem in _ignored(raw, values, protocol)
                 if not any(other.startswith(problem.split()[0] + " ") for other in problems)]  # one line per key
    if values.get("band") and setting is not None:
        problem = band_problem(setting, protocol)
        if problem:
            problems.append(f"band: {problem}")
    if problems:
        raise ConfigError(path, problems)
    assert setting is not None and simulation is not None and options is not None  # built without problems
    inputs = "" if setting.input_spectrum is None else f", Σ in {setting.levels} levels"
    panel = Panel(f"{setting.activation}, K = {setting.K}, M = {setting.M}{inputs}", setting, simulation, options,
                  protocol, band=values["band"])
    if protocol is not None:
        rows = ("eg_teacher", "R", "Q", "v") if setting.train_second_layer else ("eg_teacher", "R", "Q")
        return Experiment(values["name"], f"{panel.label}, {protocol.teachers.count} teachers", (panel,), rows)
    rows = ("eg", "R", "Q", "v", "alignment") if setting.train_second_layer else ("eg", "R", "Q")
    if setting.feedback == "alignment":
        rows += ("feedback",)
    return Experiment(values["name"], panel.label, (panel,), rows)


def _read_inputs(raw: dict) -> list[str]:
    """Move a run config's [inputs] table (removed from `raw`) into `input_spectrum`; its problems,
    one line each."""
    if "inputs" not in raw:
        return []
    table = raw.pop("inputs")
    if not isinstance(table, dict):
        return ["'inputs' must be an [inputs] table"]
    values, problems = schema.read(INPUTS, table, defaults=False)
    problems = [f"[inputs] {problem}" for problem in problems]
    if problems:
        return problems
    if "teacher_spectrum" in values:
        if "teacher_spectrum" in raw:
            return ["give teacher_spectrum either at the top or in the [inputs] table, not both"]
        raw["teacher_spectrum"] = values.pop("teacher_spectrum")
        if not values:
            return []
    if "input_spectrum" in raw:
        return ["give the input spectrum either as input_spectrum or in the [inputs] table, not both"]
    if ("spectrum" in values) == ("power_law" in values):
        return ["[inputs] needs either spectrum = [[eigenvalue, fraction], ...] or power_law = a (with levels = L)"]
    if "spectrum" in values:
        if set(values) - {"spectrum"}:
            return [f"[inputs] {', '.join(sorted(set(values) - {'spectrum'}))} apply to a power_law, not a spectrum"]
        raw["input_spectrum"] = values["spectrum"]
        return []
    if "levels" not in values:
        return ["[inputs] power_law needs levels = L (the levels of equal fraction it is binned into)"]
    raw["input_spectrum"] = spectrum.power_law(values["power_law"], values["levels"], values.get("normalise", True))
    return []


def _read_protocol(raw: dict) -> tuple[Protocol | None, list[str]]:
    """The protocol of a run config's [teachers] and [[phases]] tables (removed from `raw`,
    which gets t_max = the protocol's duration when it has none), and its problems."""
    if "teachers" not in raw and "phases" not in raw:
        return None, []
    problems = []
    table, phases = raw.pop("teachers", {}), raw.pop("phases", [])
    if not isinstance(table, dict):
        return None, ["'teachers' must be a [teachers] table"]
    if not isinstance(phases, list) or not phases or not all(isinstance(phase, dict) for phase in phases):
        return None, ["a protocol needs [[phases]] tables (one or more)"]
    teachers, found = schema.read(schema.parameters(Teachers), table)
    problems += [f"[teachers] {problem}" for problem in found]
    read = []
    for index, phase in enumerate(phases):
        values, found = schema.read(schema.parameters(Phase), phase)
        problems += [f"[[phases]] {index}: {problem}" for problem in found]
        read.append(values)
    if problems:
        raw.setdefault("t_max", 1.0)  # a placeholder: the protocol's own problems are what is reported
        return None, problems
    protocol = _build(lambda: Protocol(Teachers(**teachers), tuple(Phase(**values) for values in read)), problems)
    if protocol is not None:
        if "t_max" in raw and raw["t_max"] != protocol.duration:
            problems.append(f"t_max = {raw['t_max']!r} differs from the protocol's duration {protocol.duration:g} "
                            "(the sum of the phases' t); leave t_max out")
        raw.setdefault("t_max", protocol.duration)
    return protocol, problems


def read_sweep(path: Path) -> Sweep:
    """The `Sweep` of the sweep config `path` (see the module docstring); raises
    ConfigError naming every problem."""
    raw, problems = _load(path), []
    tables = {}
    for name in SWEEP_TABLES:
        kind = list if name == "points" else dict
        tables[name] = raw.get(name, kind())
        if not isinstance(tables[name], kind) or (kind is list and not all(isinstance(p, dict) for p in tables[name])):
            problems.append(f"'{name}' must be {'[[points]] tables' if kind is list else f'a [{name}] table'}")
            tables[name] = kind()
    top = dict(schema.parameters(Sweep))
    top["name"] = top["name"].replace(default="sweep")
    top.update({name: schema.parameters(Setting)[name] for name in SWEEP_WIDE})
    values, found = schema.read(top, {key: value for key, value in raw.items() if key not in SWEEP_TABLES})
    problems += found
    defaults, found = schema.read(GRID_PARAMETERS, tables["defaults"], defaults=False)
    problems += [f"[defaults] {problem}" for problem in found]
    if "grid" in raw and "points" in raw:
        problems.append("give either a [grid] table or [[points]] tables, not both")
    for name, values_of in tables["grid"].items():
        if name not in GRID_PARAMETERS:
            problems.append(f"[grid] unknown parameter '{name}' (known: {', '.join(GRID_PARAMETERS)})")
        elif not isinstance(values_of, list) or not values_of:
            problems.append(f"[grid] {name} must be a non-empty list of values, got {values_of!r}")
        else:
            for value in values_of:
                try:
                    check_point({name: value})
                except ValueError as error:
                    problems.append(f"[grid] {error}")
    for index, point in enumerate(tables["points"]):
        try:
            check_point(point)
        except ValueError as error:
            problems.append(f"[[points]] {index}: {error}")
    options, found = schema.read(schema.parameters(ODEOptions), tables["options"], defaults=False)
    problems += [f"[options] {problem}" for problem in found]
    points = grid(defaults, None if "points" in raw else tables["grid"], tables["points"] if "points" in raw else None)
    sweep = _build(lambda: Sweep(points=points, options=options, **values), problems)
    if problems:
        raise ConfigError(path, problems)
    assert sweep is not None  # built without problems
    return sweep


def _ignored(raw: dict, values: dict, protocol: Protocol | None) -> list[str]:
    """Problems with keys a config gives that its model would ignore: the second layer's rates
    and scale where it does not train, a fixed-step method for a protocol (adaptive only)."""
    problems = []
    if not values.get("train_second_layer"):
        given = [name for name in ("lr_v", "weight_decay_v", "init_scale_v") if raw.get(name, 0) != 0]
        given += [f"[[phases]] {index} lr_v" for index, phase in enumerate(protocol.phases if protocol else ())
                  if phase.lr_v is not None]
        problems += [f"{name} is given but the second layer does not train (train_second_layer = false): it would "
                     "be ignored" for name in given]
    if protocol is not None and values.get("input_spectrum") is not None:
        problems.append("structured inputs (an input spectrum) are not available for a protocol ([[phases]]) yet")
    if protocol is not None and values.get("method") not in (None, "adaptive"):
        problems.append(f"method = {values['method']!r} is not available for a protocol ([[phases]]): protocols "
                        "integrate with the adaptive method")
    return problems


def with_scale(experiment: Experiment, **changes) -> Experiment:
    """`experiment` with fields of every panel's `Simulation` changed (checked); a protocol's
    duration is its phases', so t_max is refused for one."""
    if not changes:
        return experiment
    if "t_max" in changes and any(panel.protocol is not None for panel in experiment.panels):
        raise ValueError(f"--t-max does not apply to {experiment.name}: its phases set its duration")
    panels = tuple(replace(panel, simulation=replace(panel.simulation, **changes)) for panel in experiment.panels)
    return replace(experiment, panels=panels)
