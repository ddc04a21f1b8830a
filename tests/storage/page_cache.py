"""Dropping a file's pages from the page cache, for tests of reads that must not wait
for the disk (RWF_NOWAIT)."""

from __future__ import annotations

import ctypes
import mmap
import os
import time

_libc = ctypes.CDLL(None, use_errno=True)


def resident_pages(path: str | os.PathLike[str]) -> int:
    """Pages of ``path`` in the page cache, asked with mincore(2) on a mapping of it.

    Mapping and asking read nothing. (A nowait read of a page that is not cached
    starts reading it in, so it cannot be the test.)
    """
    size = os.path.getsize(path)
    if size == 0:
        return 0
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mm:
        view = (ctypes.c_char * size).from_buffer(mm)
        try:
            if _libc.mincore(ctypes.c_void_p(ctypes.addressof(view)), ctypes.c_size_t(size), vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
        finally:
            del view
    return sum(v & 1 for v in vec)


def evict(path: str | os.PathLike[str], tries: int = 50) -> None:
    """Write ``path`` back and drop its pages from the page cache.

    ``POSIX_FADV_DONTNEED`` is advice: pages the kernel still holds in a per-CPU batch
    survive one call, so it is repeated until none is left (``tries`` times at most,
    then AssertionError).
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        for _ in range(tries):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            if resident_pages(path) == 0:
                return
            time.sleep(0.01)
    finally:
        os.close(fd)
    raise AssertionError(f"{path}: the kernel kept its pages in the page cache after {tries} tries")
