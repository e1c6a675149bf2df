"""Synthetic clips on disk and on demand: the DAVIS palette, `write_clip`, and `LongClip`."""
from __future__ import annotations

import pathlib

import cv2
import numpy as np
from PIL import Image

from ..io.labels import davis_palette
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

    For memory benchmarks: a camera pans over a textured canvas holding labeled blobs of
    `n_classes` classes (0 is the background) on a grid that repeats within any frame-sized
    window, so that every frame shows every class when the frame holds enough grid cells
    (at 1920x1080, up to 19 classes). Frames need no storage and labels are exact.
    """

    def __init__(self, n_frames: int, height: int = 1080, width: int = 1920, seed: int = 0,
                 step: tuple[int, int] = (3, 1), n_classes: int = 4):
        if not 1 <= n_classes <= 256:
            raise ValueError("a long clip has 1 to 256 classes")
        rng = np.random.default_rng(seed)
        self.n_frames, self.height, self.width, self.step = n_frames, height, width, step
        pad = max(height, width) // 2
        canvas_shape = (height + pad, width + pad)
        self._canvas = np.empty(canvas_shape + (3,), np.uint8)
        for channel in range(3):  # one channel at a time: the float noise is 4x the canvas
            noise = _fractal_noise(rng, canvas_shape, 24)
            noise *= 40
            noise += 128
            np.clip(noise, 0, 255, out=self._canvas[..., channel], casting="unsafe")
        self._labels = np.zeros(canvas_shape, np.uint8)
        cell = max(8, min(height, width) // 4)
        columns = max(1, width // cell - 1)  # whole cells across any window
        for row in range(canvas_shape[0] // cell):
            for column in range(canvas_shape[1] // cell):
                class_id = 1 + (row * columns + column) % (n_classes - 1) if n_classes > 1 else 0
                center = (column * cell + cell // 2, row * cell + cell // 2)
                axes = tuple(int(a) for a in rng.integers(cell // 5, cell // 2, 2))
                cv2.ellipse(self._labels, center, axes, 0, 0, 360, class_id, -1)
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
