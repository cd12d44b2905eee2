"""The folders show the layers, and the imports keep to them: core never imports sweeps or app,
sweeps never imports app, the derivation imports neither JAX nor the runtime, and generated
modules import only the runtime's helpers for them."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; relative imports as written, with dots)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("folder, forbidden", [
    ("nndyn/core", ("nndyn.sweeps", "nndyn.app")),
    ("nndyn/sweeps", ("nndyn.app",)),
    ("derive", ("jax", "nndyn.core", "nndyn.sweeps", "nndyn.app", "nndyn.generated")),
    ("generated", ("nndyn.sweeps", "nndyn.app", "nndyn.derive")),
])
def test_no_import_crosses_a_layer_upwards(folder, forbidden):
    assert files(folder)
    for path in files(folder):
        bad = sorted(name for name in imports(path) if any(within(name, package) for package in forbidden))
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_generated_modules_import_only_the_runtime_helpers_written_for_them():
    allowed = {"jax.numpy", "jax.scipy.special", "nndyn.core.special", "nndyn.core.quadrature", "nndyn.core.mixture",
               "nndyn.core.flows",
               "nndyn.core.symmetric"}
    for path in files("generated"):
        assert imports(path) <= allowed, f"{path.name} imports {sorted(imports(path) - allowed)}"


def test_the_file_helper_needs_only_the_standard_library():
    assert {name.split(".")[0] for name in imports(REPO / "nndyn" / "files.py")} <= {"__future__", "os", "tempfile",
                                                                                     "collections", "pathlib", "typing"}


def test_templates_hold_no_hand_written_runtime_code():
    """Templates render derived code only: no function of their own beyond the printed closed
    forms (`def` lines come from spec fields), no helper bodies, no imports but the helpers'."""
    for path in (REPO / "templates").glob("*.jinja"):
        text = path.read_text(encoding="utf-8")
        literal_defs = [line for line in text.splitlines() if line.startswith("def ") and "{{" not in line]
        assert literal_defs in ([], ["def g(x):", "def g_prime(x):"]), f"{path.name}: {literal_defs}"
        assert "jax.lax" not in text and "jnp.einsum" not in text, path.name
