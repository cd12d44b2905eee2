"""Phase diagrams of a sweep's table: observables against the parameters that vary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

#: The observables drawn, with their axis labels and whether on a log scale.
DRAWN = {"final_eg": ("final ε_g", True), "plateau_length": ("plateau length", False)}


def varying(rows: list[dict], parameters) -> list[str]:
    """The `parameters` (seed excluded) that take more than one value in `rows`."""
    return [name for name in parameters if name != "seed" and len({row[name] for row in rows}) > 1]


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
    """phase_<observable>.png for each of DRAWN, averaged over seeds (log scales clip at 1e-16):
    a heat map over the first two varying parameters, or a curve over the only one; nothing when none varies.
    Diverged or failed points are blank (NaN)."""
    axes_names = varying(rows, parameters)[:2]
    paths = []
    for observable, (label, log) in DRAWN.items():
        if not axes_names:
            break
        values = _mean_over(rows, axes_names, observable)
        fig = Figure(figsize=(5, 4))
        ax = fig.subplots()
        if len(axes_names) == 1:
            xs = sorted(key[0] for key in values)
            ax.plot(list(map(_label, xs)) if isinstance(xs[0], str) else xs, [values[(x,)] for x in xs], "o-")
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
        ax.set_title(f"{label} (mean over seeds)")
        fig.tight_layout()
        path = Path(folder) / f"phase_{observable}.png"
        fig.savefig(path, dpi=120)
        paths.append(path)
    return paths
