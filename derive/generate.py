"""Generating the kernel modules of built-in activations and checking the committed ones."""

from __future__ import annotations

import shlex
from pathlib import Path

from .activations import BUILTINS, Activation, get
from .render import differences, render_blocks, render_flows, render_module, render_package_init, write_atomically
from .spec import PACKAGE_ROOT, build_spec

COMMAND = "python -m nndyn.derive"

#: Where the committed modules live: generated/ beside derive/ (nndyn/generated when installed).
GENERATED_DIR = PACKAGE_ROOT / "generated"


def generate(names: list[str] | None = None) -> dict[str, str]:
    """Render the modules of the built-in activations `names` (all when None), plus the
    package's __init__.py, _blocks.py and _flows.py; returns file name -> source."""
    names = sorted(BUILTINS) if names is None else names
    sources = {f"{name}.py": render_module(build_spec(get(name), COMMAND)) for name in names}
    sources["__init__.py"] = render_package_init(sorted(BUILTINS), COMMAND)
    sources["_blocks.py"] = render_blocks(COMMAND)
    sources["_flows.py"] = render_flows(COMMAND)
    return sources


def generate_user(activation: Activation, expression: str) -> dict[str, str]:
    """Render the module of a user's activation (no package __init__); file name -> source."""
    command = f"{COMMAND} --name {activation.name} --expr {shlex.quote(expression)}"
    return {f"{activation.name}.py": render_module(build_spec(activation, command))}


def write(sources: dict[str, str], folder: Path = GENERATED_DIR) -> list[Path]:
    """Write `sources` into `folder`, each file atomically; returns the paths written."""
    paths = [folder / name for name in sources]
    for path, text in zip(paths, sources.values()):
        write_atomically(path, text)
    return paths


def check(sources: dict[str, str], folder: Path = GENERATED_DIR, known: set[str] | None = None) -> list[str]:
    """Differences between `sources` and `folder` (empty when in sync), and orphans: files not
    in `known` (default: the built-in modules, __init__.py, _blocks.py and _flows.py)."""
    known = {f"{name}.py" for name in BUILTINS} | {"__init__.py", "_blocks.py", "_flows.py"} if known is None else known
    return differences(sources, folder, known)
