"""Check the Python API's in-memory input (`autolabel.propagate`) as the CLI checks files: bad input
raises InputError with the same one-line messages, before any work."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..errors import InputError


def check_arrays(frames: Sequence, keyframes: Mapping[int, np.ndarray]) -> None:
    """Frames: HxWx3 uint8 RGB, all one size; keyframes: {frame index: HxW integer ids} of that size."""
    if len(frames) == 0:
        raise InputError("frames", "no frames")
    height, width = None, None
    for index, frame in enumerate(frames):
        frame = np.asarray(frame)
        shape, dtype = frame.shape, frame.dtype
        if len(shape) != 3 or shape[2] != 3 or dtype != np.uint8:
            raise InputError(f"frame {index}", f"frames are HxWx3 uint8 RGB arrays, this one is "
                             f"{'x'.join(map(str, shape))} {dtype}")
        if height is None:
            height, width = shape[:2]
        elif shape[:2] != (height, width):
            raise InputError(f"frame {index}", f"frame is {shape[1]}x{shape[0]}, the first frame is {width}x{height}")
    if not keyframes:
        raise InputError("keyframes", "no keyframes")
    for index, label in keyframes.items():
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(frames):
            raise InputError(f"keyframe {index!r}", f"matches no frame (frames are 0 … {len(frames) - 1})")
        label = np.asarray(label)
        if not np.issubdtype(label.dtype, np.integer):
            raise InputError(f"keyframe {index}", f"labels are integer ids, this one is {label.dtype}")
        if label.shape != (height, width):
            raise InputError(f"keyframe {index}", f"label is {'x'.join(map(str, label.shape[::-1]))} "
                             f"but frames are {width}x{height}")
