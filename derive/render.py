"""Rendering KernelSpecs into module source with the Jinja2 templates, and writing them."""

from __future__ import annotations

import difflib
import os
import tempfile
from pathlib import Path

import jinja2

from .spec import TEMPLATES_DIR, KernelSpec, build_flow_spec, input_hash
from .quadrature import RADIUS
from .special import PLACKETT_ORDER

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)


def render_module(spec: KernelSpec) -> str:
    """The source of generated/<spec.name>.py."""
    return _ENVIRONMENT.get_template("kernel_module.py.jinja").render(spec=spec)


def render_package_init(names: list[str], command: str) -> str:
    """The source of generated/__init__.py, listing the modules `names`."""
    return _ENVIRONMENT.get_template("package_init.py.jinja").render(names=names, command=command)


def render_blocks(command: str) -> str:
    """The source of generated/_blocks.py, the helpers every kernel module imports."""
    return _ENVIRONMENT.get_template("blocks.py.jinja").render(
        command=command, input_hash=input_hash(), plackett_order=PLACKETT_ORDER, quadrature_radius=RADIUS
    )


def render_flows(command: str) -> str:
    """The source of generated/_flows.py, the flows every kernel module binds to its integrals."""
    tensors, terms = build_flow_spec()
    return _ENVIRONMENT.get_template("flows.py.jinja").render(
        command=command, input_hash=input_hash(), tensors=tensors, terms=terms
    )


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def differences(expected: dict[str, str], folder: Path, known: set[str]) -> list[str]:
    """Unified diffs between `expected` (file name -> text) and the files of `folder`, plus
    missing files and orphaned `*.py` files (those whose name is not in `known`)."""
    problems = []
    present = {path.name for path in folder.glob("*.py")} if folder.is_dir() else set()
    for name in sorted(present - known):
        problems.append(f"orphaned file {folder / name}: the generator does not write it")
    for name, text in sorted(expected.items()):
        path = folder / name
        if name not in present:
            problems.append(f"missing file {path}")
            continue
        actual = path.read_text(encoding="utf-8")
        if actual != text:
            diff = difflib.unified_diff(
                actual.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{path} (committed)",
                tofile=f"{path} (generator)",
            )
            problems.append("".join(diff))
    return problems
