"""Atomic file writes: write a temporary file beside the target, then rename it over the target.

An interrupted write leaves the old file (or none), never a half-written one. Files get mode
0644 (less the umask), like any file the user writes, not the 0600 of ``mkstemp``. Errors
name the target, never the temporary file.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from cgsurrogate.core.errors import CGSurrogateError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix: str = "") -> Iterator[Path]:
    """Context manager giving a temporary path beside ``path``; on success it replaces ``path``.

    Use it for writers that want a file name (``torch.save``, ``np.savez``, ``ase.io.write``)::

        with atomic_path(out / "model.pt") as tmp:
            torch.save(obj, tmp)

    ``suffix`` is appended to the temporary name (``np.savez`` needs ``.npz``, ``ase.io``
    reads the format from it). The parent folder is created. On an exception the temporary
    file is removed and ``path`` is untouched.

    Raises
    ------
    CGSurrogateError
        The parent is not a folder, or the folder is not writable (message names ``path``).
    """
    path = Path(path)
    parent = path.parent
    existing = next((a for a in (parent, *parent.parents) if a.exists()), None)
    if existing is not None and not existing.is_dir():
        raise CGSurrogateError(f"{path}: cannot write, {existing} is a file, not a folder")
    if path.is_dir():
        raise CGSurrogateError(f"{path}: is a folder, expected a file name")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=parent)
    except OSError as exc:
        raise CGSurrogateError(f"{path}: cannot write ({exc.strerror or exc})") from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, obj, indent: int = 2) -> Path:
    """Write ``obj`` as strict JSON to ``path`` atomically; returns ``path``.

    Raises
    ------
    CGSurrogateError
        ``obj`` holds NaN or infinity (not valid JSON; message names ``path``).
    """
    try:
        text = json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError:
        raise CGSurrogateError(f"{path}: refusing to write NaN or infinity into JSON") from None
    return write_text_atomic(path, text + "\n")
