"""overlay.mp4: frames written one by one, in H.264 where the OpenCV build has an encoder for it (browsers
play it in a <video> tag), else MPEG-4 Part 2, which every OpenCV build writes; `codec` says which."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ...io.native_output import captured_stderr

MAX_WIDTH = 1280   # wider frames are scaled down: the video is for looking, not for measuring
CODECS = (("avc1", "H.264"), ("mp4v", "MPEG-4 Part 2"))


def video_width(width: int) -> int:
    """Even (the codec needs it) and at most MAX_WIDTH."""
    return min(width, MAX_WIDTH) // 2 * 2


class VideoOut:
    def __init__(self, path: Path, width: int, height: int, fps: float):
        self.size = (width // 2 * 2, height // 2 * 2)
        self.path = path
        for fourcc, self.codec in CODECS:
            with captured_stderr():  # FFmpeg's own lines about encoders this build lacks
                self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, self.size)
            if self._writer.isOpened():
                break
        else:
            raise OSError(f"{path}: OpenCV cannot write mp4 video here")

    def write(self, rgb: np.ndarray) -> None:
        frame = rgb[: self.size[1], : self.size[0]]
        self._writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self._writer.release()
