"""The C allocator's setting that keeps a long-running daemon's memory flat (glibc only).

glibc serves a block of 128 KiB or more with a mapping of its own, returned to the system when
freed, but it raises that threshold to the size of each such block freed (up to 32 MiB): after
that, big short-lived blocks — a socket read's buffer is 256 KiB before it is cut to what
arrived — come from the heap, and the small blocks allocated between them keep the freed space
from being given back. On PostgreSQL (asyncpg's reads on every pooled connection) the daemon's
heap grew that way through a soak while the memory in use stayed flat: over 10 minutes at 100k
stored threads the heap's free space went from 3.0 to 5.3 MB, ``[heap]`` from 26.2 to 29.0 MB,
``malloc_trim`` gave 5.4 MB back at the end, and the blocks in use stayed at 24.7 MB
(``bench/memory.py --postgresql``). With the threshold pinned, the free space stays at 0.6 MB
and the RSS is flat (104.9 MB from minute 2 to minute 10).

Pinning it is the allocator's documented ``mallopt(M_MMAP_THRESHOLD, …)`` (what the
``MALLOC_MMAP_THRESHOLD_`` environment variable does before a process starts); the CLI calls it
when the daemon starts. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt's parameter number for the threshold (glibc's malloc.h), and glibc's default for it.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024


def pin_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Serve every block of ``size`` or more with a mapping of its own, for good (glibc's
    threshold stops following the blocks freed); whether the allocator took it."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        # musl and others have no ``gnu_get_libc_version``: their mallopt means nothing here.
        libc.gnu_get_libc_version  # noqa: B018 — looked up to tell glibc
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    taken = bool(mallopt(_M_MMAP_THRESHOLD, size))
    if not taken:
        log.warning("the C allocator refused an mmap threshold of %d bytes", size)
    return taken
