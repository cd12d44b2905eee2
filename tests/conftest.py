"""Shared test set-up: float64 everywhere, and the repository's folders."""

from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


#: Memory mappings above which the compiled programs are dropped after a test: the kernel's limit
#: is 65 530, and one test adds at most ~5 600 (tests/test_cli.py's reproduce, measured); each
#: drop costs 2–4 s and the tracing it forces again, 8 drops a run at 20 000, 4 at 40 000.
MAPPINGS = 40_000


def _mappings() -> int | None:
    """This process's memory mappings (Linux), or None where that cannot be read."""
    try:
        with open("/proc/self/maps", "rb") as maps:
            return sum(1 for _ in maps)
    except OSError:
        return None


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    """Drop JAX's compiled programs after a test when this process holds more than MAPPINGS
    memory mappings. Each XLA:CPU executable holds some, and the whole suite compiles enough
    programs to pass the kernel's vm.max_map_count (65 530), after which LLVM's JIT crashes
    the process (a segfault or an abort inside compilation). Dropping them only then keeps
    traced programs across tests (tracing a Diffrax solve costs seconds)."""
    yield
    count = _mappings()
    if count is not None and count > MAPPINGS:
        jax.clear_caches()
