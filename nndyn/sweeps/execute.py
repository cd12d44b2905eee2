"""Running sweeps: ODE integrations over grid points, sharded over every JAX device, resumable.

Points with the same K and M (the array shapes) form a group, integrated by one compiled
program: `jax.vmap` over the grid axis of the pure `nndyn.solve`, inside `jax.jit`. On one
device that is `solve_many`, the solve set-up of every other run, whose exported program is kept
on disk (`nndyn.core.cache`: a fresh process skips tracing it); on several, the grid axis is
sharded over a one-dimensional device `Mesh` ("grid") by a `NamedSharding`, and the program is
traced in each process. The same code runs on one CPU, several GPUs, or several hosts after
`jax.distributed.initialize()` (every process runs the same command; process 0 writes). Groups
are cut into chunks of at most `chunk` points (a multiple of the device count, padded by
repeating the last point), which bounds memory; each finished chunk is written atomically
(`nndyn.sweeps.store`), and a rerun skips the chunks already written, so an interrupted sweep
resumes where it stopped and never rewrites a finished chunk.

Initial states: student and teacher weights drawn as by `nndyn.simulate` (teacher seed 0,
student seed `seed`, N(0, init_scale²) entries) in dimension `init_N`, reduced to order
parameters (`nndyn.core.weights.initial_states`), so a sweep point starts where an SGD run
with that seed would.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nndyn.core.errors import Status
from nndyn.core.solver import ODEOptions, solve, solve_many
from nndyn.core.weights import initial_states
from nndyn.sweeps import store
from nndyn.sweeps.grid import DEFAULTS, Sweep


def _mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), ("grid",))


def _global(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array sharded along its first (grid) axis, from the same host data on every process."""
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def _host(array: jax.Array) -> np.ndarray:
    if jax.process_count() == 1:
        return np.asarray(array)
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def _solve_chunk(sweep: Sweep, indices: list[int], ts: np.ndarray, sharded: bool) -> dict:
    """Integrate the points `indices` (one shape) in one vmapped, jitted call (`solve_many` on one
    device, sharded over several); returns the chunk's arrays (see `nndyn.sweeps.store`)."""
    devices = len(jax.devices()) if sharded else 1
    size = -(-len(indices) // devices) * devices
    padded = [sweep.points[i] for i in indices + [indices[-1]] * (size - len(indices))]
    settings = [sweep.setting(point) for point in padded]
    states = initial_states(
        settings[0], *([point[name] for point in padded] for name in ("init_N", "seed", "init_scale"))
    )
    y0 = states.as_ode_state()
    b = [None] * len(settings) if states.b is None else states.b
    args = {
        key: np.stack(
            [
                np.asarray(setting.ode_args(T, v_star, b_)[key], dtype=np.float64)
                for setting, T, v_star, b_ in zip(settings, states.T, states.v_star, b)
            ]
        )
        for key in settings[0].ode_args(states.T[0], states.v_star[0], b[0])
    }
    keep = slice(0, len(indices))
    out = {"index": np.asarray(indices), "t": ts, "T": args["T"][keep], "v_star": np.asarray(states.v_star)[keep]}
    if states.b is not None:
        out["b"] = np.asarray(states.b)[keep]
    teacher = settings[0].teacher_activation
    options = ODEOptions(**sweep.options)
    if devices == 1:  # the solve set-up of every other run: its program kept on disk (nndyn.core.cache)
        solution = solve_many(settings[0], y0, args, ts, options, leading=1, per_element=tuple(args))
    else:
        sharding = NamedSharding(_mesh(), PartitionSpec("grid"))
        y0 = jax.tree_util.tree_map(lambda x: _global(x, sharding), y0)
        args = jax.tree_util.tree_map(lambda x: _global(x, sharding), args)
        solution = _sharded_solver(sweep.activation, None if teacher == sweep.activation else teacher, options)(
            y0, args, jnp.asarray(ts))
    out["eg"] = _host(solution.eg)[keep]
    for name in ("Q", "R", "v"):
        out[name] = _host(solution.ys[name])[keep]
    out["status"] = _host(solution.status)[keep]
    out["failed_at"] = np.where(out["status"] != Status.ok, _host(solution.failed_at)[keep], np.nan)
    return out


@functools.cache
def _sharded_solver(activation: str, teacher: str | None, options: ODEOptions):
    """solve vmapped over the grid axis of y0 and args, jitted once per model and options, for
    arguments sharded over several devices (traced in each process: an exported program is of
    one device)."""
    return jax.jit(
        jax.vmap(lambda y0, args, ts: solve(activation, y0, args, ts, options, teacher=teacher), in_axes=(0, 0, None))
    )


def run_sweep(sweep: Sweep, folder: Path, *, force: bool = False, sharded: bool = True,
              progress: Callable[[int, int], None] | None = None,
              resumed: Callable[[int, int], None] | None = None) -> list[dict]:
    """Run (or resume) `sweep` in `folder`; returns the table rows, ordered by grid index (on
    process 0; other processes of a multi-host run compute their shards and return []).

    Writes a chunk file per finished chunk, then results.csv (one row per point: parameters,
    status, failed_at, the observables of `nndyn.sweeps.observables`) and the phase
    diagrams (phase_*.png). `progress(done, total)` is called after each chunk, and
    `resumed(reused, points)` once before the work when earlier chunks of this sweep are found in
    `folder` (`reused` of the `points` are read, not computed). With `sharded`, the grid axis is
    split over all devices.
    """
    folder = Path(folder)
    writer = jax.process_index() == 0
    if writer:
        store.prepare(sweep, folder, force)
    ts = np.linspace(0.0, sweep.t_max, sweep.saves)
    devices = len(jax.devices()) if sharded else 1
    chunk_size = -(-sweep.chunk // devices) * devices
    work = [
        (shape, indices[start : start + chunk_size], store.chunk_path(folder, shape, start // chunk_size))
        for shape, indices in sweep.groups().items()
        for start in range(0, len(indices), chunk_size)
    ]
    finished = np.array([writer and store.load_chunk(path) is not None for _, _, path in work])
    if jax.process_count() > 1:  # every process must take part in the same chunks' computations
        from jax.experimental import multihost_utils

        finished = np.asarray(multihost_utils.broadcast_one_to_all(finished))
    if resumed is not None and finished.any():
        resumed(sum(len(indices) for (_, indices, _), skip in zip(work, finished) if skip), len(sweep.points))
    table = []
    for done, ((_, indices, path), skip) in enumerate(zip(work, finished), start=1):
        if skip:
            chunk = store.load_chunk(path)
            if chunk is None:
                raise RuntimeError(f"{path} vanished while the sweep ran; run the sweep again to resume it")
        else:
            chunk = _solve_chunk(sweep, indices, ts, sharded)
            if writer:
                store.save_chunk(path, chunk)
        if writer:
            table.extend(store.rows(sweep, chunk))
        if progress is not None:
            progress(done, len(work))
    table.sort(key=lambda row: row["index"])
    if writer:
        store.write_table(table, folder / "results.csv")
        from nndyn.sweeps.phase import plot_phase_diagrams  # Matplotlib: imported only when plotting

        plot_phase_diagrams(table, DEFAULTS, folder)
    return table


def sweep(points: Iterable[dict], t_max: float, folder: str | os.PathLike, **fields) -> list[dict]:
    """`run_sweep(Sweep(name, points, t_max, …), folder)` in one call; `points` from `grid`."""
    options = {key: fields.pop(key) for key in ("force", "sharded", "progress", "resumed") if key in fields}
    return run_sweep(Sweep(fields.pop("name", "sweep"), tuple(points), t_max, **fields), Path(folder), **options)
