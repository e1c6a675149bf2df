"""Synthetic clips on disk and on demand: the DAVIS palette, `write_clip`, and `LongClip`."""
from __future__ import annotations

import pathlib

import cv2
import numpy as np
from PIL import Image

from ...io.labels import davis_palette
from .scenes import SyntheticClip
from .textures import _fractal_noise

LABEL_FORMATS = ("palette", "gray", "binary")


def write_clip(clip: SyntheticClip, root, label_format: str = "palette") -> pathlib.Path:
    """Write root/frames/00000.png... (RGB) and root/labels/00000.png... ; return root."""
    if label_format not in LABEL_FORMATS:
        raise ValueError(f"label_format must be one of {LABEL_FORMATS}, got {label_format!r}")
    root = pathlib.Path(root)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for index, (frame, label) in enumerate(zip(clip.frames, clip.labels)):
        name = f"{index:05d}.png"
        Image.fromarray(frame).save(root / "frames" / name)
        _label_image(label, label_format).save(root / "labels" / name)
    return root


def _label_image(label: np.ndarray, label_format: str) -> Image.Image:
    if label_format == "binary":
        return Image.fromarray(np.where(label > 0, 255, 0).astype(np.uint8))
    image = Image.fromarray(label)
    if label_format == "palette":
        image.putpalette(davis_palette())  # turns the "L" image into "P" with ids kept
    return image


class LongClip:
    """A clip of any length and size, rendered on demand (FrameSource interface).

    For memory benchmarks: a camera pans over a textured canvas holding a few
    labeled blobs, so frames need no storage and labels are exact.
    """

    def __init__(self, n_frames: int, height: int = 1080, width: int = 1920, seed: int = 0,
                 step: tuple[int, int] = (3, 1)):
        rng = np.random.default_rng(seed)
        self.n_frames, self.height, self.width, self.step = n_frames, height, width, step
        pad = 2 * max(height, width)
        canvas_shape = (height + pad, width + pad)
        self._canvas = np.clip(
            128 + 40 * np.dstack([_fractal_noise(rng, canvas_shape, 24) for _ in range(3)]), 0, 255
        ).astype(np.uint8)
        self._labels = np.zeros(canvas_shape, np.uint8)
        for object_id in range(1, 4):
            center = (int(rng.integers(0, canvas_shape[1])), int(rng.integers(0, canvas_shape[0])))
            axes = (int(rng.integers(height // 8, height // 3)), int(rng.integers(height // 8, height // 3)))
            cv2.ellipse(self._labels, center, axes, 0, 0, 360, object_id, -1)
        self.stems = [f"{i:06d}" for i in range(n_frames)]

    def __len__(self) -> int:
        return self.n_frames

    def _window(self, index: int) -> tuple[slice, slice]:
        # The camera sweeps back and forth so any length stays inside the canvas.
        span_x = self._canvas.shape[1] - self.width
        span_y = self._canvas.shape[0] - self.height
        x = abs((index * self.step[0]) % (2 * span_x) - span_x)
        y = abs((index * self.step[1]) % (2 * span_y) - span_y)
        return slice(y, y + self.height), slice(x, x + self.width)

    def read(self, index: int) -> np.ndarray:
        rows, cols = self._window(index)
        return np.ascontiguousarray(self._canvas[rows, cols])

    def label(self, index: int) -> np.ndarray:
        rows, cols = self._window(index)
        return np.ascontiguousarray(self._labels[rows, cols])

    def frame_name(self, index: int) -> str:
        return f"frame {index}"

    def close(self) -> None:
        pass
