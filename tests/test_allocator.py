"""The allocator's mmap threshold, pinned when the daemon starts (``bot/allocator.py``).

Each check runs in a process of its own: the setting is the whole process's. A block of
256 KiB is allocated and freed (glibc serves it with a mapping of its own and, unless the
threshold is pinned, raises the threshold past it); the next block of that size is then counted:
a mapping of its own (``hblks`` one more) only when the threshold stayed where it was pinned.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
from bot.allocator import pin_mmap_threshold

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = Info
pinned = pin_mmap_threshold() if sys.argv[1] == "pinned" else None
size = 256 * 1024
libc.free(libc.malloc(size))
before = libc.mallinfo2().hblks
block = libc.malloc(size)
print(pinned, libc.mallinfo2().hblks - before)
libc.free(block)
"""


def _probe(mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the threshold is glibc's"
)
def test_a_big_block_freed_leaves_the_pinned_threshold_where_it_was() -> None:
    assert _probe("default") == "None 0"  # glibc's own threshold followed the block freed
    assert _probe("pinned") == "True 1"


ARENAS_PROBE = """
import ctypes, re, sys, tempfile, threading
from bot.allocator import limit_arenas

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
limited = limit_arenas() if sys.argv[1] == "limited" else None
# Threads that each allocate for the first time, all alive at once (a thread that has ended
# hands its heap to the next one): glibc gives each a heap of its own, up to its limit (8 per
# core by default).
together = threading.Barrier(6)


def allocate() -> None:
    together.wait()
    libc.malloc(1000)
    together.wait()


workers = [threading.Thread(target=allocate) for _ in range(6)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
with tempfile.NamedTemporaryFile("r") as report:
    stream = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(limited, len(re.findall("<heap nr=", report.read())))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the arenas are glibc's")
def test_threads_share_the_limited_arenas() -> None:
    done = subprocess.run(
        [sys.executable, "-c", ARENAS_PROBE, "limited"], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True", "2"]  # the main heap and one more
    done = subprocess.run(
        [sys.executable, "-c", ARENAS_PROBE, "default"], capture_output=True, text=True, check=True
    )
    assert int(done.stdout.split()[1]) > 2  # glibc's own: a heap per thread
