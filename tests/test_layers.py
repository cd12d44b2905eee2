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
    assert {name.split(".")[0] for name in imports(REPO / "nndyn" / "code.py")} <= {"__future__", "ast", "io",
                                                                                    "tokenize"}


def test_templates_hold_no_hand_written_runtime_code():
    """Templates render derived code only: no function of their own beyond the printed closed
    forms (`def` lines come from spec fields), no helper bodies, no imports but the helpers'."""
    for path in (REPO / "templates").glob("*.jinja"):
        text = path.read_text(encoding="utf-8")
        literal_defs = [line for line in text.splitlines() if line.startswith("def ") and "{{" not in line]
        assert literal_defs in ([], ["def g(x):", "def g_prime(x):"]), f"{path.name}: {literal_defs}"
        assert "jax.lax" not in text and "jnp.einsum" not in text, path.name


def module_name(path: Path) -> str:
    """The import name of a file of the installed package (derive/, generated/ and templates/
    are nndyn.derive, nndyn.generated and nndyn.templates)."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[0] != "nndyn":
        parts.insert(0, "nndyn")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports anywhere in its file (inside functions too),
    relative imports resolved, `from package import module` read as the module."""
    paths = [path for folder in ("nndyn", "derive", "generated", "templates") for path in files(folder)]
    modules = {module_name(path): path for path in paths}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            edges.update(target for target in targets if target in modules and target != name)
        graph[name] = edges
    return graph


def test_no_import_circles():
    """No module reaches itself through the imports of the project's modules (those inside
    functions count too: a late import hides a circle, it does not remove it); packages'
    __init__ files are left out, since importing a submodule runs its package's anyway."""
    graph = {name: {target for target in edges if not _is_package(target)}
             for name, edges in import_graph().items() if not _is_package(name)}
    circles = []
    for start in graph:
        stack, seen = [(start, (start,))], set()
        while stack:
            node, path = stack.pop()
            for target in graph[node]:
                if target == start:
                    circles.append(" → ".join(path + (start,)))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, path + (target,)))
    assert not circles, "import circles:\n" + "\n".join(sorted(circles))


def _is_package(name: str) -> bool:
    return (REPO / "/".join(module_name_parts(name)) / "__init__.py").exists()


def module_name_parts(name: str) -> list[str]:
    parts = name.split(".")
    if parts[:2] in (["nndyn", "derive"], ["nndyn", "generated"], ["nndyn", "templates"]):
        parts = parts[1:]
    return parts


@pytest.mark.slow  # over 2 s: the fast subset (-m 'not slow') stays within a minute
def test_importing_the_derivation_or_the_package_loads_neither_jax_nor_matplotlib():
    """`import nndyn.derive` is SymPy's work only, and `import nndyn` is cheap: public names are
    imported on first use; nothing sets a matplotlib backend (a notebook keeps its own)."""
    import subprocess
    import sys

    code = ("import sys, nndyn, nndyn.derive; "
            "print(sorted(name for name in ('jax', 'matplotlib', 'nndyn.core') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    code = ("import matplotlib, nndyn.app.plots, nndyn.sweeps.phase, nndyn; nndyn.Setting; "
            "print(matplotlib.rcParams._get_backend_or_none())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**__import__("os").environ, "MPLBACKEND": ""})
    assert result.stdout.strip() == "None", result.stdout


def test_no_module_sets_a_matplotlib_backend():
    for folder in ("nndyn", "derive"):
        for path in files(folder):
            assert "matplotlib.use(" not in path.read_text(encoding="utf-8"), path
