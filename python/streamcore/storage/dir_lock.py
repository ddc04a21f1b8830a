"""Exclusive ownership of a data directory, for the lifetime of the process that holds it.

Two brokers on one directory each believe they own the logs: one's acknowledged
writes are overwritten or truncated by the other's recovery, and each writes
clean-shutdown markers over the other's files. So whoever opens a data directory
first takes ``flock(LOCK_EX)`` on ``DIR/.lock`` and keeps the descriptor open;
anyone else fails at once, naming the directory and the holder's pid (written
into the lock file by the holder). The kernel drops a flock when its holder dies,
SIGKILL included, so a crash never leaves a stale lock to clean up by hand.

A standalone :class:`streamcore.storage.Log` opened inside a broker's data
directory takes a *shared* lock on the parent's ``.lock``, so it and the broker
exclude each other too.
"""

from __future__ import annotations

import fcntl
import os

from streamcore.errors import DataDirLockedError

__all__ = ["LOCK_NAME", "DirLock"]

#: Name of the lock file inside a locked directory.
LOCK_NAME = ".lock"


class DirLock:
    """An flock on ``DIR/.lock``; ``shared=True`` takes a shared lock and writes no pid.

    ``create=False`` makes acquiring a no-op when the lock file does not exist
    (used for a directory that may not belong to any broker). Raises
    DataDirLockedError when another holder has it; release with :meth:`release`
    or by leaving a ``with`` block.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, shared: bool = False, create: bool = True
    ) -> None:
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, LOCK_NAME)
        self._shared = shared
        self._create = create
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> DirLock:
        if self._fd is not None:
            return self
        flags = os.O_RDWR | (os.O_CREAT if self._create else 0)
        try:
            fd = os.open(self.path, flags | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            if self._create:
                raise
            return self
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if self._shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" by process {holder}" if holder else " by another process"
            raise DataDirLockedError(
                f"{self.directory} is in use{who} (lock {self.path}); stop that broker first or use "
                "another data directory"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        if not self._shared:
            # The pid is for the message a second opener prints; the flock is what protects.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases the flock); idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
