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
from .lower import flow_spec, kernel_spec
from .paths import GENERATED_DIR
from .render import COMMAND, differences, render_flows, render_module, render_package_init

#: The files of generated/ besides the built-in kernel modules.
SHARED_FILES = ("__init__.py", "flows.py")


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


def generate(names: list[str] | None = None) -> dict[str, str]:
    """Render the kernel modules of the built-in activations `names` (all when None), the
    package's __init__.py and the flow table flows.py; returns file name -> source."""
    names = sorted(BUILTINS) if names is None else names
    with _parallel_map() as parallel:
        sources = {f"{name}.py": render_module(kernel_spec(get(name), COMMAND, parallel)) for name in names}
    sources["__init__.py"] = render_package_init(sorted(BUILTINS))
    sources["flows.py"] = render_flows(flow_spec(COMMAND))
    return sources


def generate_user(activation: Activation) -> dict[str, str]:
    """Render the kernel module of a user's activation; file name -> source. The command it
    records holds SymPy's printing of the expression, never the text the user typed."""
    command = f"{COMMAND} --name {activation.name} --expr {shlex.quote(str(activation.expression))}"
    with _parallel_map() as parallel:
        return {f"{activation.name}.py": render_module(kernel_spec(activation, command, parallel))}


def write(sources: dict[str, str], folder: Path = GENERATED_DIR) -> list[Path]:
    """Write `sources` into `folder`, each file atomically; returns the paths written."""
    paths = [folder / name for name in sources]
    for path, text in zip(paths, sources.values()):
        write_atomically(path, text)
    return paths


def check(sources: dict[str, str], folder: Path = GENERATED_DIR, known: set[str] | None = None) -> list[str]:
    """Differences between `sources` and `folder` (empty when in sync), and orphans: files not
    in `known` (default: the built-in modules and SHARED_FILES)."""
    known = {f"{name}.py" for name in BUILTINS} | set(SHARED_FILES) if known is None else known
    return differences(sources, folder, known)
