"""Give freed frame-sized arrays back to the operating system.

glibc serves allocations below its mmap threshold from the heap, and raises that threshold
(up to 32 MB) each time a larger mapped block is freed. A pipeline that allocates and frees
arrays of a few MB per frame then ends up serving them all from the heap, which fragments:
resident memory creeps up over a long clip though the live arrays do not. A fixed 8 MB
threshold maps every frame-sized float array of large video (1080p and up) on its own and
unmaps it when freed. Not lower: every mapping costs page faults when first written, and at
1 MB they made a 854x480 clip about 20% slower (15x the page faults) for no memory gain.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import threading

import numpy as np

M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
THRESHOLD = 8 * 2**20


@functools.cache
def map_large_arrays() -> None:
    """Fix glibc's mmap threshold at 8 MB (once per process; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).mallopt(M_MMAP_THRESHOLD, THRESHOLD)
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        pass


_scratch = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array to reuse for the temporary `name` (per thread; one size at a time).

    With large arrays mapped on their own, every fresh frame-sized temporary costs its page
    faults again (a third of the forward-backward check's time on 2048x1024 frames); a
    temporary that never leaves its function can reuse the same pages instead.
    """
    buffers = _scratch.__dict__.setdefault("buffers", {})
    buffer = buffers.get(name)
    if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
        buffer = buffers[name] = np.empty(shape, dtype)
    return buffer
