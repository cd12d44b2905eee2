"""Where nndyn keeps compiled programs across processes, and exported ODE solves.

The folder is ``$NNDYN_COMPILATION_CACHE`` when set (``off`` disables all of this), else
``$XDG_CACHE_HOME/nndyn/jax`` or ``~/.cache/nndyn/jax``. It holds JAX's persistent compilation
cache (unless JAX's cache folder was configured already), which skips compiling in a fresh
process, and ``exported/``: solves serialised by `jax.export`, which skip tracing. Tracing
Diffrax's solve costs ~1.5 s per process, more than loading its compiled program.

An exported program is stored under a hash of everything its trace depends on: the code
(comments and docstrings left out) of nndyn's solver and of the kernel module with its
generated helpers, the versions of JAX,
jaxlib, Diffrax and Equinox, ``EQX_ON_ERROR``, the backend, the static options, and the
structure, shapes and dtypes of the arguments. Files are written atomically; an unreadable one
is replaced.

The folder is capped at ``$NNDYN_CACHE_MAX_MB`` megabytes (default `MAX_MB`): when a process
starts (one in `PRUNE_EVERY` seconds), the least recently used entries are deleted until each
part is within its share (JAX's entries by the later of their write and their last read as the
file system records it, which on Linux's default ``relatime`` mounts is exact to a day;
``exported/`` by its files' times, which a load touches). JAX's own LRU eviction
(``jax_compilation_cache_max_size``) is left off: it lists and reads a record of every entry on
each write under a lock, 0.25 s per write with the ~4 500 entries of a test run, where its whole
folder was ~700 entries when only programs over 0.2 s of compilation were kept. `info` and
`clear` (``nndyn cache info``, ``nndyn cache clear``) show and empty it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import jax

from nndyn.code import code_of
from nndyn.files import write_atomically


def _versions() -> tuple[str, ...] | None:
    """The versions an exported solve depends on; None when one is unknown (then nothing is
    exported: a program traced by another version could not be told apart)."""
    try:
        return tuple(f"{package} {metadata.version(package)}" for package in ("jax", "jaxlib", "diffrax", "equinox"))
    except metadata.PackageNotFoundError:
        return None


_VERSIONS = _versions()
_calls: dict[str, Callable] = {}  # key -> jitted call of the exported program, for this process


def folder() -> Path | None:
    """nndyn's cache folder, or None when ``NNDYN_COMPILATION_CACHE`` turns caching off."""
    setting = os.environ.get("NNDYN_COMPILATION_CACHE")
    if setting is not None and setting.strip().lower() in ("", "0", "off", "no", "false"):
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(setting) if setting else base / "nndyn" / "jax"


#: The cache's default size cap, in megabytes (``NNDYN_CACHE_MAX_MB`` overrides it).
MAX_MB = 500
#: The share of the cap that exported solves may take (the rest is JAX's).
EXPORTED_SHARE = 0.1
#: Programs that compile faster than this are not kept. JAX's default (1 s) and nndyn's former
#: 0.2 s left out the ~30 operations a run applies outside its jitted programs (adding, slicing,
#: stacking arrays between them), each compiled anew in every process at 20–60 ms: 0.7 s of a
#: warm 3.6 s `integrate` process at K = M = 4, and 28 % of a warm run of the verdict's and the
#: symmetric reduction's tests. Loaded from the cache they take ~3 ms each (measured on the
#: 2-core AMD EPYC machine of benchmarks/RESULTS.md).
MIN_COMPILE_SECONDS = 0.0


def limit() -> int:
    """The cache's size cap in bytes (``NNDYN_CACHE_MAX_MB``, default MAX_MB); a bad value is
    refused with one line naming the variable."""
    text = os.environ.get("NNDYN_CACHE_MAX_MB")
    try:
        megabytes = MAX_MB if text is None else float(text)
    except ValueError:
        megabytes = -1.0
    if not megabytes > 0 or megabytes == float("inf"):
        raise ValueError(f"NNDYN_CACHE_MAX_MB must be a positive number of megabytes, got {text!r}")
    return int(megabytes * 2**20)


def enable_compilation_cache() -> None:
    """Point JAX's persistent compilation cache at `folder()`, keeping every program
    (`MIN_COMPILE_SECONDS`), and prune the folder to `limit()`, unless caching is off or JAX's
    cache folder is configured already."""
    location = folder()
    if location is None or jax.config.values.get("jax_compilation_cache_dir"):
        return
    try:
        cap = limit()
    except ValueError as error:  # at import: a warning, not a traceback
        warnings.warn(f"{error}; using {MAX_MB} MB", RuntimeWarning, stacklevel=2)
        cap = MAX_MB * 2**20
    jax.config.update("jax_compilation_cache_dir", str(location))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_max_size", -1)  # no eviction by JAX (module docstring)
    marker = location / PRUNED
    with contextlib.suppress(OSError):
        if time.time() - marker.stat().st_mtime < PRUNE_EVERY:
            return
    _prune(location, "-cache", int(cap * (1 - EXPORTED_SHARE)))
    _prune(location / "exported", ".jaxexport", int(cap * EXPORTED_SHARE))
    with contextlib.suppress(OSError):
        marker.touch()


#: The file whose modification time says when the folder was last pruned.
PRUNED = ".pruned"
#: The folder is pruned by at most one process in this many seconds: listing it costs one `stat`
#: per entry, 64 ms at the ~4 800 entries the tests leave (2-core AMD EPYC, busy).
PRUNE_EVERY = 600


def _prune(directory: Path, suffix: str, cap: int) -> None:
    """Delete the least recently used files of `directory` whose names end in `suffix` (by the
    later of their modification and access times) until the rest take at most `cap` bytes; with
    each JAX entry `<key>-cache`, the `<key>-atime` record that JAX's own eviction kept."""
    try:
        entries = []
        with os.scandir(directory) as listing:
            for entry in listing:
                if entry.name.endswith(suffix):
                    status = entry.stat()
                    entries.append((max(status.st_mtime, status.st_atime), status.st_size, Path(entry.path)))
    except OSError:
        return
    entries.sort()
    total = sum(size for _, size, _ in entries)
    for _, size, entry in entries:
        if total <= cap:
            break
        with contextlib.suppress(OSError):
            entry.unlink()
            total -= size
        if entry.name.endswith("-cache"):
            with contextlib.suppress(OSError):
                entry.with_name(entry.name.removesuffix("-cache") + "-atime").unlink(missing_ok=True)


def info() -> dict:
    """The cache's `folder`, its `bytes` and `entries` (files), and its `limit` in bytes
    (folder None when caching is off)."""
    location = folder()
    files = [path for path in location.rglob("*") if path.is_file()] if location and location.is_dir() else []
    return {"folder": location, "bytes": sum(path.stat().st_size for path in files), "entries": len(files),
            "limit": limit() if location is not None else None}


def clear() -> int:
    """Delete every file of the cache folder; returns how many bytes that freed."""
    freed = info()["bytes"]
    location = folder()
    if location is not None and location.is_dir():
        shutil.rmtree(location)
    return freed


def call(function, arguments: tuple, *, static: tuple, sources: tuple[str, ...]):
    """`function(*arguments)` through an exported program kept on disk.

    **Arguments:** `function` of arrays (pytrees of them, and None) returning a pytree of arrays,
    lists, tuples and dicts; `static`, the values (repr-able) it closes over; `sources`, the
    files whose code it runs. Without a cache folder, or when the function cannot be exported
    (e.g. it holds host callbacks), it is simply called.
    """
    location = folder()
    if location is None or _VERSIONS is None:
        return function(*arguments)
    key = _key(arguments, static, sources)
    if key not in _calls:
        path = location / "exported" / f"{key}.jaxexport"
        exported = _load(path)
        if exported is not None:
            with contextlib.suppress(OSError):
                os.utime(path)  # used now: the last to be pruned
        if exported is None:
            try:
                exported = jax.export.export(jax.jit(function))(*arguments)
            except Exception:  # not exportable: run it as it is (a real error will show there)
                return function(*arguments)
            try:
                write_atomically(path, bytes(exported.serialize()))
            except OSError:  # a read-only or full cache folder: used by this process only
                pass
        _calls[key] = jax.jit(exported.call)
        if b"lapack_" not in bytes(exported.mlir_module_serialized):
            with _lapack_left_alone():  # the first call lowers the program
                return _calls[key](*arguments)
    return _calls[key](*arguments)


@contextlib.contextmanager
def _lapack_left_alone():
    """Lower an exported program without initialising LAPACK.

    Before lowering any exported CPU program, JAX initialises its LAPACK kernels, which imports
    scipy.linalg: 0.26 s, a third of a warm `nndyn run`'s start-up. A program without LAPACK
    custom calls (targets named lapack_*, which the caller has checked for) does not need
    them; JAX's own lowering of a LAPACK call initialises them where one is used. The hook is
    private to JAX: when it is not there, nothing is changed.
    """
    from jax._src.export import _export  # private: see the docstring

    original = getattr(_export, "_ensure_backends_initialized", None)
    if original is None:
        yield
        return
    _export._ensure_backends_initialized = lambda platforms: None
    try:
        yield
    finally:
        _export._ensure_backends_initialized = original


@functools.cache
def _digest_of(sources: tuple[str, ...]) -> str:
    """SHA-256 of the code of the `sources` (`nndyn.code.code_of`: comments and docstrings left
    out, so that documenting a module does not stale its programs)."""
    digest = hashlib.sha256()
    for source in sources:
        status = os.stat(source)
        digest.update(_code_digest(source, status.st_mtime_ns, status.st_size).encode())
    return digest.hexdigest()


@functools.cache
def _code_digest(source: str, modified: int, size: int) -> str:
    """The digest of one file's code, kept per version of the file (its time and size)."""
    return hashlib.sha256(code_of(Path(source).read_text(encoding="utf-8")).encode()).hexdigest()


def _key(arguments: tuple, static: tuple, sources: tuple[str, ...]) -> str:
    digest = hashlib.sha256(_digest_of(sources).encode())
    shapes = jax.tree_util.tree_map(
        lambda value: (jax.typeof(value).str_short(), jax.typeof(value).weak_type), arguments
    )
    for part in (
        *(_VERSIONS or ()),
        os.environ.get("EQX_ON_ERROR"),
        jax.default_backend(),
        static,
        jax.tree_util.tree_structure(arguments),
        shapes,
    ):
        digest.update(repr(part).encode())
    return digest.hexdigest()[:32]


def _load(path: Path):
    try:
        return jax.export.deserialize(bytearray(path.read_bytes()))
    except Exception:  # missing, or unreadable (e.g. written by another version): export again
        return None
