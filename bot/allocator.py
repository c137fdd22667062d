"""The C allocator: the settings that keep a long-running daemon's memory flat and small, and
handing freed pages back after a burst (glibc only; elsewhere all do nothing).

glibc serves a block of 128 KiB or more with a mapping of its own, returned to the system when
freed, but it raises that threshold to the size of each such block freed (up to 32 MiB): after
that, big short-lived blocks — a socket read's buffer is 256 KiB before it is cut to what
arrived — come from the heap, and the small blocks allocated between them keep the freed space
from being given back. On PostgreSQL (asyncpg's reads on every pooled connection) the daemon's
heap grew that way through a soak while the memory in use stayed flat. ``bench/memory.py
--postgresql`` at 100k stored threads, two daemons side by side for 10 minutes (~12,000 turns
each): without the pin the RSS grew 7.3 MB after the warm-up (111.0 → 118.3 MB), with it 2.4 MB
(105.5 → 107.9 MB). Counted in runs beside those: without the pin the blocks in use stayed at
24.7 MB while the heap's free space went from 3.0 to 5.3 MB, and ``malloc_trim`` gave 5.4 MB back
at the end; with it the heap's free space stayed at 0.6 MB. What the pinned daemon still grows
by is bounded: the first time a pooled connection runs a statement it prepares it (about 8 KiB of
objects kept per statement and connection, up to the 100 of SQLAlchemy's cache per connection).

Pinning it is the allocator's documented ``mallopt(M_MMAP_THRESHOLD, …)`` (what the
``MALLOC_MMAP_THRESHOLD_`` environment variable does before a process starts); the CLI calls it
when the daemon starts. Elsewhere than glibc it does nothing.

glibc also gives each thread that allocates a heap (an "arena") of its own, up to 8 per core,
and the free space in each stays resident: the daemon's worker threads (``asyncio.to_thread``,
aiosqlite's, the local embeddings model's forward passes) held 13–14 MB that way through a soak
(``bench/memory.py``, 100k stored threads: 12.9 MB keyword-only, 14.2 MB with the local model).
``limit_arenas`` caps them (``mallopt(M_ARENA_MAX, …)``, as ``MALLOC_ARENA_MAX`` does); the CLI
calls it when the daemon starts, beside the pin. Threads then share the arenas there are, taking
turns on their locks: the daemon's threads mostly wait on I/O and the GIL.
"""

from __future__ import annotations

import ctypes
import functools
import logging

log = logging.getLogger(__name__)

# mallopt's parameter numbers (glibc's malloc.h), glibc's default threshold, and the arenas kept.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024
ARENAS = 2


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library this process already runs on, when it is glibc (musl and others have no
    ``gnu_get_libc_version``, and their ``mallopt`` means nothing here). ``CDLL(None)`` is the
    process's own symbols: no search for the library's file (``find_library`` runs
    ``ldconfig``)."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 — looked up to tell glibc
    except (OSError, AttributeError):
        return None
    return libc


def _mallopt(parameter: int, value: int, what: str) -> bool:
    """glibc's ``mallopt``; whether it took the value (``what``, for the warning when it did
    not); False elsewhere than glibc."""
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    taken = bool(mallopt(parameter, value))
    if not taken:
        log.warning("the C allocator refused %s", what)
    return taken


def pin_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Serve every block of ``size`` or more with a mapping of its own, for good (glibc's
    threshold stops following the blocks freed); whether the allocator took it."""
    return _mallopt(_M_MMAP_THRESHOLD, size, f"an mmap threshold of {size} bytes")


def limit_arenas(count: int = ARENAS) -> bool:
    """At most ``count`` malloc arenas in the process, the main heap included (threads that
    start allocating after the limit share them); whether the allocator took it."""
    return _mallopt(_M_ARENA_MAX, count, f"a limit of {count} arenas")


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system: glibc's ``malloc_trim``, which also
    trims the heaps of other threads (the daemon embeds in worker threads; glibc gives each
    its own). Elsewhere, nothing."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
