"""Phase diagrams of a sweep's table: observables against the parameters that vary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

#: The observables drawn, with their axis labels and whether on a log scale.
DRAWN = {"final_eg": ("final ε_g", True), "plateau_length": ("plateau length", False)}


def varying(rows: list[dict], parameters) -> list[str]:
    """The `parameters` (seed excluded) that take more than one value in `rows`, less those that
    equal an earlier one in every row (η_v following η): the axes of the sweep."""
    chosen: list[str] = []
    for name in parameters:
        if name == "seed" or len({row[name] for row in rows}) < 2:
            continue
        if not any(all(row[name] == row[other] for row in rows) for other in chosen):
            chosen.append(name)
    return chosen


def _censored(rows, keys) -> dict:
    """{key values: whether a seed with those values sat on a plateau it had not left by the
    run's end (its plateau length is then the time it had spent there: a lower bound)}."""
    groups: dict[tuple, bool] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        started = row.get("plateau_start") is not None and np.isfinite(float(row["plateau_start"]))
        groups[key] = groups.get(key, False) or (started and not row.get("escaped"))
    return groups


def _mean_over(rows, keys, observable):
    """{key values: mean of the observable over the rows (seeds) with those values}."""
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(float(row[observable]))
    return {key: float(np.nanmean(values)) if np.any(np.isfinite(values)) else np.nan
            for key, values in groups.items()}


def _label(value) -> str:
    return value if isinstance(value, str) else f"{value:g}"


def plot_phase_diagrams(rows: list[dict], parameters, folder: Path) -> list[Path]:
    """Write phase_<observable>.png of each of `phase_diagrams` into `folder`; their paths."""
    paths = []
    for observable, fig in phase_diagrams(rows, parameters).items():
        path = Path(folder) / f"phase_{observable}.png"
        fig.savefig(path, dpi=120)
        paths.append(path)
    return paths


def phase_diagrams(rows: list[dict], parameters) -> dict[str, Figure]:
    """A figure for each of DRAWN, averaged over seeds (log scales clip at 1e-16):
    a heat map over the first two varying parameters (`varying`), or a curve over the only one;
    nothing when none varies. Diverged or failed points are blank (NaN). A plateau length where a
    seed had not escaped by the run's end is a lower bound (censored): open markers on a curve,
    hatched cells on a map, and said so in the figure."""
    axes_names = varying(rows, parameters)[:2]
    figures = {}
    for observable, (label, log) in DRAWN.items():
        if not axes_names:
            break
        values = _mean_over(rows, axes_names, observable)
        censored = _censored(rows, axes_names) if observable == "plateau_length" else {}
        fig = Figure(figsize=(5.5, 4.5), layout="constrained")
        ax = fig.subplots()
        handles = []
        if len(axes_names) == 1:
            xs = sorted(key[0] for key in values)
            positions = list(map(_label, xs)) if isinstance(xs[0], str) else xs
            ax.plot(positions, [values[(x,)] for x in xs], "o-", color="C0")
            bounds = [(position, values[(x,)]) for position, x in zip(positions, xs) if censored.get((x,))]
            if bounds:
                ax.plot(*zip(*bounds), "o", color="C0", markerfacecolor="white", zorder=3)
                handles.append(Line2D([], [], marker="o", color="C0", markerfacecolor="white", ls="",
                                      label="a lower bound: a seed had not left\nits plateau by the run's end"))
            ax.set_xlabel(axes_names[0])
            ax.set_ylabel(label)
            if log:
                ax.set_yscale("log")
        else:
            xs = sorted({key[0] for key in values})
            ys = sorted({key[1] for key in values})
            image = np.array([[values.get((x, y), np.nan) for x in xs] for y in ys])
            shown = np.log10(np.clip(image, 1e-16, None)) if log else image
            mesh = ax.pcolormesh(np.arange(len(xs) + 1), np.arange(len(ys) + 1), shown, shading="flat")
            ax.set_xticks(np.arange(len(xs)) + 0.5, list(map(_label, xs)), rotation=90)
            ax.set_yticks(np.arange(len(ys)) + 0.5, list(map(_label, ys)))
            ax.set_xlabel(axes_names[0])
            ax.set_ylabel(axes_names[1])
            fig.colorbar(mesh, ax=ax, label=f"log10 {label}" if log else label)
            for i, x in enumerate(xs):
                for j, y in enumerate(ys):
                    if censored.get((x, y)):
                        ax.add_patch(Rectangle((i, j), 1, 1, fill=False, hatch="///", edgecolor="white", lw=0))
            if any(censored.values()):
                handles.append(Patch(facecolor="0.5", hatch="///", edgecolor="white",
                                     label="a lower bound: a seed had not left\nits plateau by the run's end"))
        if handles:
            ax.legend(handles=handles, fontsize=7, loc="best")
        ax.set_title(f"{label} (mean over seeds)")
        figures[observable] = fig
    return figures
