"""Shared test set-up: float64 everywhere, and the repository's folders."""

from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


#: Memory mappings above which the compiled programs are dropped after a test.
MAPPINGS = 20_000


def _mappings() -> int | None:
    """This process's memory mappings (Linux), or None where that cannot be read."""
    try:
        with open("/proc/self/maps", "rb") as maps:
            return sum(1 for _ in maps)
    except OSError:
        return None


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs_per_module():
    """Drop JAX's compiled programs after each test module. Each XLA:CPU executable holds
    memory mappings, and the whole suite compiles enough programs to pass the kernel's
    vm.max_map_count (65 530), after which LLVM's JIT crashes the process (a segfault or an
    abort inside compilation)."""
    yield
    jax.clear_caches()


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    """Drop them after a test too when this process holds more than MAPPINGS mappings (one
    module, tests/test_ode_vs_sgd.py, reaches 15 000 by itself)."""
    yield
    count = _mappings()
    if count is not None and count > MAPPINGS:
        jax.clear_caches()
