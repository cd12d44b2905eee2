"""A sweep's folder: sweep.json (what the sweep is, to resume only the same sweep), one file per
finished chunk (chunks/<K>x<M>[-<model choices' hash>]-<index>.npz, written atomically), and
results.csv.

A chunk holds `index` (P,) the grid indices of its points, `t` (n,) the saved times, `T`
(P, M, M), `v_star` (P, M), `b` (P, K) for feedback alignment, `eg` (P, n), `Q` (P, n, K, K),
`R` (P, n, K, M), `v` (P, n, K), `status` (P,) a `Status` value, and `failed_at` (P,) the time
a failed solve stopped (NaN when it did not fail).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np

from nndyn.core.errors import Status
from nndyn.files import write_atomically
from nndyn.sweeps.grid import DEFAULTS, GROUPING, Sweep
from nndyn.sweeps.observables import FIELDS, summarise

#: The columns of results.csv.
COLUMNS = ("index", *DEFAULTS, "status", "failed_at", *FIELDS)


def prepare(sweep: Sweep, folder: Path, force: bool) -> None:
    """Create `folder` with sweep.json, or check that an existing one is this sweep (resume).
    With `force`, a folder holding another sweep is started afresh: its chunks, table and plots
    are removed before the new sweep.json is written."""
    marker = folder / "sweep.json"
    if marker.exists():
        try:
            recorded = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = None
        if isinstance(recorded, dict) and recorded.get("fingerprint") == sweep.fingerprint():
            return
        if not force:
            found = "a different sweep" if isinstance(recorded, dict) else "a damaged sweep.json (not readable JSON)"
            raise FileExistsError(f"{folder} holds {found}; pass --force to start it afresh")
        for old in [*(folder / "chunks").glob("*.npz"), folder / "results.csv", *folder.glob("phase_*.png")]:
            old.unlink(missing_ok=True)
    elif folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(
            f"{folder} exists and is not a sweep folder (no sweep.json); --force replaces only "
            "sweeps: remove it yourself or choose another --out"
        )
    (folder / "chunks").mkdir(parents=True, exist_ok=True)
    write_atomically(marker, json.dumps({"fingerprint": sweep.fingerprint(), "sweep": sweep.config()}, indent=2) + "\n")


def chunk_path(folder: Path, group: tuple, index: int) -> Path:
    """The file of chunk `index` of the points of `group` (K, M, and the model choices of
    Sweep.groups: a hash of them in the name when they are not the defaults)."""
    K, M, *choices = group
    extra = (
        ""
        if all(value == DEFAULTS[name] for name, value in zip(GROUPING[2:], choices))
        else ("-" + hashlib.sha256(repr(choices).encode()).hexdigest()[:8])
    )
    return folder / "chunks" / f"{K}x{M}{extra}-{index:05d}.npz"


def save_chunk(path: Path, chunk: dict) -> None:
    write_atomically(path, lambda stream: np.savez_compressed(stream, **chunk))


def load_chunk(path: Path) -> dict | None:
    """A finished chunk, or None when there is none or its file cannot be read (it is then
    computed again)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as stored:
            return dict(stored)
    except Exception:  # truncated or damaged (BadZipFile, zlib, EOF, ...): computed again
        return None


def rows(sweep: Sweep, chunk: dict) -> list[dict]:
    """One table row per point of a finished chunk: parameters, status, observables."""
    table = []
    for j, index in enumerate(chunk["index"]):
        point = sweep.points[int(index)]
        status = Status(int(chunk["status"][j]))
        lr_v = point["lr"] if point["lr_v"] is None else point["lr_v"]
        teacher = point["teacher_activation"] or sweep.activation
        row = {
            "index": int(index),
            **point,
            "lr_v": lr_v,
            "teacher_activation": teacher,
            "status": status.name,
            "failed_at": float(chunk["failed_at"][j]),
        }
        if status == Status.ok:
            row.update(
                summarise(chunk["t"], chunk["eg"][j], chunk["Q"][j, -1], chunk["R"][j, -1], chunk["T"][j], point["lr"])
            )
        else:
            row.update({name: np.nan for name in FIELDS})
        table.append(row)
    return table


def write_table(table: list[dict], path: Path) -> None:
    """results.csv: one row per point, floats written exactly (repr)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow(
            {
                key: ("" if row[key] is None else repr(row[key]) if isinstance(row[key], float) else row[key])
                for key in COLUMNS
            }
        )
    write_atomically(path, text.getvalue())
