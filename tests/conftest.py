"""Shared test set-up: float64 everywhere, and the repository's folders."""

from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module. Each XLA:CPU executable holds
    memory mappings, and the whole suite compiles enough programs to approach the kernel's
    vm.max_map_count (65 530), after which LLVM's JIT crashes the process (a segfault or an
    abort inside compilation)."""
    yield
    jax.clear_caches()
