"""Trajectories as tidy tables: an `xarray.Dataset` with named dimensions, or a long
`pandas.DataFrame` (both libraries optional, imported on use).

A trajectory declares the named dimensions of each of its fields (after an optional leading
"seed"); :class:`~nndyn.Trajectory` calls :func:`to_xarray` and :func:`to_dataframe` with its
`dims` (a plain run's or a protocol's).
"""

from __future__ import annotations

import numpy as np


def _named(fields: dict[str, np.ndarray], dims: dict[str, tuple[str, ...]]):
    """Every field but t as (dims, values), with "seed" first when the fields have a batch axis."""
    batches = {name: np.ndim(value) - len(dims[name]) for name, value in fields.items() if name != "t"}
    if set(batches.values()) - {0, 1} or len(set(batches.values())) > 1:
        raise ValueError("tidy data takes trajectories with at most one batch dimension (seeds); got fields of "
                         f"shapes {({name: np.shape(fields[name]) for name in batches})}")
    lead = ("seed",) * max(batches.values(), default=0)
    return lead, {name: (lead + dims[name], value) for name, value in fields.items() if name != "t"}


def to_xarray(fields: dict[str, np.ndarray], dims: dict[str, tuple[str, ...]]):
    """An `xarray.Dataset`: one variable per field (t is a coordinate), integer coordinates for
    every other dimension."""
    import xarray

    _, named = _named(fields, dims)
    dataset = xarray.Dataset(named, coords={"t": fields["t"]})
    return dataset.assign_coords({dim: np.arange(size) for dim, size in dataset.sizes.items() if dim != "t"})


def to_dataframe(fields: dict[str, np.ndarray], dims: dict[str, tuple[str, ...]]):
    """A long `pandas.DataFrame`, one row per value: `seed` (when there is a seed axis), `t`
    (NaN for a field constant in time), `quantity` (the field's name), `level` (when a field has
    a "level" dimension: its index, <NA> for the fields without), `i`, `j` (its other indices in
    the order of `dims`, <NA> where it has fewer) and `value`."""
    import pandas

    lead, named = _named(fields, dims)
    leveled = any("level" in names for names, _ in named.values())
    t = fields["t"]
    frames = []
    for name, (names, values) in named.items():
        grids = np.meshgrid(*(np.arange(size) for size in values.shape), indexing="ij")
        column = dict(zip(names, (grid.ravel() for grid in grids)))
        indices = [column[dim] for dim in names if dim not in ("seed", "t", "level")]
        if len(indices) > 2:
            raise ValueError(f"{name} has {len(indices)} indices besides seed, t and level; a long table holds two")
        frame: dict[str, object] = {"seed": column["seed"]} if lead else {}
        frame.update(t=t[column["t"]] if "t" in column else np.full(values.size, np.nan), quantity=name)
        if leveled:
            frame["level"] = pandas.array(column["level"] if "level" in column else [None] * values.size,
                                          dtype="Int64")
        for position, label in enumerate("ij"):
            frame[label] = pandas.array(indices[position] if position < len(indices) else [None] * values.size,
                                        dtype="Int64")
        frame["value"] = values.ravel()
        frames.append(pandas.DataFrame(frame))
    return pandas.concat(frames, ignore_index=True)
