"""The C heap of a process that allocates and frees large arrays over and over.

glibc serves every allocation above 32 MB with a fresh ``mmap`` and returns it with
``munmap`` when it is freed, so each large NumPy temporary is new memory whose pages are
faulted in (and zeroed by the kernel) one by one on first touch. On virtual machines a page
fault is expensive: 128 MB of fresh memory took 0.4 s to touch on the project's benchmark
machine, 8x the time to fill the same memory once touched. The lab draws and frees arrays
of this size for every partition and every weekly step, so a sixth of its CPU time went to
the kernel's page faults (``sys`` time).

:func:`keep_freed_memory` makes the heap serve large allocations too and keep what is freed
(up to :data:`KEEP_BYTES` at its top) for the next allocation. Peak memory stays where the
work puts it; what is freed is not handed back to the system until the process ends.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

KEEP_BYTES = 2**31 - 1
"""Freed memory at the top of the heap beyond this much is handed back to the system."""

_kept = False


def keep_freed_memory() -> bool:
    """Have this process's C heap (glibc) serve large allocations and keep freed memory for
    reuse; processes forked from it afterwards inherit the setting. Returns whether the
    setting is in force (False where the C library has no ``mallopt``, as on macOS, Windows
    or musl)."""
    global _kept
    if _kept:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _kept = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    return _kept
