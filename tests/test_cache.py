"""Exported solves on disk (nndyn.core.cache): written once, reused, keyed by what the trace
depends on, rebuilt when unreadable, and absent when caching is off."""

import numpy as np
import pytest

import nndyn
from nndyn.core import cache

TIMES = np.linspace(0.0, 5.0, 6)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("NNDYN_COMPILATION_CACHE", str(tmp_path))
    monkeypatch.setattr(cache, "_calls", {})
    return tmp_path / "exported"


def _run(K=2):
    setting = nndyn.Setting(K=K, M=2, lr=0.5, train_second_layer=True)
    init = nndyn.OrderParameters(Q=np.eye(K) * 0.5, R=np.full((K, 2), 0.1), T=np.eye(2), v=np.full(K, 0.3),
                                  v_star=np.ones(2))
    return nndyn.integrate(setting, init, TIMES)


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_a_solve_is_exported_once_and_reused(folder, monkeypatch):
    first = _run()
    files = list(folder.glob("*.jaxexport"))
    assert len(files) == 1
    monkeypatch.setattr(cache, "_calls", {})  # as in a fresh process
    written = (files[0].stat().st_ino, files[0].read_bytes())  # an atomic rewrite would be a new inode
    again = _run()
    assert (files[0].stat().st_ino, files[0].read_bytes()) == written  # loaded (and touched: LRU), not rewritten
    np.testing.assert_array_equal(np.asarray(again.eg), np.asarray(first.eg))
    _run(K=3)  # another shape: another program
    assert len(list(folder.glob("*.jaxexport"))) == 2


@pytest.mark.slow  # over 2 s (the phase diagrams): the fast subset stays within a minute
def test_a_sweeps_chunks_of_one_shape_are_one_kept_program(tmp_path, monkeypatch):
    """On one device a sweep's chunks go through `solve_many`, so through `cache.call` (whose
    programs are kept, as above) under one key: the points' learning rates are data."""
    keys = []
    call = cache.call

    def recorded(function, arguments, *, static, sources):
        keys.append(cache._key(arguments, static, sources))
        return call(function, arguments, static=static, sources=sources)

    monkeypatch.setattr(cache, "call", recorded)
    points = nndyn.grid(defaults={"K": 2, "M": 2}, product={"lr": [0.3, 0.4, 0.5, 0.7]})
    rows = nndyn.sweep(points, t_max=5.0, folder=tmp_path / "out", saves=6, chunk=2)
    assert len(keys) == 2 and keys[0] == keys[1]  # two chunks of 2 points
    assert len({row["final_eg"] for row in rows}) == 4


def test_the_key_follows_sources_and_options(tmp_path):
    source = tmp_path / "module.py"
    source.write_text("a = 1\n")
    arguments = (np.zeros(3), None)
    key = cache._key(arguments, ("erf",), (str(source),))
    assert key != cache._key(arguments, ("relu",), (str(source),))
    assert key != cache._key((np.zeros(4), None), ("erf",), (str(source),))
    assert key != cache._key((np.zeros(3, np.float32), None), ("erf",), (str(source),))
    other = tmp_path / "other.py"
    other.write_text("a = 2\n")
    assert key != cache._key(arguments, ("erf",), (str(other),))
    documented = tmp_path / "documented.py"  # comments and docstrings are not the trace's
    documented.write_text('"""A module."""\n\na = 1  # one\n')
    assert key == cache._key(arguments, ("erf",), (str(documented),))


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_an_unreadable_file_is_exported_again(folder, monkeypatch):
    expected = _run()
    (path,) = folder.glob("*.jaxexport")
    path.write_bytes(b"truncated")
    monkeypatch.setattr(cache, "_calls", {})
    np.testing.assert_array_equal(np.asarray(_run().eg), np.asarray(expected.eg))
    assert path.stat().st_size > 1000


def test_nothing_is_written_when_caching_is_off(tmp_path, monkeypatch):
    monkeypatch.setenv("NNDYN_COMPILATION_CACHE", "off")
    monkeypatch.setattr(cache, "_calls", {})
    monkeypatch.chdir(tmp_path)
    assert cache.folder() is None
    _run()
    assert not list(tmp_path.rglob("*.jaxexport"))


def test_an_unwritable_folder_still_runs_the_exported_solve(folder, monkeypatch):
    def refuse(path, blob):
        raise PermissionError(path)

    monkeypatch.setattr(cache, "write_atomically", refuse)
    result = _run()
    assert np.all(np.isfinite(np.asarray(result.eg)))
    assert len(cache._calls) == 1 and not folder.exists()


PROGRAM = """
import sys
import jax.numpy as jnp
import numpy as np
import nndyn
from nndyn.core import cache
sys.modules["jax._src.lax.linalg"].initialize_lapack  # present: the check below is not vacuous
function = {function}
value = cache.call(function, (jnp.diag(jnp.array([3.0, 1.0, 2.0])),), static=("test",), sources=())
print(repr(np.asarray(value).tolist()))
"""


@pytest.mark.parametrize("function, expected", [
    ("lambda a: jnp.linalg.eigh(a)[0]", [1.0, 2.0, 3.0]),  # LAPACK: initialised as JAX does
    ("lambda a: jnp.sin(a).sum(axis=0)", list(np.sin([3.0, 1.0, 2.0]))),  # none: left alone
])
@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_an_exported_program_runs_in_a_fresh_process_with_or_without_lapack(tmp_path, function, expected):
    """The first process exports the program, the second loads it and runs it first thing,
    where JAX's LAPACK kernels are initialised only for a program that calls them."""
    import os
    import subprocess
    import sys

    environment = {**os.environ, "NNDYN_COMPILATION_CACHE": str(tmp_path)}
    for _ in range(2):
        result = subprocess.run([sys.executable, "-c", PROGRAM.format(function=function)], env=environment,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert eval(result.stdout.strip().splitlines()[-1]) == pytest.approx(expected)
    assert len(list((tmp_path / "exported").glob("*.jaxexport"))) == 1


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_the_cache_stays_within_its_cap(tmp_path, monkeypatch):
    """With a tiny cap (NNDYN_CACHE_MAX_MB = 0.1), a process compiling 16 programs leaves ~125 kB
    of JAX's entries; a process starting within PRUNE_EVERY of the last pruning leaves them, the
    next one after it prunes them to 90 % of the cap, the least recently used first (the later
    of write and read: an old entry read since is kept), and exported/ to its 10 %; `nndyn cache
    info` reports the cap and `clear` empties it (in this process: they read the folder and the
    cap from the environment when called)."""
    import os
    import subprocess
    import sys
    import time

    from command import in_process

    cap = int(0.1 * 2**20)
    exported = tmp_path / "exported"
    exported.mkdir()
    for index in range(6):  # 6 × 10 kB of exported programs, oldest first
        (exported / f"old{index}.jaxexport").write_bytes(b"x" * 10_000)
        os.utime(exported / f"old{index}.jaxexport", (time.time() - 100 + index,) * 2)
    env = {**os.environ, "NNDYN_COMPILATION_CACHE": str(tmp_path), "NNDYN_CACHE_MAX_MB": "0.1"}
    code = ("import jax, jax.numpy as jnp, nndyn; nndyn.Setting; "
            "[jax.jit(lambda x, k=k: jnp.sin(x) * k + jnp.cumsum(x ** k))(jnp.arange(8.0 + k)) for k in range(16)]")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    entries = sorted(tmp_path.glob("*-cache"))
    assert sum(path.stat().st_size for path in entries) > cap
    now = time.time()
    for index, path in enumerate(entries):  # written in that order, long ago; the first read just now
        os.utime(path, (now if index == 0 else now - 1000 + index, now - 1000 + index))
    start = [sys.executable, "-c", "import nndyn; nndyn.Setting"]
    subprocess.run(start, env=env, check=True, capture_output=True)  # within PRUNE_EVERY of the last pruning
    assert sorted(tmp_path.glob("*-cache")) == entries
    os.utime(tmp_path / cache.PRUNED, (now - cache.PRUNE_EVERY - 1,) * 2)  # pruned long enough ago
    subprocess.run(start, env=env, check=True, capture_output=True)
    kept = sorted(tmp_path.glob("*-cache"))
    assert len(kept) >= 3 and sum(path.stat().st_size for path in kept) <= 0.9 * cap
    assert kept == [entries[0], *entries[len(entries) - len(kept) + 1:]]  # the one read, then the newest
    assert sorted(path.name for path in exported.iterdir()) == ["old5.jaxexport"]  # 10 kB of its 10.5 kB
    monkeypatch.setenv("NNDYN_COMPILATION_CACHE", str(tmp_path))
    monkeypatch.setenv("NNDYN_CACHE_MAX_MB", "0.1")
    result = in_process("cache", "info")
    assert result.returncode == 0 and "capped at 0.1 MB" in result.stdout and str(tmp_path) in result.stdout
    result = in_process("cache", "clear")
    assert result.returncode == 0 and not tmp_path.exists()


@pytest.mark.slow  # over 3 s: the fast subset (-m 'not slow') stays within a minute
def test_the_operations_between_programs_are_kept_too(tmp_path):
    """An operation applied outside any jitted program (compiled in milliseconds, below JAX's
    default threshold for keeping a program) is kept, and a second process loads it from the
    cache instead of compiling it: JAX counts a cache hit there and none in the first."""
    import os
    import subprocess
    import sys

    code = ("import jax, jax.numpy as jnp, nndyn; nndyn.Setting; hits = []; "
            "jax.monitoring.register_event_listener(lambda event, **_: hits.append(event)); "
            "jnp.arange(5.0) * 3.0; print(hits.count('/jax/compilation_cache/cache_hits'))")
    environment = {**os.environ, "NNDYN_COMPILATION_CACHE": str(tmp_path)}
    counts = [subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True,
                             check=True).stdout.split()[-1] for _ in range(2)]
    assert counts[0] == "0" and int(counts[1]) >= 1 and list(tmp_path.glob("jit_multiply-*-cache"))
