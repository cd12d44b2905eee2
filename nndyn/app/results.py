"""Reading results back: run folders (`nndyn run`, `nndyn reproduce`) and sweep folders
(`nndyn sweep`) as the objects that made them, with no parsing of file keys by hand.

Tidy tables of them: `Trajectory.to_dataframe` and `Trajectory.to_xarray`, and
`sweep_dataframe` (pandas and xarray are optional, imported on use).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nndyn.core.trajectory import Trajectory
from nndyn.sweeps.grid import GRID_PARAMETERS

if TYPE_CHECKING:
    import pandas


@dataclass(frozen=True)
class PanelData:
    """One panel of a run folder: its `label`, the simulation `sim` and the ODEs `ode` (seed
    axis first; with phases for a continual run), its `summary` (as in summary.json) and
    `config` (as in config.json)."""

    label: str
    sim: Trajectory
    ode: Trajectory
    summary: dict
    config: dict


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep folder: its `row` of results.csv as a dict (parameters, status,
    observables; numbers as numbers) and its ODE `trajectory` (None when its solve failed or its
    chunk is missing)."""

    row: dict
    trajectory: Trajectory | None


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path.parent} is not a finished nndyn folder: no {path.name}") from None


def _trajectory(arrays: dict[str, np.ndarray], prefix: str, config: dict) -> Trajectory:
    """The trajectory stored under the keys `prefix`<field> of a run's npz, whose panel has the
    config `config`. A protocol's run written before its trajectory had `eg` and `v` (the
    teacher and head trained up to each time) gets them from its phases."""
    fields = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
    if "eg_teacher" in fields and "eg" not in fields:
        from nndyn.core.continual import Phase, Protocol, Teachers, active

        protocol = Protocol(Teachers(**config["teachers"]), tuple(Phase(**phase) for phase in config["phases"]))
        fields["eg"], fields["v"] = active(protocol, fields["phase"], fields["eg_teacher"], fields["heads"])
    return Trajectory(**fields)


def load_run(folder: str | os.PathLike) -> dict[str, list[PanelData]]:
    """The panels of the run folder `folder`, per experiment (figure) name, in order; a folder
    that is not a complete run folder (damaged, interrupted, foreign) is one ValueError."""
    with _readable(folder, "run"):
        return _load_run(Path(folder))


@contextlib.contextmanager
def _readable(folder, kind: str):
    """Turn the errors of reading a damaged, interrupted or foreign folder into one ValueError."""
    try:
        yield
    except (KeyError, IndexError, TypeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        if isinstance(error, ValueError) and str(error).startswith(str(folder)):
            raise  # already one line about this folder
        raise ValueError(f"{folder} is not a complete {kind} folder written by nndyn ({type(error).__name__}: "
                         f"{error})") from None


def _load_run(folder: Path) -> dict[str, list[PanelData]]:
    config, summary = _json(folder / "config.json"), _json(folder / "summary.json")
    experiments = {}
    for name, panels in config["experiments"].items():
        with np.load(folder / f"{name}.npz") as stored:
            arrays = dict(stored)
        experiments[name] = [
            PanelData(summary[name]["panels"][index]["label"], _trajectory(arrays, f"p{index}_sim_", panel_config),
                      _trajectory(arrays, f"p{index}_ode_", panel_config), summary[name]["panels"][index],
                      panel_config)
            for index, panel_config in enumerate(panels)
        ]
    return experiments


def _cell(column: str, text: str):
    """A results.csv cell as the value it was written from (grid parameters by their kind;
    observables as floats or booleans; "" as None)."""
    if text == "":
        return None
    if column in GRID_PARAMETERS:
        kind = GRID_PARAMETERS[column].kind
        return text == "True" if kind is bool else kind(text)
    if column == "index":
        return int(text)
    if column == "status":
        return text
    return {"True": True, "False": False}[text] if text in ("True", "False") else float(text)


def load_sweep(folder: str | os.PathLike) -> list[SweepPoint]:
    """The points of the sweep folder `folder` in grid order, with their ODE trajectories; a
    folder that is not a finished sweep folder (damaged, interrupted, foreign) is one ValueError."""
    with _readable(folder, "sweep"):
        return _load_sweep(Path(folder))


def _load_sweep(folder: Path) -> list[SweepPoint]:
    _json(folder / "sweep.json")  # a finished sweep folder, or one clear error
    with open(folder / "results.csv", newline="", encoding="utf-8") as stream:
        table = [{key: _cell(key, value) for key, value in row.items()} for row in csv.DictReader(stream)]
    trajectories = {}
    for path in sorted((folder / "chunks").glob("*.npz")):
        with np.load(path) as chunk:
            arrays = dict(chunk)
        if "v_star" not in arrays:
            raise ValueError(f"{path} was written by an older nndyn (no v_star): run the sweep again with --force")
        for j, index in enumerate(arrays["index"]):
            trajectories[int(index)] = Trajectory(
                t=arrays["t"], eg=arrays["eg"][j], Q=arrays["Q"][j], R=arrays["R"][j], v=arrays["v"][j],
                T=arrays["T"][j], v_star=arrays["v_star"][j], b=arrays["b"][j] if "b" in arrays else None)
    return [SweepPoint(row, trajectories.get(row["index"]) if row["status"] == "ok" else None) for row in table]


def sweep_dataframe(points: list[SweepPoint]) -> pandas.DataFrame:
    """results.csv of a sweep as a `pandas.DataFrame`, one row per point."""
    import pandas

    return pandas.DataFrame([point.row for point in points])
