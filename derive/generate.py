"""Generating the committed modules (the built-in activations' kernels and the flow table) and
users' kernel modules, writing them, and checking a folder against the generator."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shlex
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from nndyn.files import write_atomically

from .activations import BUILTINS, Activation, get
from .hashing import flow_hash, kernel_hash, symmetric_hash
from .lower import flow_spec, kernel_spec, pair_spec, symmetric_spec
from .mixture import Mixture, known
from .paths import GENERATED_DIR
from .render import (
    COMMAND,
    differences,
    render_flows,
    render_module,
    render_package_init,
    render_symmetric,
    unsealed,
)

#: The files of generated/ besides the built-in kernel and pair modules.
SHARED_FILES = ("__init__.py", "flows.py", "symmetric.py")


def pair_name(student: str, teacher: str) -> str:
    """The module name of the mixed integrals of `student` and `teacher` (activation names)."""
    return f"{student}__{teacher}"


def builtin_pairs() -> list[tuple[str, str]]:
    """Every ordered pair of distinct built-in activations, sorted."""
    return [(student, teacher) for student in sorted(BUILTINS) for teacher in sorted(BUILTINS) if student != teacher]


@contextlib.contextmanager
def _parallel_map():
    """A map over the machine's cores (verification is most of the generator's time), in
    freshly spawned processes (JAX, imported with nndyn, does not survive a fork safely)."""
    workers = os.cpu_count() or 1
    if workers == 1:
        yield map
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool.map


def _render(job: tuple[str, ...]) -> tuple[str, str]:
    """(file name, source) of one committed file: `job` is ("kernel", name), ("pair", student,
    teacher), ("flows",) or ("symmetric",) (one argument, for a process pool's map)."""
    kind, *names = job
    if kind == "kernel":
        return f"{names[0]}.py", render_module(kernel_spec(get(names[0]), COMMAND))
    if kind == "pair":
        return f"{pair_name(*names)}.py", render_module(pair_spec(get(names[0]), get(names[1]), COMMAND))
    if kind == "flows":
        return "flows.py", render_flows(flow_spec(COMMAND))
    return "symmetric.py", render_symmetric(symmetric_spec(COMMAND))


def generate(names: list[str] | None = None, report=None) -> dict[str, str]:
    """Render the kernel modules of the built-in activations `names` (all when None), the pair
    modules of every two of them (all pairs when `names` is None, else those pairs of built-ins
    that involve `names`), the package's __init__.py, the flow table flows.py and the symmetric
    reduction symmetric.py; returns file name -> source. The files are derived and verified
    one per process, over the machine's cores; `report(done, total, name)`, when given, is called
    as each file's result is collected (in order)."""
    pairs = [pair for pair in builtin_pairs() if names is None or set(pair) & set(names)]
    names = sorted(BUILTINS) if names is None else names
    jobs = [("kernel", name) for name in names] + [("pair", *pair) for pair in pairs] + [("flows",), ("symmetric",)]
    sources = {}
    with _parallel_map() as parallel:
        for done, (name, text) in enumerate(parallel(_render, jobs), start=1):
            sources[name] = text
            if report is not None:
                report(done, len(jobs), name)
    sources["__init__.py"] = render_package_init(sorted(BUILTINS), builtin_pairs())
    return sources


def generate_user(activation: Activation, teacher: Activation | None = None, report=None) -> dict[str, str]:
    """Render the kernel module of a user's activation, or, with `teacher`, the modules of a
    student activation and a teacher activation apart: each one's own module (unless it is a
    built-in) and their pair module; file name -> source. The command each records holds SymPy's
    printing of the expressions, never the text the user typed. `report(kind, text)` hears the
    steps and results (`.lower.kernel_spec`); run it within `.budget.limited` to bound its time."""
    def options(prefix: str, chosen: Activation) -> str:
        if chosen.name in BUILTINS and chosen == get(chosen.name):
            return f" --{prefix}name {chosen.name}"
        return f" --{prefix}name {chosen.name} --{prefix}expr {shlex.quote(str(chosen.expression))}"

    command = COMMAND + options("", activation) + ("" if teacher is None else options("teacher-", teacher))
    with _parallel_map() as parallel:
        specs = {chosen.name: kernel_spec(chosen, command, parallel, report)
                 for chosen in (activation, teacher) if chosen is not None and chosen != BUILTINS.get(chosen.name)}
        sources = {f"{name}.py": render_module(spec) for name, spec in specs.items()}
        if teacher is not None:
            def mixture(chosen: Activation) -> Mixture | None:  # its module's fit, or erf's exact one
                spec = specs.get(chosen.name)
                return known(chosen) if spec is None or spec.mixture is None else spec.mixture.fitted

            sources[f"{pair_name(activation.name, teacher.name)}.py"] = render_module(
                pair_spec(activation, teacher, command, parallel, report, (mixture(activation), mixture(teacher))))
    return sources


def write(sources: dict[str, str], folder: Path = GENERATED_DIR) -> list[Path]:
    """Write `sources` into `folder`, each file atomically; returns the paths written."""
    paths = [folder / name for name in sources]
    for path, text in zip(paths, sources.values()):
        write_atomically(path, text)
    return paths


def check(sources: dict[str, str], folder: Path = GENERATED_DIR, known: set[str] | None = None) -> list[str]:
    """Differences between `sources` and `folder` (empty when in sync), and orphans: files not
    in `known` (default: the built-in kernel and pair modules and SHARED_FILES)."""
    if known is None:
        known = {f"{name}.py" for name in [*BUILTINS, *(pair_name(*pair) for pair in builtin_pairs())]}
        known |= set(SHARED_FILES)
    return differences(sources, folder, known)


def input_hashes() -> dict[str, str]:
    """The input hash each committed file other than __init__.py must record, by file name."""
    hashes = {f"{name}.py": kernel_hash(get(name)) for name in BUILTINS}
    hashes |= {f"{pair_name(*pair)}.py": kernel_hash(get(pair[0]), get(pair[1])) for pair in builtin_pairs()}
    return hashes | {"flows.py": flow_hash(), "symmetric.py": symmetric_hash()}


def check_hashes(folder: Path = GENERATED_DIR) -> list[str]:
    """The quick check of `folder` against the generator, without deriving anything: every file
    the generator writes is there and no other; each records the input hash of what it is derived
    from now (a changed derivation, template or SymPy stales it) and carries an intact seal (an
    edit by hand breaks it); __init__.py is rendered and compared. Problems, one line each.
    `generate` and `check` compare the full derivation (`python -m nndyn.derive --check --full`)."""
    expected = input_hashes()
    problems = differences({"__init__.py": render_package_init(sorted(BUILTINS), builtin_pairs())}, folder,
                           set(expected) | {"__init__.py"})
    for name, digest in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            problems.append(f"missing file {path}")
            continue
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        if len(lines) < 2 or lines[1] != f"# Input hash: sha256:{digest}":
            problems.append(f"stale file {path}: derived from other inputs than the generator's now")
        elif unsealed(text) is None:
            problems.append(f"edited file {path}: its text does not match its seal (only the generator writes it)")
    return problems
