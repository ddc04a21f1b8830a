"""Crash-safe file replacement: the one helper every checkpoint and state file uses.

A reader after a crash sees either the old file or the new one, never a torn
mix: the new content goes to ``NAME.tmp``, is fsynced, renamed over ``NAME``,
and the directory is fsynced so that the rename itself survives power loss.

This module sits at the bottom of the package (standard library only), so the
pure-Python twins, storage and the broker can all use it.
"""

from __future__ import annotations

import os

__all__ = ["fsync_dir", "write_atomic"]


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """fsync ``directory`` so that creations, renames and unlinks in it are durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Replace ``path`` with ``data`` atomically (temp -> fsync -> rename -> fsync of the directory).

    ``str`` data is written as UTF-8. On any failure the temporary file is
    removed and the old file is left as it was; the OSError propagates so that
    the caller can refuse the change it was persisting.
    """
    path = os.fspath(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path + ".tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(os.path.dirname(path) or ".")
