"""float16 in and out at the speed of the CPU's conversion instructions.

numpy converts float16 element by element (about 10x slower than OpenCV's vectorised
conversion); the two round identically (to nearest, ties to even), which
tests/test_warp.py checks, so the faster one changes no output. OpenCV 5 dropped
`convertFp16`: there numpy does it.
"""
from __future__ import annotations

import cv2
import numpy as np


FAST = hasattr(cv2, "convertFp16")


def to_half(array: np.ndarray) -> np.ndarray:
    """float32 -> float16, same shape."""
    if not FAST:
        return np.asarray(array, np.float32).astype(np.float16)
    return cv2.convertFp16(np.ascontiguousarray(array, np.float32)).reshape(array.shape).view(np.float16)


def to_single(array: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float16 -> float32, same shape (into `out` if given)."""
    if not FAST:
        if out is None:
            return np.asarray(array, np.float16).astype(np.float32)
        out.reshape(array.shape)[...] = array
        return out.reshape(array.shape)
    return cv2.convertFp16(np.ascontiguousarray(array).view(np.int16), dst=out).reshape(array.shape)
