"""Shared test set-up: float64 everywhere, and the repository's folders."""

from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


#: Test modules by their measured duration, longest first. pytest-xdist (--dist loadfile) hands
#: whole modules to idle workers in collection order; the long ones go first so that no worker
#: starts one while the other is idle at the end. Modules not named follow, in their own order.
LONGEST_FIRST = ("test_ode_vs_sgd.py", "test_cli.py", "test_symmetric.py", "test_fixed_points.py", "test_sweeps.py",
                 "test_benchmarks.py", "test_user_activation.py", "test_tail.py", "test_verdict.py", "test_model.py",
                 "test_kernel_regression.py", "test_examples.py", "test_plateaus.py", "test_integrals.py",
                 "test_generated_sync.py", "test_continual.py", "test_results.py", "test_flows.py",
                 "test_integrate.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the tests by LONGEST_FIRST (a stable sort: the order within a module is kept)."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


#: Memory mappings above which the compiled programs are dropped after a test.
MAPPINGS = 20_000


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
