"""Sweeps: ODE integrations over a grid of settings, sharded over every JAX device, resumable.

A sweep is a list of grid points, each a value for every parameter in :data:`PARAMETERS`
(the Cartesian product of `grid`, or an explicit list of `points`, over the sweep's defaults).
Points with the same K and M (the array shapes) form a group, integrated by one compiled
program: `jax.vmap` over the grid axis of the pure :func:`nndyn.solve`, inside `jax.jit`, with
the grid axis sharded over a one-dimensional device `Mesh` ("grid") by a `NamedSharding`. The
same code runs on one CPU, several GPUs, or several hosts after `jax.distributed.initialize()`
(every process runs the same command; process 0 writes). Groups are cut into chunks of at most
`chunk` points (a multiple of the device count, padded by repeating the last point), which bounds
memory; each finished chunk is written atomically to chunks/<group>-<index>.npz (parameters,
trajectories, status, observables), and a rerun skips the chunks already written, so an
interrupted sweep resumes where it stopped and never rewrites a finished chunk.

Initial states: student and teacher weights drawn as by :func:`nndyn.simulate` (teacher seed 0,
student seed `seed`, N(0, init_scale²) entries) in dimension `init_N`, reduced to order
parameters, so a sweep point starts where an SGD run with that seed would.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import itertools
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from nndyn.integrate import ODEOptions, solve
from nndyn.observables import FIELDS, summarise
from nndyn.setting import Setting
from nndyn.simulate import student_weights, teacher_weights
from nndyn.state import OrderParameters

#: Parameters a grid may vary, with their defaults (lr_v None: equal to lr).
PARAMETERS = {"K": 2, "M": 2, "lr": 0.5, "lr_v": None, "sigma": 0.0, "batch": 1, "init_scale": 1.0,
              "init_N": 1000, "seed": 0}
STATUS = ("ok", "diverged", "max_steps")


@dataclass(frozen=True)
class Sweep:
    """A sweep.

    **Arguments:**

    - `name`: a label for the run folder.
    - `points`: the grid points, each a dict over :data:`PARAMETERS` (see :func:`grid`).
    - `t_max`, `saves`: integrate over [0, t_max], saving `saves` equally spaced times.
    - `activation`, `train_second_layer`: as in :class:`~nndyn.Setting` (fixed over the sweep).
    - `chunk`: the most grid points integrated at once (rounded up to a multiple of the devices).
    - `options`: :class:`~nndyn.integrate.ODEOptions` fields (rtol, atol, max_steps, …).
    """

    name: str
    points: tuple[dict, ...]
    t_max: float
    saves: int = 201
    activation: str = "erf"
    train_second_layer: bool = False
    chunk: int = 64
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("a sweep needs at least one grid point")
        if not (self.t_max > 0 and self.saves >= 2 and self.chunk >= 1):
            raise ValueError("t_max must be > 0, saves >= 2 and chunk >= 1")
        for point in self.points:
            unknown = set(point) - set(PARAMETERS)
            if unknown:
                raise ValueError(f"unknown sweep parameter(s) {sorted(unknown)}; known: {list(PARAMETERS)}")
            self.setting(point)  # validates K, M, lr, sigma, batch and the activation

    def setting(self, point: dict) -> Setting:
        return Setting(K=point["K"], M=point["M"], lr=point["lr"], lr_v=point["lr_v"], sigma=point["sigma"],
                       batch=point["batch"], train_second_layer=self.train_second_layer,
                       activation=self.activation)

    def fingerprint(self) -> str:
        """A hash of everything that determines the results (a resumed sweep must match it)."""
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()

    def config(self) -> dict:
        return {**dataclasses.asdict(self), "points": [dict(point) for point in self.points]}

    def groups(self) -> dict[tuple[int, int], list[int]]:
        """(K, M) -> indices of the points of that shape, in grid order."""
        groups: dict[tuple[int, int], list[int]] = {}
        for index, point in enumerate(self.points):
            groups.setdefault((point["K"], point["M"]), []).append(index)
        return groups


def grid(defaults: dict | None = None, product: dict | None = None, points: list | None = None) -> tuple[dict, ...]:
    """Grid points: the Cartesian product of `product` (parameter -> list of values), or the
    explicit `points` (a list of dicts), each over `defaults` and then :data:`PARAMETERS`."""
    base = {**PARAMETERS, **(defaults or {})}
    if product is not None and points is not None:
        raise ValueError("give either a Cartesian product or a list of points, not both")
    if points is None:
        names = list(product or {})
        points = [dict(zip(names, values)) for values in itertools.product(*(product or {}).values())]
    return tuple({**base, **point} for point in points)


def _initial_states(sweep: Sweep, points: list[dict]) -> OrderParameters:
    """The initial order parameters of `points` (all of one K, M), batched (P, ...) in NumPy:
    each point's student is drawn by `student_weights` for its seed and init_scale, against
    the teacher of its init_N (drawn once per init_N)."""
    setting = sweep.setting(points[0])
    P, K, M = len(points), setting.K, setting.M
    fields = {"Q": np.empty((P, K, K)), "R": np.empty((P, K, M)), "T": np.empty((P, M, M)),
              "v": np.empty((P, K)), "v_star": np.empty((P, M))}
    for N in {point["init_N"] for point in points}:
        members = [i for i, point in enumerate(points) if point["init_N"] == N]
        W_teacher, v_teacher = (np.asarray(value) for value in teacher_weights(setting, N))
        scales = np.array([points[i]["init_scale"] for i in members])
        W, v = (np.asarray(value) for value in student_weights(setting, N, [points[i]["seed"] for i in members], scales))
        fields["Q"][members] = W @ np.swapaxes(W, -1, -2) / N
        fields["R"][members] = W @ W_teacher.T / N
        fields["T"][members] = W_teacher @ W_teacher.T / N
        fields["v"][members], fields["v_star"][members] = v, v_teacher
    states = OrderParameters(**fields)
    states.validate()
    return states


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
    """Integrate the points `indices` (one shape) in one vmapped, jitted, sharded call."""
    devices = len(jax.devices()) if sharded else 1
    size = -(-len(indices) // devices) * devices
    padded = indices + [indices[-1]] * (size - len(indices))
    states = _initial_states(sweep, [sweep.points[i] for i in padded])
    settings = [sweep.setting(sweep.points[i]) for i in padded]
    y0 = states.as_ode_state()
    args = {key: np.stack([np.asarray(setting.ode_args(T, v_star)[key], dtype=np.float64)
                           for setting, T, v_star in zip(settings, states.T, states.v_star)])
            for key in settings[0].ode_args(states.T[0], states.v_star[0])}
    keep = slice(0, len(indices))
    out = {"index": np.asarray(indices), "t": ts, "T": args["T"][keep]}
    if sharded:
        sharding = NamedSharding(_mesh(), PartitionSpec("grid"))
        y0 = jax.tree_util.tree_map(lambda x: _global(x, sharding), y0)
        args = jax.tree_util.tree_map(lambda x: _global(x, sharding), args)
    solution = _batched_solver(sweep.activation, ODEOptions(**sweep.options))(y0, args, jnp.asarray(ts))
    out["eg"] = _host(solution.eg)[keep]
    for name in ("Q", "R", "v"):
        out[name] = _host(solution.ys[name])[keep]
    failed, bad = _host(solution.failed)[keep], _host(solution.bad)[keep]
    out["status"] = np.where(~failed, 0, np.where(bad.any(axis=1), 1, 2))
    out["failed_at"] = np.where(failed, _host(solution.failed_at)[keep], np.nan)
    return out


@functools.cache
def _batched_solver(activation: str, options: ODEOptions):
    """solve vmapped over the grid axis of y0 and args, jitted once per activation and options."""
    return jax.jit(jax.vmap(lambda y0, args, ts: solve(activation, y0, args, ts, options), in_axes=(0, 0, None)))


def _rows(sweep: Sweep, chunk: dict) -> list[dict]:
    """One table row per point of a finished chunk: parameters, status, observables."""
    rows = []
    for j, index in enumerate(chunk["index"]):
        point = sweep.points[int(index)]
        status = STATUS[int(chunk["status"][j])]
        lr_v = point["lr"] if point["lr_v"] is None else point["lr_v"]
        row = {"index": int(index), **point, "lr_v": lr_v, "status": status,
               "failed_at": float(chunk["failed_at"][j])}
        if status == "ok":
            row.update(summarise(chunk["t"], chunk["eg"][j], chunk["Q"][j, -1], chunk["R"][j, -1],
                                 chunk["T"][j], point["lr"]))
        else:
            row.update({name: np.nan for name in FIELDS})
        rows.append(row)
    return rows


def _save_chunk(stream, chunk: dict) -> None:
    np.savez_compressed(stream, **chunk)


def _write_atomically(path: Path, write) -> None:
    """Call write(stream) on a temporary file beside `path`, then rename it into place."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _prepare(sweep: Sweep, folder: Path, force: bool) -> None:
    """Create `folder` with sweep.json, or check that an existing one is this sweep (resume)."""
    marker = folder / "sweep.json"
    if marker.exists():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        if recorded.get("fingerprint") == sweep.fingerprint():
            return
        if not force:
            raise FileExistsError(f"{folder} holds a different sweep; pass --force to start it afresh")
        for old in (folder / "chunks").glob("*.npz"):
            old.unlink()
    elif folder.exists() and any(folder.iterdir()) and not force:
        raise FileExistsError(f"{folder} exists and is not a sweep folder; pass --force to use it")
    (folder / "chunks").mkdir(parents=True, exist_ok=True)
    text = json.dumps({"fingerprint": sweep.fingerprint(), "sweep": sweep.config()}, indent=2) + "\n"
    _write_atomically(marker, lambda stream: stream.write(text.encode()))


def run_sweep(sweep: Sweep, folder: Path, *, force: bool = False, sharded: bool = True, progress=None) -> list[dict]:
    """Run (or resume) `sweep` in `folder`; returns the table rows, ordered by grid index (on
    process 0; other processes of a multi-host run compute their shards and return []).

    Writes chunks/<K>x<M>-<index>.npz per finished chunk, then results.csv (one row per point:
    parameters, status, failed_at, the observables of :mod:`nndyn.observables`) and the phase
    diagrams (phase_*.png). `progress(done, total)` is called after each chunk. With
    `sharded`, the grid axis is split over all devices.
    """
    folder = Path(folder)
    writer = jax.process_index() == 0
    if writer:
        _prepare(sweep, folder, force)
    ts = np.linspace(0.0, sweep.t_max, sweep.saves)
    devices = len(jax.devices()) if sharded else 1
    chunk_size = -(-sweep.chunk // devices) * devices
    work = [((K, M), start, indices[start:start + chunk_size])
            for (K, M), indices in sweep.groups().items() for start in range(0, len(indices), chunk_size)]
    paths = [folder / "chunks" / f"{K}x{M}-{start // chunk_size:05d}.npz" for (K, M), start, _ in work]
    finished = np.array([writer and path.exists() for path in paths])
    if jax.process_count() > 1:  # every process must take part in the same chunks' computations
        from jax.experimental import multihost_utils
        finished = np.asarray(multihost_utils.broadcast_one_to_all(finished))
    rows = []
    for done, ((_, _, indices), path, skip) in enumerate(zip(work, paths, finished), start=1):
        if skip:
            with np.load(path) as stored:
                chunk = dict(stored)
        else:
            chunk = _solve_chunk(sweep, indices, ts, sharded)
            if writer:
                _write_atomically(path, functools.partial(_save_chunk, chunk=chunk))
        if writer:
            rows.extend(_rows(sweep, chunk))
        if progress is not None:
            progress(done, len(work))
    rows.sort(key=lambda row: row["index"])
    if writer:
        _write_table(rows, folder / "results.csv")
        from nndyn.phase import plot_phase_diagrams  # Matplotlib: imported only when plotting

        plot_phase_diagrams(rows, PARAMETERS, folder)
    return rows


def _write_table(rows: list[dict], path: Path) -> None:
    columns = ["index", *PARAMETERS, "status", "failed_at", *FIELDS]
    text = io.StringIO()
    table = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    table.writeheader()
    for row in rows:
        table.writerow({key: ("" if row[key] is None else repr(row[key]) if isinstance(row[key], float) else row[key])
                        for key in columns})
    _write_atomically(path, lambda stream: stream.write(text.getvalue().encode()))


def read_sweep(path: Path) -> Sweep:
    """A :class:`Sweep` from a TOML file: top-level name, t_max, saves, activation,
    train_second_layer, chunk; a [defaults] table of PARAMETERS; the grid as a [grid] table of
    lists (Cartesian product) or as [[points]] tables; solver settings in [options]. Raises
    ValueError naming the problem."""
    import tomllib

    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"{path}: cannot read: {error}") from None
    known = {"name", "t_max", "saves", "activation", "train_second_layer", "chunk", "defaults", "grid",
             "points", "options"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {unknown} (known: {sorted(known)})")
    if "t_max" not in raw:
        raise ValueError(f"{path}: missing field 't_max'")
    for table in ("defaults", "grid"):
        unknown = sorted(set(raw.get(table, {})) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"{path}: [{table}] has unknown parameter(s) {unknown}; known: {list(PARAMETERS)}")
    if any(not isinstance(values, list) or not values for values in raw.get("grid", {}).values()):
        raise ValueError(f"{path}: every [grid] entry must be a non-empty list of values")
    unknown_options = sorted(set(raw.get("options", {})) - {f.name for f in dataclasses.fields(ODEOptions)})
    if unknown_options:
        raise ValueError(f"{path}: [options] has unknown field(s) {unknown_options}")
    points = grid(raw.get("defaults"), raw.get("grid") if "points" not in raw else None, raw.get("points"))
    fields = {key: raw[key] for key in ("saves", "activation", "train_second_layer", "chunk") if key in raw}
    try:
        return Sweep(raw.get("name", "sweep"), points, float(raw["t_max"]), options=raw.get("options", {}), **fields)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from None


def sweep(points, t_max: float, folder, **fields) -> list[dict]:
    """`run_sweep(Sweep(name, points, t_max, …), folder)` in one call; `points` from :func:`grid`."""
    options = {key: fields.pop(key) for key in ("force", "sharded", "progress") if key in fields}
    return run_sweep(Sweep(fields.pop("name", "sweep"), tuple(points), t_max, **fields), Path(folder), **options)
