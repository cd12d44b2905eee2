"""Writing files atomically: the one way nndyn writes a file (standard library only, so that
every layer, the derivation included, can use it)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path, content: bytes | str | Callable[[BinaryIO], None]) -> None:
    """Write `content` to `path` through a temporary file in the same folder and a rename, so
    that `path` holds either its old content or the whole new one, never a part. The file gets
    the permissions a plain write would (0666 less the umask), not the temporary file's 0600.

    **Arguments:**

    - `path`: the file; its folder is created when missing.
    - `content`: bytes, text (written as UTF-8), or a function that writes to a binary stream
      (e.g. ``lambda stream: numpy.savez_compressed(stream, **arrays)``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(handle, 0o666 & ~umask())
        with os.fdopen(handle, "wb") as stream:
            if callable(content):
                content(stream)
            else:
                stream.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
