"""Rendering specs into module source with the Jinja2 templates, and comparing with a folder."""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

import jinja2

from .paths import TEMPLATES_DIR
from .spec import FlowSpec, KernelSpec, SymmetricSpec

#: The command that regenerates the built-in modules, recorded in their headers.
COMMAND = "python -m nndyn.derive"
#: The layout of generated kernel modules; nndyn.core.kernels refuses modules of another.
KERNEL_FORMAT = 2

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)
# a tuple of strings as Python code: ("a", "b"), ("a",), ()
_ENVIRONMENT.filters["strings"] = lambda items: "(" + ", ".join(f'"{item}"' for item in items) + (
    "," if len(items) == 1 else "") + ")"


def render_module(spec: KernelSpec) -> str:
    """The source of the kernel module <spec.name>.py."""
    return sealed(_ENVIRONMENT.get_template("kernel_module.py.jinja").render(spec=spec, format=KERNEL_FORMAT))


def render_package_init(names: list[str], pairs: list[tuple[str, str]]) -> str:
    """The source of generated/__init__.py, listing the built-in modules `names` and the pair
    modules of `pairs` (student, teacher)."""
    return sealed(_ENVIRONMENT.get_template("package_init.py.jinja").render(names=names, pairs=pairs, command=COMMAND))


def render_flows(spec: FlowSpec) -> str:
    """The source of generated/flows.py, the flow table."""
    return sealed(_ENVIRONMENT.get_template("flows.py.jinja").render(spec=spec))


def render_symmetric(spec: SymmetricSpec) -> str:
    """The source of generated/symmetric.py, the symmetric reduction's table."""
    return sealed(_ENVIRONMENT.get_template("symmetric.py.jinja").render(spec=spec))


#: The last line of every generated file: the SHA-256 of the text above it.
SEAL = "# Output hash: sha256:"


def sealed(text: str) -> str:
    """`text` with its SEAL line appended, so that an edit of a generated file is seen without
    deriving it again (`unsealed`)."""
    return f"{text}{SEAL}{hashlib.sha256(text.encode()).hexdigest()}\n"


def unsealed(text: str) -> str | None:
    """The text above a file's SEAL line when the seal matches it, else None (no seal, or an edit)."""
    body, _, last = text.rstrip("\n").rpartition("\n")
    body += "\n"
    if not last.startswith(SEAL) or last[len(SEAL):] != hashlib.sha256(body.encode()).hexdigest():
        return None
    return body


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
