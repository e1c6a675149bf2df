"""Give freed frame-sized arrays back to the operating system.

glibc serves allocations below its mmap threshold from the heap, and raises that threshold
(up to 32 MB) each time a larger mapped block is freed. A pipeline that allocates and frees
arrays of a few MB per frame then ends up serving them all from the heap, which fragments:
resident memory creeps up over a long clip though the live arrays do not. A fixed 1 MB
threshold maps every large array on its own and unmaps it when freed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
THRESHOLD = 2**20


@functools.cache
def map_large_arrays() -> None:
    """Fix glibc's mmap threshold at 1 MB (once per process; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).mallopt(M_MMAP_THRESHOLD, THRESHOLD)
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        pass
