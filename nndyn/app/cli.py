"""The `nndyn` command: `nndyn reproduce FIGURE|all` (FIGURE one of
`nndyn.app.experiments.FIGURES`), `nndyn run CONFIG.toml`, `nndyn analyse CONFIG.toml`,
`nndyn sweep SWEEP.toml` and `nndyn cache info|clear`."""

from __future__ import annotations

import argparse
import errno
import math
import os
import signal
import sys
import threading
from pathlib import Path

from nndyn.app import budget
from nndyn.app.config import ConfigError, read_config, read_sweep, with_scale
from nndyn.app.experiments import DESCRIPTIONS, FIGURES, QUICK_SECONDS, figure, run_panel
from nndyn.app.progress import panels
from nndyn.app.runs import (
    check_parent_writable,
    check_writable,
    default_folder,
    environment,
    on_termination,
    save_experiment,
    staged,
    write_json,
)
from nndyn.core import schema
from nndyn.core.errors import DivergenceError, Status
from nndyn.core.simulate import Simulation

#: How the agreement table shows the verdict's answer (`Agreement.answer`).
ANSWERS = {"yes": "yes", "no": "NO", "inconclusive": "inconclusive"}


def _table(summaries: dict) -> str:
    """The agreement table: per panel the gap between SGD's and the ODE's mean ε_g curves (what a
    figure shows), the smallest alignments, and the verdict (`nndyn.verdict`: the ODE restarted
    at every recorded state, its largest score against its threshold), with a line explaining a
    large mean gap where the verdict agrees."""
    first = max(8, *(len(name) + 2 for name in summaries))
    second = max(28, *(len(panel["label"]) + 2 for summary in summaries.values() for panel in summary["panels"]))
    lines = [f"{'figure':<{first}}{'panel':<{second}}{'mean-curve gap |Δε_g|':>22}{'rel':>8}"
             f"{'min align R/Q/v':>22}{'verdict z':>10}{'z crit':>8}  SGD follows the ODE"]
    notes = []
    for name, summary in summaries.items():
        for panel in summary["panels"]:
            z = max(panel["verdict_scores"].values(), default=float("nan"))
            align = ("/".join(f"{panel[f'min_alignment_{name}']:.3f}" for name in "RQv")
                     if "min_alignment_R" in panel else "-")
            lines.append(
                f"{name:<{first}}{panel['label']:<{second}}{panel['max_abs_eg_gap_mean']:>22.2e}"
                f"{panel['max_relative_eg_gap_mean']:>8.1%}{align:>22}{z:>10.1f}"
                f"{panel['verdict_threshold']:>8.1f}  {ANSWERS[panel['verdict_answer']]}"
            )
            if panel["verdict_answer"] == "inconclusive":
                resolution = panel["verdict_resolution"]  # None where no step could be measured
                hidden = (f"flows up to {resolution:.0%} too fast or too slow" if resolution is not None
                          and math.isfinite(resolution) else "flows of any speed")
                notes.append(f"note: {panel['label']}: inconclusive: SGD's noise would hide {hidden} (more seeds "
                             "or a larger N resolve them)")
            if panel["verdict_answer"] == "yes" and panel["max_relative_eg_gap_mean"] > 0.1:
                notes.append(f"note: {panel['label']}: the mean ε_g curves differ by up to "
                             f"{panel['max_relative_eg_gap_mean']:.0%} while the ODE restarted at every recorded "
                             "state follows SGD: the seeds leave a plateau at different times, and a mean over "
                             "them is not a solution of the ODE")
        if "finite_N" in summary:
            notes += _finite_lines(name, summary["finite_N"])
    return "\n".join(lines + notes)


def _finite_lines(name: str, finite: dict) -> list[str]:
    """The finite-N lines of the table (`nndyn.app.finite.FiniteResult.summary`): the spread of
    ε_g over seeds against the linear noise's, and the escape times against N."""
    spread = "; ".join(f"t in [{at['t'][0]:.0f}, {at['t'][1]:.0f}]: {at['eg_std_sgd']:.2g} / {at['eg_std_sde']:.2g} / "
                       f"{at['eg_std_predicted']:.2g}" for at in finite["spread"].values())
    escapes = finite["escapes"]

    def time(value) -> str:
        return "never" if value is None or not math.isfinite(value) else f"{value:.0f}"

    rows = ", ".join(f"{N}: {time(sgd)} / {time(sde)} / {time(law)} (KS p {p:.2g})" for N, sgd, sde, law, p in zip(
        escapes["N"], escapes["sgd_median"], escapes["sde_median"], escapes["law"], escapes["ks_pvalue_sgd_vs_sde"]))
    ode = "leaves" if escapes["ode_escaped"] else "never leaves"
    return [f"{name}: spread of ε_g over seeds (rms of the standard deviation), SGD / SDE / linear noise: {spread}",
            f"{name}: plateau escape times, median SGD / SDE / c + ln N/(2λ_u) (λ_u = {escapes['escape_rate']:.3g}, "
            f"c = {time(escapes['law_intercept'])} fitted to the SDE) at N = {rows}; the ODE {ode} the plateau"]


def _schema_type(rule: schema.Parameter):
    """An argparse `type` that checks a command-line value by the parameter's rule."""
    def convert(text: str):
        try:
            value = rule.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(str(rule.error(text))) from None
        try:
            return rule.check(value)
        except schema.ParameterError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = rule.kind.__name__
    return convert


def _run_experiments(experiments, folder: Path, force: bool, extra_config: dict, unique: bool) -> int:
    summaries = {}
    with staged(folder, force, unique) as staging:
        stage = staging.stage
        for experiment in experiments:
            print(f"{experiment.name}: {experiment.title}", file=sys.stderr)
            finite = None
            with panels() as line:
                results = [run_panel(panel, line(panel.label)) for panel in experiment.panels]
                if experiment.layout == "fluctuations":
                    from nndyn.app.finite import run_finite

                    finite = run_finite(experiment, results[0], line("finite N"))
            summaries[experiment.name] = save_experiment(stage, experiment, results, finite)
        write_json(stage / "config.json", {
            **environment(), **extra_config,
            "experiments": {name: summary["config"] for name, summary in summaries.items()},
        })
        write_json(stage / "summary.json", {
            name: {key: summary[key] for key in ("title", "panels", "finite_N") if key in summary}
            for name, summary in summaries.items()
        })
    print(_table(summaries))
    for summary in summaries.values():
        for panel, config in zip(summary["panels"], summary["config"]):
            for kind, name in (("sim", "SGD"), ("ode", "ODE")):
                for phase in sorted({missed["phase"] for missed in panel.get(f"unreached_{kind}", [])}):
                    step = config["phases"][phase]
                    seeds = [missed["seed"] for missed in panel[f"unreached_{kind}"] if missed["phase"] == phase]
                    print(
                        f"note: {panel['label']}, phase {phase}: {name} ε_g on teacher {step['teacher']} did not fall "
                        f"below {step['threshold']:g} within t = {step['t']:g} (seeds {seeds}); it switched at "
                        "that maximum",
                        file=sys.stderr,
                    )
    print(f"wrote {staging.folder}")
    return 0


def _sweep(options) -> int:
    if options.distributed:
        import jax

        jax.distributed.initialize(options.coordinator, options.num_processes, options.process_id)
    from nndyn.sweeps import run_sweep

    spec = read_sweep(options.config)
    if not options.yes:
        budget.refuse_if_too_big(budget.sweep_cost(spec), "this sweep")
    folder = options.out or Path("runs") / spec.name
    def resumed(reused: int, points: int) -> None:
        print(f"resuming {folder}: {reused} of {points} points reused from its earlier chunks", file=sys.stderr)

    with panels() as line:
        bar = line(f"{spec.name} ({len(spec.points)} points)")
        bar.stage("the ODE at every point, chunk by chunk", measured=True)
        rows = run_sweep(spec, folder, force=options.force, progress=lambda done, total: bar.fraction(done / total),
                         resumed=resumed)
        bar.finish()
    import jax

    statuses = {status.name: sum(row["status"] == status.name for row in rows) for status in Status}
    devices = jax.devices()
    print(
        f"{len(rows)} points on {len(devices)} {devices[0].platform} device(s): "
        + ", ".join(f"{count} {status}" for status, count in statuses.items())
    )
    print(f"wrote {folder}")
    return 0


def _analyse(options) -> int:
    from nndyn.app.analyse import analyse, refuse, table

    experiment = read_config(options.config)
    (panel,) = experiment.panels
    if panel.protocol is not None:
        raise ValueError(f"{options.config} is a continual config ([teachers], [[phases]]): nndyn analyse takes the "
                         "fixed points of one teacher's flows; analyse a config without those tables")
    refuse(panel)  # before any work or progress line: bad input is one line
    if not options.yes:
        budget.refuse_if_too_big(budget.analysis_cost(panel), "this analysis")
    folder = options.out or default_folder(f"{experiment.name}-analysis")
    if options.out is not None:
        check_writable(folder, options.force)  # before the work, not after it
    else:
        check_parent_writable(folder)
    with panels() as line:
        result = analyse(panel, line(experiment.name))
    with staged(folder, options.force, unique=options.out is None) as staging:
        write_json(staging.stage / "config.json",
                   {**environment(), "config_file": str(options.config), "experiment": panel.config()})
        write_json(staging.stage / "analysis.json", _plain(result))
    print(table(result))
    print(f"wrote {staging.folder}")
    return 0


def _plain(data):
    """`data` with complex numbers as [real, imaginary] pairs (for JSON)."""
    if isinstance(data, dict):
        return {key: _plain(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(value) for value in data]
    return [data.real, data.imag] if isinstance(data, complex) else data


def _cache(options) -> int:
    from nndyn.core import cache

    if options.action == "clear":
        print(f"cleared {cache.clear() / 2**20:.1f} MB from {cache.folder()}")
        return 0
    state = cache.info()
    if state["folder"] is None:
        print("the cache is off (NNDYN_COMPILATION_CACHE)")
        return 0
    print(f"{state['folder']}: {state['bytes'] / 2**20:.1f} MB in {state['entries']} files, capped at "
          f"{state['limit'] / 2**20:.3g} MB (NNDYN_CACHE_MAX_MB; least recently used evicted first)")
    return 0


def _run(options) -> int:
    if options.command == "cache":
        return _cache(options)
    if options.command == "sweep":
        return _sweep(options)
    if options.command == "analyse":
        return _analyse(options)
    if options.command == "reproduce":
        names = FIGURES if options.figure == "all" else (options.figure,)
        scale = {
            key: value
            for key, value in (("N", options.N), ("t_max", options.t_max), ("seeds", options.seeds))
            if value is not None
        }
        experiments = [with_scale(figure(name, options.full), **scale) for name in names]
        name, extra = options.figure, {"full": options.full}
    else:
        experiment = read_config(options.config)
        experiments, name, extra = [experiment], experiment.name, {"config_file": str(options.config)}
    if not options.yes:
        budget.check(experiments)
    seconds = sum(budget.panel_cost(panel).seconds for experiment in experiments for panel in experiment.runs())
    if seconds > 60:
        print(f"estimated: about {seconds / 60:.0f} min of SGD and ODE from the sizes (rough, compilation not "
              "included)", file=sys.stderr)
    folder = options.out or default_folder(name)
    if options.out is not None:
        check_writable(folder, options.force)  # before the work, not after it
    else:
        check_parent_writable(folder)
    return _run_experiments(experiments, folder, options.force, extra, unique=options.out is None)


#: Failures that get lines on stderr and an exit code instead of a traceback (see `_failure`).
EXPECTED = (ValueError, FileExistsError, DivergenceError, OSError, KeyboardInterrupt)


def _failure(error: BaseException) -> tuple[int, list[str]]:
    """The exit code and the lines for an expected failure: 2 for bad input (a config's every
    problem, a bad value, a folder that may not be replaced or written), 1 for a diverging run
    or a failing disk, 130 for an interruption."""
    if isinstance(error, KeyboardInterrupt):
        return 130, ["interrupted (a run leaves nothing behind; a sweep resumes from its finished chunks)"]
    if isinstance(error, ConfigError):
        return 2, [f"error: {problem}" for problem in error.problems]
    unwritable = isinstance(error, OSError) and error.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES)
    bad_input = isinstance(error, (ValueError, FileExistsError, PermissionError)) or unwritable
    if unwritable and isinstance(error, OSError) and not error.filename:  # e.g. ENOSPC from a write: say where
        return 2, [f"error: {error.strerror} while writing the run's folder"]
    return (2 if bad_input else 1), [f"error: {error}"]


def _targets() -> str:
    """The figures `nndyn reproduce` draws, one line each, with the quick variant's measured time
    (--full's estimate is printed when a run starts)."""
    lines = ["figures (quick: measured on 2 cores with warm caches; --full, at the blog's scale, takes about ten "
             "times longer or more and prints its estimate before it starts):"]
    lines += [f"  {name:<10} {DESCRIPTIONS[name]} (quick {QUICK_SECONDS[name]:.0f} s)" for name in FIGURES]
    lines.append("  all        every figure above, into one run folder")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The `nndyn` command's parser (its options come from the parameter schema)."""
    parser = argparse.ArgumentParser(
        prog="nndyn", description="Analytical learning dynamics of teacher-student networks, against SGD."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    reproduce = commands.add_parser(
        "reproduce", help="reproduce the blog's figures (quick by default)", epilog=_targets(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    reproduce.add_argument("figure", choices=[*FIGURES, "all"])
    reproduce.add_argument("--full", action="store_true", help="blog scale: 10 seeds, t = 1000 (slow)")
    simulation = schema.parameters(Simulation)
    reproduce.add_argument("--N", type=_schema_type(simulation["N"]), help="override the input dimension (784)")
    reproduce.add_argument("--t-max", type=_schema_type(simulation["t_max"]), help="override the training time")
    reproduce.add_argument(
        "--seeds", type=_schema_type(simulation["seeds"].replace(minimum=2)), help="override the number of seeds (>= 2)"
    )
    run = commands.add_parser("run", help="simulate and integrate the setting of a TOML config")
    run.add_argument("config", type=Path)
    analyse = commands.add_parser(
        "analyse", help="fixed points of a run config's setting, their stability, η_max and η_opt"
    )
    analyse.add_argument("config", type=Path)
    sweep = commands.add_parser("sweep", help="integrate the ODEs over a grid of settings (resumable, sharded)")
    sweep.add_argument("config", type=Path)
    sweep.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize() first (run on every host); without "
        "the three options below it detects the cluster (SLURM, Open MPI, TPU, ...)",
    )
    sweep.add_argument("--coordinator", help="host:port of process 0 (with --distributed)")
    sweep.add_argument("--num-processes", type=int, help="number of processes (with --distributed)")
    sweep.add_argument("--process-id", type=int, help="this process's index (with --distributed)")
    outputs = {
        reproduce: "the run folder: figures, arrays, config.json, summary.json (default runs/<figure>-<timestamp>)",
        run: "the run folder: figure, arrays, config.json, summary.json (default runs/<name>-<timestamp>)",
        analyse: "the analysis folder: config.json, analysis.json (default runs/<name>-analysis-<timestamp>)",
        sweep: "the sweep folder: chunks, results.csv, phase diagrams (default runs/<name>; resumed when it holds "
               "the same sweep)",
    }
    for command, output in outputs.items():
        command.add_argument("--out", type=Path, help=output)
        command.add_argument("--force", action="store_true", help="replace an existing folder that nndyn wrote")
    for command in (reproduce, run, analyse, sweep):
        command.add_argument(
            "--yes",
            action="store_true",
            help="run even when the estimate says it needs more memory than the machine has or hours",
        )
    cache = commands.add_parser("cache", help="the compiled-program cache: its size and cap (info), or empty it "
                                "(clear)")
    cache.add_argument("action", choices=("info", "clear"))
    commands.add_parser("derive", add_help=False,
                        help="derive kernels: a user's activation, or regenerate the built-ins (nndyn derive --help; "
                        "the same as python -m nndyn.derive)")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks of failures")
    return parser


def _terminate_promptly() -> None:
    """Act on SIGTERM at once, also while the main thread is inside a long XLA call (a Python
    handler runs only between bytecodes, 20–40 s later): the C-level handler writes the signal's
    number to a wake-up pipe, and a thread, free to run while XLA holds no GIL, reads it and
    calls `on_termination` (stages removed, exit 128 + 15)."""
    read, write = os.pipe()
    os.set_blocking(write, False)
    try:
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except ValueError:  # not the main thread (main() called from a thread): the Python handler alone
        os.close(read)
        os.close(write)
        return

    def watch() -> None:
        while True:
            if signal.SIGTERM in os.read(read, 64):
                on_termination(signal.SIGTERM, None)

    threading.Thread(target=watch, name="nndyn-sigterm", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    """The `nndyn` command as a process runs it: `command` with SIGTERM handled (a stopped run
    leaves no staged folder)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] != ["derive"]:
        signal.signal(signal.SIGTERM, on_termination)  # timeout, batch schedulers: no staged folder is left
        _terminate_promptly()
    return command(argv)


def command(argv: list[str]) -> int:
    """Run the `nndyn` command line `argv` in this process and return its exit status (0, or 2
    for bad input with its one line on stderr); argparse's own errors exit (SystemExit, 2).
    Leaves the process's signal handling alone (`main` installs it)."""
    if argv[:1] == ["derive"]:  # the derivation's own command line, SymPy only
        from nndyn.derive.__main__ import main as derive  # pyright: ignore[reportMissingImports]

        return derive(argv[1:], prog="nndyn derive")
    options = build_parser().parse_args(argv)
    try:
        return _run(options)
    except EXPECTED as error:
        if options.debug:
            raise
        code, lines = _failure(error)
        for line in lines:
            print(f"nndyn: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
