"""Run folders: staged in a hidden sibling and renamed into place, so that a crash never leaves
a half-written run, and an existing folder is replaced only when asked and only when this tool
wrote it (it holds the marker file MARKER)."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from nndyn.app.plots import plot_experiment
from nndyn.files import write_atomically

#: The file that marks a folder as a run folder written by nndyn (`--force` replaces only those).
MARKER = ".nndyn-run"
#: The stages of this process's runs in progress (removed by `on_termination`).
_STAGES: set[Path] = set()


def on_termination(number: int, frame) -> None:
    """A SIGTERM handler: remove this process's stages and exit with 128 + the signal's number.
    It exits at once rather than raising (an exception raised while Python runs a finaliser, as
    JAX's often do, would be ignored and the run would go on)."""
    for stage in list(_STAGES):
        shutil.rmtree(stage, ignore_errors=True)
    os.write(2, b"nndyn: terminated; the run's staged folder was removed\n")
    os._exit(128 + number)


def default_folder(name: str) -> Path:
    """runs/<name>-<UTC timestamp>."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{name}-{stamp}"


def check_writable(folder: Path, force: bool) -> None:
    """Refuse to replace an existing `folder` unless `force`, and even then unless it is a run
    folder this tool wrote."""
    if not folder.exists() and not folder.is_symlink():
        return
    if not force:
        raise FileExistsError(f"{folder} exists; pass --force to replace it")
    if folder.is_symlink() or not folder.is_dir() or not (folder / MARKER).is_file():
        raise FileExistsError(f"{folder} exists and is not a run folder written by nndyn; --force replaces only "
                              "those: remove it yourself or choose another --out")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_stages(parent: Path) -> None:
    """Remove the staged folders in `parent` left by runs that were killed outright (SIGKILL, or
    SIGTERM during a long computation followed by SIGKILL): hidden `.NAME.partial-*` folders
    holding nndyn's marker with the id of a process that no longer runs."""
    for stage in parent.glob(".*.partial-*"):
        try:
            pid = int((stage / MARKER).read_text(encoding="utf-8").split()[-1])
        except (OSError, ValueError, IndexError):
            continue  # not one of ours
        if not _alive(pid):
            shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def staged(folder: Path, force: bool):
    """Yield a fresh hidden folder beside `folder`; on success it replaces `folder` by renames,
    on failure (an exception, Ctrl-C, SIGTERM) it is removed and `folder` is left as it was.
    Stages of earlier runs that were killed outright are removed first."""
    check_writable(folder, force)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_stages(folder.parent)
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    _STAGES.add(stage)
    try:
        (stage / MARKER).write_text(f"written by nndyn, process {os.getpid()}\n", encoding="utf-8")
        yield stage
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            folder.rename(old / folder.name)
            stage.rename(folder)
            shutil.rmtree(old)
        else:
            stage.rename(folder)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        _STAGES.discard(stage)


def environment() -> dict:
    """Versions and machine, for config.json."""
    versions = {}
    for package in ("nndyn", "jax", "jaxlib", "diffrax", "sympy", "numpy", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "versions": {**versions, "python": sys.version.split()[0]},
        "platform": platform.platform(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
    }


def write_json(path: Path, data) -> None:
    write_atomically(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_experiment(folder: Path, experiment, results) -> dict:
    """Write <name>.png, <name>.npz (every trajectory: p<i>_sim_<field>, p<i>_ode_<field>; for
    a continual run also sim_eg_teacher, ode_eg_teacher (seeds, times, teachers), T and v_star)
    and return the experiment's summary (one entry per panel)."""
    arrays = {}
    for index, result in enumerate(results):
        for kind, trajectory in (("sim", result.sim), ("ode", result.ode)):
            for name, value in trajectory.to_numpy().items():
                arrays[f"p{index}_{kind}_{name}"] = value
    continual = [result for result in results if result.panel.protocol is not None]
    if len(results) == 1 and continual:  # a continual run: its main arrays by their own names too
        sim, ode = continual[0].sim, continual[0].ode
        arrays.update(sim_eg_teacher=np.asarray(sim.eg_teacher), ode_eg_teacher=np.asarray(ode.eg_teacher),
                      T=np.asarray(sim.T), v_star=np.asarray(sim.v_star))
    np.savez_compressed(folder / f"{experiment.name}.npz", **arrays)
    plot_experiment(experiment, results, folder / f"{experiment.name}.png")
    return {
        "title": experiment.title,
        "panels": [result.summary() for result in results],
        "config": [result.panel.config() for result in results],
    }
