"""Run folders: staged in a hidden sibling and renamed into place, so that a crash never leaves
a half-written run, and an existing folder is replaced only when asked and only when this tool
wrote it (it holds the marker file MARKER).

The last rename never replaces what appeared at the folder's path while the run worked (another
run, a folder someone made): on Linux it is renameat2 with RENAME_NOREPLACE, atomic; elsewhere
(or on a file system without it) a check just before an ordinary rename. A run under a default
name that another run took in the meantime gets the next free suffix (NAME-2, NAME-3, …). A
stage holds a lock (flock on LOCK) for as long as its run works, so the clean-up of stages left
by killed runs removes only stages whose lock is free: it never touches a live run's stage,
whatever process namespace or host that run is in.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import errno
import fcntl
import json
import math
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import numpy as np

from nndyn.app.plots import plot_experiment
from nndyn.files import umask, write_atomically

#: The file that marks a folder as a run folder written by nndyn (`--force` replaces only those).
MARKER = ".nndyn-run"
#: The lock file of a stage, locked (flock) by its run while it works.
LOCK = ".nndyn-lock"
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


def check_parent_writable(folder: Path) -> None:
    """Refuse (PermissionError, one line) a `folder` that could not be created: its nearest
    existing parent is not writable. Checked before the work, not after it."""
    parent = folder.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write in {parent} (for {folder}): choose another --out")


def check_writable(folder: Path, force: bool) -> None:
    """Refuse a `folder` that cannot be written (`check_parent_writable`), and to replace an
    existing `folder` unless `force`, and even then unless it is a run folder this tool wrote."""
    check_parent_writable(folder)
    if not folder.exists() and not folder.is_symlink():
        return
    if not force:
        raise FileExistsError(f"{folder} exists; pass --force to replace it")
    if folder.is_symlink() or not folder.is_dir() or not (folder / MARKER).is_file():
        raise FileExistsError(f"{folder} exists and is not a run folder written by nndyn; --force replaces only "
                              "those: remove it yourself or choose another --out")


def remove_stale_stages(parent: Path) -> None:
    """Remove the staged folders in `parent` left by runs that were killed outright (SIGKILL, or
    SIGTERM during a long computation followed by SIGKILL): hidden `.NAME.partial-*` folders
    holding nndyn's marker and a lock file that no process holds."""
    for stage in parent.glob(".*.partial-*"):
        if not (stage / MARKER).is_file():
            continue  # not one of ours
        try:
            with open(stage / LOCK, "rb") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # locked: its run works; or no lock: a run finishing, or not one of ours
        shutil.rmtree(stage, ignore_errors=True)


def rename_no_replace(source: Path, target: Path) -> None:
    """Rename `source` to `target`; FileExistsError when `target` exists, even as an empty
    folder (which `os.rename` would silently replace). Atomic where the kernel and the file
    system offer renameat2's RENAME_NOREPLACE (Linux), else a check just before the rename."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        renameat2 = None
    if renameat2 is not None:
        at_cwd, no_replace = -100, 1
        if renameat2(at_cwd, os.fsencode(source), at_cwd, os.fsencode(target), no_replace) == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), str(target))
        if code not in (errno.EINVAL, errno.ENOSYS):
            raise OSError(code, os.strerror(code), str(target))
    if target.exists() or target.is_symlink():
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    os.rename(source, target)


class Staging:
    """A run's staged folder: `stage`, where it writes; `folder`, where its results land (the
    folder asked for, or with `unique` the next free NAME-k beside it), set when it has."""

    def __init__(self, stage: Path, folder: Path):
        self.stage, self.folder = stage, folder


@contextlib.contextmanager
def staged(folder: Path, force: bool, unique: bool = False):
    """Yield a `Staging` whose fresh hidden stage is beside `folder`; on success the stage
    replaces `folder` by renames, on failure (an exception, Ctrl-C, SIGTERM) it is removed and
    `folder` is left as it was. A folder that appeared at `folder`'s path while the run worked is
    never replaced: with `unique` (a default name) the run goes to the first free one of `folder`,
    NAME-2, NAME-3, …, else it fails with FileExistsError. Stages of earlier runs that were
    killed outright are removed first."""
    if not unique:
        check_writable(folder, force)
    replaced = None if unique else _identity(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_stages(folder.parent)
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    _STAGES.add(stage)
    lock = None
    try:
        stage.chmod(0o777 & ~umask())  # as a plain mkdir would make it, not mkdtemp's 0700
        (stage / MARKER).write_text(f"written by nndyn, process {os.getpid()}\n", encoding="utf-8")
        lock = open(stage / LOCK, "wb")
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        staging = Staging(stage, folder)
        yield staging
        (stage / LOCK).unlink()  # the lock stays held until the stage has moved
        staging.folder = _move_into_place(stage, folder, replaced, unique)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        _STAGES.discard(stage)
        if lock is not None:
            lock.close()


def _identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing folder, None when there is none."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def _move_into_place(stage: Path, folder: Path, replaced: tuple[int, int] | None, unique: bool) -> Path:
    """Rename `stage` to `folder` (replacing the run folder `replaced` that --force allowed, if it
    is still the same one), or with `unique` to the first free NAME-k; returns where it went."""
    if replaced is not None:
        if _identity(folder) != replaced:
            raise FileExistsError(f"{folder} changed while the run worked; nothing was replaced")
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
        folder.rename(old / folder.name)
        try:
            rename_no_replace(stage, folder)
        except FileExistsError:
            (old / folder.name).rename(folder)
            raise FileExistsError(f"{folder} appeared again while the run replaced it; nothing was replaced") from None
        finally:
            shutil.rmtree(old, ignore_errors=True)
        return folder
    for attempt in range(1, 1000 if unique else 2):
        target = folder if attempt == 1 else folder.with_name(f"{folder.name}-{attempt}")
        try:
            rename_no_replace(stage, target)
            return target
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder} appeared while the run worked; nothing was replaced (choose another --out)")


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
    """Write `data` as JSON (valid JSON: a non-finite number, e.g. an infinite score, as null)."""
    write_atomically(path, json.dumps(_finite(data), indent=2, sort_keys=False, allow_nan=False) + "\n")


def _finite(data):
    """`data` with every non-finite float replaced by None."""
    if isinstance(data, dict):
        return {key: _finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(value) for value in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def save_experiment(folder: Path, experiment, results, finite=None) -> dict:
    """Write <name>.png, <name>.npz (every trajectory: p<i>_sim_<field>, p<i>_ode_<field>; a
    panel's band: p<i>_band_eg (the ODE from the seeds' mean start), p<i>_band_eg_var,
    p<i>_band_covariance; for a continual run also sim_eg_teacher, ode_eg_teacher (seeds, times,
    teachers), T and v_star; with `finite`, a `nndyn.app.finite.FiniteResult`: the SDE's paths
    sde_<field>, the escape times escape_sgd, escape_sde (sizes, paths) and escape_N) and return
    the experiment's summary (one entry per panel, and with `finite` its "finite_N")."""
    arrays = {}
    for index, result in enumerate(results):
        for kind, trajectory in (("sim", result.sim), ("ode", result.ode)):
            for name, value in trajectory.to_numpy().items():
                arrays[f"p{index}_{kind}_{name}"] = value
        if result.spread is not None:
            arrays.update({f"p{index}_band_eg": np.asarray(result.spread.ode.eg),
                           f"p{index}_band_eg_var": result.spread.eg_var,
                           f"p{index}_band_covariance": result.spread.covariance})
    continual = [result for result in results if result.panel.protocol is not None]
    if len(results) == 1 and continual:  # a continual run: its main arrays by their own names too
        sim, ode = continual[0].sim, continual[0].ode
        arrays.update(sim_eg_teacher=np.asarray(sim.eg_teacher), ode_eg_teacher=np.asarray(ode.eg_teacher),
                      T=np.asarray(sim.T), v_star=np.asarray(sim.v_star))
    if finite is not None:
        arrays.update({f"sde_{name}": value for name, value in finite.paths.to_numpy().items()})
        arrays.update(escape_sgd=finite.escapes.sgd, escape_sde=finite.escapes.sde,
                      escape_N=np.asarray(finite.escapes.escapes.sizes))
    np.savez_compressed(folder / f"{experiment.name}.npz", **arrays)
    plot_experiment(experiment, results, folder / f"{experiment.name}.png", finite)
    summary = {
        "title": experiment.title,
        "panels": [result.summary() for result in results],
        "config": [result.panel.config() for result in results],
    }
    if finite is not None:
        (result,) = results
        summary["finite_N"] = finite.summary(result)
        summary["config"][0]["escapes"] = asdict(experiment.escapes)
    return summary
