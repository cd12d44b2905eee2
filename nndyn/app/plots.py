"""Figures of experiments: SGD simulation (solid) against the ODE (dashed), one column per panel.

Each figure reads without the docs: the experiment and N in the title, each panel's setting
(activations, K, M, η, σ, B and what else differs from the defaults) in its title, every row's
quantity on its y-axis, one legend for the figure (line styles, shading), and every entry of an
order parameter in its own colour, the same for SGD and the ODE. Figures use constrained layout
and wrap long titles, so nothing is clipped (tests/test_figures.py checks every figure's text
lies inside its canvas).
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

SIM, ODE, SDE, BAND = "tab:blue", "tab:red", "tab:green", "tab:orange"
ROW_LABELS = {
    "eg": "ε_g (mean over seeds)", "eg_seeds": "ε_g of each seed", "R": "R_in (seed 0)",
    "Q": "Q_ik, i ≤ k (seed 0)", "v": "v_i (seed 0)",
    "alignment": "cos(SGD, ODE) of R, Q, v\n(mean over seeds)", "feedback": "cos(v, b) (mean over seeds)",
    "eg_teacher": "ε_g on each teacher\n(mean over seeds)",
}
#: Characters per line of a panel's title (at its font size, in a 3.6-inch column).
TITLE_WIDTH = 42


def describe(setting) -> str:
    """The setting of a panel in one line: the activations, K, M, η, σ, B, and what else differs
    from the defaults (η_v, a trained second layer, κ, feedback alignment, decays, a spectrum)."""
    return ", ".join(_parts(setting))


def _parts(setting) -> list[str]:
    """`describe`'s parts, each kept on one line of a wrapped title."""
    teacher = setting.teacher_activation
    words = [f"{_name(setting.activation)} student on {_name(teacher)} teacher", f"K = {setting.K}, M = {setting.M}",
             f"η = {setting.lr:g}", f"σ = {setting.sigma:g}", f"B = {setting.batch}"]
    if setting.train_second_layer:
        words.append("v trained" + (f" (η_v = {setting.lr_v:g})" if setting.lr_v != setting.lr else ""))
    if setting.output_scaling != "1":
        words.append(f"κ = {setting.output_scaling}")
    if setting.feedback == "alignment":
        words.append("feedback alignment")
    if setting.weight_decay or setting.weight_decay_v:
        words.append(f"λ = {setting.weight_decay:g}, λ_v = {setting.weight_decay_v:g}")
    if setting.input_spectrum is not None:
        levels = len(setting.input_spectrum)
        words.append(f"Σ in {levels} level{'s' if levels > 1 else ''}")
    return words


def _name(activation: str) -> str:
    """An activation as shown: a built-in's name, a user module's file stem."""
    return activation.rsplit("/", 1)[-1].removesuffix(".py")


def _title(result) -> str:
    """A panel's title: its label (unless the setting says all it says), then its setting, wrapped
    to the column between its parts."""
    described = describe(result.panel.setting)
    said = all(part in described for part in result.panel.label.split(", "))
    return _wrapped([] if said else textwrap.wrap(result.panel.label, TITLE_WIDTH), _parts(result.panel.setting))


def _wrapped(lines: list[str], parts: list[str]) -> str:
    """`lines`, then `parts` joined by commas and wrapped to TITLE_WIDTH between parts."""
    line = ""
    for part in parts:
        if line and len(line) + 2 + len(part) > TITLE_WIDTH:
            lines.append(line + ",")
            line = part
        else:
            line = f"{line}, {part}" if line else part
    return "\n".join(lines + [line])


def _log_axis(ax, axis: str = "y") -> None:
    """A log axis labelled alike in every panel: 1, 2 and 5 × 10^k (fewer where it spans many
    decades), no labels on the minor ticks."""
    getattr(ax, f"set_{axis}scale")("log")
    scale = getattr(ax, f"{axis}axis")
    scale.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=7))
    scale.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    scale.set_minor_formatter(NullFormatter())


def _entries(ax, t, sim, ode, keep=None):
    """Every entry of one seed's order parameter (n, ...) in its own colour: SGD solid, the ODE
    dashed; `keep`, a mask of the flattened entries to draw."""
    sim, ode = sim.reshape(len(t), -1), ode.reshape(len(t), -1)
    chosen = np.arange(sim.shape[1]) if keep is None else np.flatnonzero(keep)
    colours = colormaps["tab10" if len(chosen) <= 10 else "tab20"](np.arange(len(chosen)) % 20)
    for colour, entry in zip(colours, chosen):
        ax.plot(t, sim[:, entry], color=colour, lw=1.0, alpha=0.85)
        ax.plot(t, ode[:, entry], color=colour, lw=1.2, ls="--")


def power_law_window(setting, t) -> tuple[float, float]:
    """Where to fit ε_g's power law: for structured inputs, between ten times the fastest level's
    time 1/(2ηρ_max) and a tenth of the slowest's 1/(2ηρ_min) (docs/structured.md), when that
    holds a factor 3 of the recorded times; else the last decade of t."""
    if setting.input_spectrum is not None:
        rho = np.array([eigenvalue for eigenvalue, _ in setting.input_spectrum])
        low, high = max(10 / (2 * setting.lr * rho.max()), t[1]), min(1 / (20 * setting.lr * rho.min()), t[-1])
        if high >= 3 * low:
            return low, high
    return t[-1] / 10, t[-1]


def fitted_slope(t, eg, window) -> float:
    """The slope of log ε_g against log t over the times in `window` (a power law's exponent)."""
    inside = (t >= window[0]) & (t <= window[1]) & (eg > 0)
    return float(np.polyfit(np.log(t[inside]), np.log(eg[inside]), 1)[0])


def _band(ax, spread, **style) -> None:
    """The linear-noise band of ε_g, the ODE's ± 2σ (`Fluctuations` `spread`), clipped above 0
    for a log axis (at 1e-3 of the ODE's ε_g)."""
    t, eg, std = np.asarray(spread.t), np.asarray(spread.ode.eg), np.sqrt(spread.eg_var)
    ax.fill_between(t, np.maximum(eg - 2 * std, 1e-3 * eg), eg + 2 * std, **style)


def _row(ax, row, result, log_time=False) -> None:
    """Draw one row's quantity of one panel."""
    t = np.asarray(result.sim.t)
    sim, ode = result.sim, result.ode
    if row == "eg":
        eg = np.asarray(sim.eg)
        ax.fill_between(t, eg.min(axis=0), eg.max(axis=0), color=SIM, alpha=0.25, lw=0)
        if result.spread is not None:  # the linear noise about the ODE from the seeds' mean start
            _band(ax, result.spread, facecolor="none", edgecolor=BAND, hatch="////", lw=0.8)
        mean_ode = np.asarray(ode.eg).mean(axis=0)
        ax.plot(t, eg.mean(axis=0), color=SIM)
        ax.plot(t, mean_ode, color=ODE, ls="--")
        if log_time:  # the power law's exponents, fitted over the shaded window
            window = power_law_window(result.panel.setting, t)
            ax.axvspan(*window, color="0.9", zorder=0)
            ax.text(0.03, 0.04, f"slopes: SGD {fitted_slope(t, eg.mean(0), window):.2f}, "
                    f"ODE {fitted_slope(t, mean_ode, window):.2f}", transform=ax.transAxes, fontsize=7)
        _log_axis(ax)
    elif row == "eg_seeds":
        for seed, (s, o) in enumerate(zip(np.asarray(sim.eg), np.asarray(ode.eg))):
            ax.plot(t, s, color=f"C{seed}", lw=1.0)
            ax.plot(t, o, color=f"C{seed}", lw=1.2, ls="--")
        _log_axis(ax)
    elif row == "Q":
        K = np.shape(sim.Q)[-1]
        _entries(ax, t, np.asarray(sim.Q)[0], np.asarray(ode.Q)[0], keep=np.triu(np.ones((K, K), bool)).ravel())
    elif row in ("R", "v"):
        _entries(ax, t, np.asarray(getattr(sim, row))[0], np.asarray(getattr(ode, row))[0])
    elif row == "alignment":
        for name, style in (("R", "-"), ("Q", "--"), ("v", ":")):
            ax.plot(t, np.asarray(getattr(result.comparison, f"{name}_alignment")).mean(axis=0),
                    color="k", ls=style)
        ax.set_ylim(min(0.9, ax.get_ylim()[0]), 1.005)
    elif row == "eg_teacher":
        for teacher in range(sim.eg_teacher.shape[-1]):
            ax.plot(t, np.asarray(sim.eg_teacher)[..., teacher].mean(axis=0), color=f"C{teacher}")
            ax.plot(t, np.asarray(ode.eg_teacher)[..., teacher].mean(axis=0), color=f"C{teacher}", ls="--")
        for start in np.asarray(ode.starts).mean(axis=0)[1:-1]:
            ax.axvline(start, color="0.6", lw=0.8)
        _log_axis(ax)
    elif row == "feedback":
        if sim.b is None:
            ax.text(0.5, 0.5, "no feedback vector b\n(backpropagation)", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8, color="0.4")
            ax.set_yticks([])
            return
        for trajectory, color, style in ((sim, SIM, "-"), (ode, ODE, "--")):
            v, b = np.asarray(trajectory.v), np.asarray(trajectory.b)[:, None, :]
            cosine = np.sum(v * b, axis=-1) / (np.linalg.norm(v, axis=-1) * np.linalg.norm(b, axis=-1))
            ax.plot(t, cosine.mean(axis=0), color=color, ls=style)
    else:
        raise ValueError(f"unknown row {row!r}")


def _legend(fig, rows, results, log_time: bool) -> None:
    """The figure's one legend, below the panels: what each line style, colour and shading is."""
    handles: list[Artist] = [Line2D([], [], color="0.2", label="SGD simulation (solid)"),
               Line2D([], [], color="0.2", ls="--", label="ODE from each seed's start (dashed)")]
    if "eg" in rows or "feedback" in rows:
        handles += [Line2D([], [], color=SIM, label="SGD, mean over seeds"),
                    Line2D([], [], color=ODE, ls="--", label="ODE, mean over seeds")]
    if "eg" in rows:
        handles.append(Patch(color=SIM, alpha=0.25, label="ε_g of SGD: range over seeds"))
        if any(result.spread is not None for result in results):
            handles.append(Patch(facecolor="none", edgecolor=BAND, hatch="////",
                                 label="linear noise: ODE from the seeds' mean start ± 2σ"))
        if log_time:
            handles.append(Patch(color="0.9", label="window of the fitted slopes"))
    if any(row in rows for row in ("R", "Q", "v")):
        handles.append(Line2D([], [], color="tab:green", label="R, Q, v: one colour per entry"))
    if "eg_seeds" in rows:
        handles.append(Line2D([], [], color="C0", label="ε_g of each seed: one colour per seed"))
    if "alignment" in rows:
        handles += [Line2D([], [], color="k", ls=style, label=f"cos(SGD, ODE) of {name}")
                    for name, style in (("R", "-"), ("Q", "--"), ("v", ":"))]
    if "eg_teacher" in rows:
        count = np.shape(results[0].sim.eg_teacher)[-1]
        handles += [Line2D([], [], color=f"C{teacher}", label=f"teacher {teacher}") for teacher in range(count)]
        handles.append(Line2D([], [], color="0.6", lw=0.8, label="phase switches (ODE)"))
    columns = max(1, min(4, int(fig.get_figwidth() / 2.7)))  # a column of labels per 2.7 inches
    fig.legend(handles=handles, loc="outside lower center", ncols=columns, fontsize=7.5, frameon=False)


def similarity_figure(experiment, results) -> Figure:
    """Continual panels that differ in the feature similarity γ_f, in one or more set-ups (the
    label before ", γ_f"): ε_g on both teachers over time in the first set-up (one colour per
    γ_f, ODE), and forgetting of task 0 and transfer to task 1 against γ_f for every set-up (ODE
    line, SGD mean ± standard error over seeds, the verdict's answer in the legend)."""
    fig = Figure(figsize=(14, 5), layout="constrained")
    axes = fig.subplots(1, 3)
    setups: dict[str, list] = {}
    for result in results:
        setups.setdefault(result.panel.label.rsplit(", γ_f", 1)[0], []).append(result)
    first, first_results = next(iter(setups.items()))
    colours = colormaps["viridis"](np.linspace(0, 0.9, len(first_results)))
    handles = []
    for colour, result in zip(colours, first_results):
        similarity = result.panel.protocol.teachers.feature_similarity
        t = np.asarray(result.sim.t)
        for teacher, style in ((0, "-"), (1, ":")):
            axes[0].plot(t, np.asarray(result.ode.eg_teacher)[..., teacher].mean(axis=0), color=colour, ls=style)
        handles.append(Line2D([], [], color=colour, label=f"γ_f = {similarity:g}"))
    _log_axis(axes[0])
    axes[0].set_xlabel("t = steps / N")
    axes[0].set_ylabel("ε_g of the ODE (mean over seeds)")
    axes[0].set_title("\n".join(textwrap.wrap(f"{first}: task 0 solid, task 1 dotted", 50)), fontsize=9)
    handles += [Line2D([], [], color="0.3", label="task 0 (ε_g on teacher 0)"),
                Line2D([], [], color="0.3", ls=":", label="task 1 (ε_g on teacher 1)")]
    for index, (setup, members) in enumerate(setups.items()):
        similarities = [result.panel.protocol.teachers.feature_similarity for result in members]
        metrics = {kind: [getattr(result, kind).metrics(result.panel.protocol) for result in members]
                   for kind in ("sim", "ode")}
        agree = sum(result.agreement.answer == "yes" for result in members)
        for ax, (name, task) in zip(axes[1:], (("forgetting", 0), ("transfer", 1))):
            ode = [np.nanmean(values[name][..., task]) for values in metrics["ode"]]
            sim = [values[name][..., task] for values in metrics["sim"]]
            ax.plot(similarities, ode, color=f"C{index}")
            ax.errorbar(similarities, [np.nanmean(s) for s in sim],
                        yerr=[np.nanstd(s, ddof=1) / np.sqrt(len(s)) for s in sim], fmt="o", color=f"C{index}")
        handles += [Line2D([], [], color=f"C{index}", label=f"{setup}: ODE"),
                    Line2D([], [], color=f"C{index}", marker="o", ls="",
                           label=f"{setup}: SGD mean ± SE (the verdict: follows the ODE in {agree} of {len(members)})")]
    for ax, label in zip(axes[1:], ("forgetting of task 0", "forward transfer to task 1")):
        ax.set_xlabel("feature similarity γ_f")
        ax.set_ylabel(label)
        ax.set_title(label, fontsize=9)
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=7.5, frameon=False)
    N, seeds = results[0].panel.simulation.N, results[0].panel.simulation.seeds
    fig.suptitle(f"{experiment.name}: {experiment.title}, N = {N}, {seeds} seeds", fontsize=10)
    return fig


def fluctuations_figure(experiment, results, finite) -> Figure:
    """The "fluctuations" layout: (a) the panel's seeds' ε_g (SGD and the SDE) beside the ODE from
    their mean start and its linear-noise ±2σ band (the panel's `spread`); (b) the spread of ε_g
    over seeds, SGD's and the SDE's against the prediction; (c) plateau escape times against N,
    medians and quartiles of SGD and the SDE beside the ln N law (`finite`, a
    `nndyn.app.finite.FiniteResult`)."""
    from nndyn.app.finite import quartiles_of

    (result,) = results
    spread, escapes = result.spread, finite.escapes
    fig = Figure(figsize=(14, 5.2), layout="constrained")
    axes = fig.subplots(1, 3)
    t = np.asarray(spread.t)
    ode, std = np.asarray(spread.ode.eg), np.sqrt(spread.eg_var)
    _band(axes[0], spread, color=BAND, alpha=0.35, lw=0)
    for trajectory, colour in ((result.sim, SIM), (finite.paths, SDE)):
        axes[0].plot(t, np.asarray(trajectory.eg).T, color=colour, lw=0.7, alpha=0.6)
    axes[0].plot(t, ode, color="k", ls="--", lw=1.2)
    _log_axis(axes[0])
    axes[0].set_ylabel("ε_g of each seed")
    axes[1].plot(t, std, color=BAND, lw=2)
    for trajectory, colour in ((result.sim, SIM), (finite.paths, SDE)):
        axes[1].plot(t, np.std(np.asarray(trajectory.eg), axis=0, ddof=1), color=colour)
    _log_axis(axes[1])
    axes[1].set_ylabel("standard deviation of ε_g over seeds")
    for ax, letter in zip(axes[:2], "ab"):
        ax.set_xlabel("t = steps / N")
        ax.set_title(f"({letter}) {_title(result)}", fontsize=8)
    sizes = np.asarray(escapes.escapes.sizes, dtype=float)
    for times, colour, shift in ((escapes.sgd, SIM, 0.97), (escapes.sde, SDE, 1.03)):
        low, median, high = quartiles_of(times)
        escaped = np.isfinite(median)
        low, median, high = low[escaped], median[escaped], np.minimum(high[escaped], escapes.escapes.t_max)
        axes[2].errorbar((sizes * shift)[escaped], median, yerr=[median - low, high - median], fmt="o", color=colour,
                         capsize=3)
        axes[2].plot((sizes * shift)[~escaped], np.full(np.sum(~escaped), escapes.escapes.t_max), ls="", marker="^",
                     color=colour, markerfacecolor="white")
    axes[2].plot(sizes, escapes.law(sizes), color="k", lw=1)
    axes[2].set_xscale("log")
    axes[2].set_xticks(sizes, [f"{size:g}" for size in sizes])
    axes[2].minorticks_off()
    axes[2].set_xlabel("input dimension N (log)")
    axes[2].set_ylabel("escape time (ε_g below half the plateau's)")
    setting = escapes.escapes.setting
    axes[2].set_title(_wrapped(["(c) plateau escapes"], [*_parts(setting), "students orthogonal to the teachers",
                                                          f"Q = {escapes.escapes.init_scale ** 2:g} I, R = 0"]),
                      fontsize=8)
    axes[2].text(0.03, 0.96, "the ODE " + ("leaves the plateau" if escapes.ode_escaped else "never leaves the plateau"),
                 transform=axes[2].transAxes, va="top", fontsize=7)
    handles: list[Artist] = [
        Line2D([], [], color=SIM, label=f"SGD seeds ({result.panel.simulation.seeds} in a, b; "
                                        f"{escapes.escapes.paths} per N in c)"),
        Line2D([], [], color=SDE, label="SDE of SGD from each seed's start (sample_paths)"),
        Line2D([], [], color="k", ls="--", label="ODE from the seeds' mean start"),
        Patch(color=BAND, alpha=0.35, label="linear noise: ODE ± 2σ (a), σ (b)"),
        Line2D([], [], color="0.3", marker="o", ls="", label="escape time: median, bars the quartiles (to t_max)"),
        Line2D([], [], color="0.3", marker="^", ls="", markerfacecolor="white",
               label=f"median beyond t_max = {escapes.escapes.t_max:g}: half never escaped"),
        Line2D([], [], color="k", label=f"law c + ln N/(2λ_u), λ_u = {escapes.plateau.escape_rate:.3g} (c fitted)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=7.5, frameon=False)
    fig.suptitle(f"{experiment.name}: {experiment.title}\n(a, b) N = {result.panel.simulation.N}, "
                 f"{result.panel.simulation.seeds} seeds; (c) N = {', '.join(f'{size:g}' for size in sizes)}, "
                 f"{escapes.escapes.paths} seeds each", fontsize=10)
    return fig


def figure(experiment, results, finite=None) -> Figure:
    """The figure of `results` (one `PanelResult` per panel): rows × panels, the continual
    similarity layout, or the "fluctuations" layout with its `finite` (`fluctuations_figure`)."""
    if experiment.layout == "similarity":
        return similarity_figure(experiment, results)
    if experiment.layout == "fluctuations":
        return fluctuations_figure(experiment, results, finite)
    rows, columns = experiment.rows, len(results)
    fig = Figure(figsize=(max(6.0, 3.6 * columns), 2.3 * len(rows) + 1.6), layout="constrained")
    axes = fig.subplots(len(rows), columns, sharex=True, squeeze=False)
    for column, result in enumerate(results):
        axes[0, column].set_title(_title(result), fontsize=8)
        for r, row in enumerate(rows):
            _row(axes[r, column], row, result, experiment.log_time)
            axes[r, column].set_ylabel(ROW_LABELS[row], fontsize=8)
        if experiment.log_time:
            _log_axis(axes[-1, column], "x")  # shared by the column's rows
        axes[-1, column].set_xlabel("t = steps / N" + (" (log)" if experiment.log_time else ""))
    _legend(fig, rows, results, experiment.log_time)
    sizes = sorted({result.panel.simulation.N for result in results})
    seeds = sorted({result.panel.simulation.seeds for result in results})
    fig.suptitle(f"{experiment.name}: {experiment.title}\nN = {', '.join(map(str, sizes))}, "
                 f"{', '.join(map(str, seeds))} seeds", fontsize=10)
    return fig


def plot_experiment(experiment, results, path, finite=None) -> None:
    """Write the figure of `results` (`figure`) to `path`."""
    figure(experiment, results, finite).savefig(path, dpi=110)
