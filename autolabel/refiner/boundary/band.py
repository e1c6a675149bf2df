"""Where the boundary network looks: the band around the base labels' boundaries, cut into crops.

The frame is divided into CELL x CELL cells; a cell with band pixels gets a CROP x CROP crop
centred on it (shifted to stay inside the frame) and is the only part of the crop written
back, so every pixel has exactly one crop and the result does not depend on the order of
the work. A crop holds one item per class that competes in it: the base label of one of its
pixels, or a class the warp gives some probability there. Crops are made in chunks, so
memory stays bounded on busy frames of many classes.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

CELL = 48
CROP = 64
RADIUS = 6             # band: pixels within this many of a base label boundary
COMPETES = 0.25        # a class competes in a crop where the warp gives it this much somewhere
CELLS_PER_CHUNK = 48


def band_mask(channels: np.ndarray, radius: int = RADIUS) -> np.ndarray:
    """Pixels within `radius` of a boundary of the label map `channels`."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    small = channels.astype(np.uint16)   # OpenCV's morphology takes up to 16-bit maps
    return cv2.dilate(small, kernel) != cv2.erode(small, kernel)


def band_cells(band: np.ndarray) -> np.ndarray:
    """(row, col) origins of the cells that hold band pixels, in raster order."""
    height, width = band.shape
    rows, cols = -(-height // CELL), -(-width // CELL)
    padded = np.zeros((rows * CELL, cols * CELL), bool)
    padded[:height, :width] = band
    touched = padded.reshape(rows, CELL, cols, CELL).any(axis=(1, 3))
    return np.argwhere(touched) * CELL


@dataclass
class Chunk:
    """Crops of a few cells: `rgb` per crop, and per item (a class in a crop) its crop, class and maps."""
    boxes: list[tuple[int, int]]          # (top, left) of each crop in the frame
    cells: list[tuple[int, int]]          # (row, col) origin of each crop's cell
    rgb: torch.Tensor                     # crops x 3 x CROP x CROP, float 0..255
    crop_of: torch.Tensor                 # items: index into the crops
    classes: torch.Tensor                 # items: the channel
    q: torch.Tensor                       # items x CROP x CROP: the base refiner's probability of the class
    warped: torch.Tensor                  # items x CROP x CROP: the fused warp's probability of the class
    reliability: torch.Tensor             # items x CROP x CROP
    band: torch.Tensor                    # items x CROP x CROP bool


def _box(origin: int, size: int) -> int:
    """Start of the crop holding the cell at `origin`, inside a dimension of `size` (>= CROP)."""
    return int(min(max(origin + CELL // 2 - CROP // 2, 0), size - CROP))


def padded_to_crop(image: np.ndarray) -> np.ndarray:
    """A frame-sized array padded (edge values, at the bottom and right) to at least CROP x CROP."""
    extra_rows, extra_cols = max(0, CROP - image.shape[0]), max(0, CROP - image.shape[1])
    if not (extra_rows or extra_cols):
        return image
    return np.pad(image, [(0, extra_rows), (0, extra_cols)] + [(0, 0)] * (image.ndim - 2), mode="edge")


def chunks(frame, channels, confidence, probs, reliability, band, n_channels: int, max_cells: int | None = None):
    """Chunk after Chunk over the band's cells (at most `max_cells`, evenly spaced). All maps are full
    size (already `padded_to_crop`); `channels`/`confidence`: the base refiner's label and its
    probability; `probs`: fused warp probabilities H x W x n_channels."""
    height, width = channels.shape
    spread = 1.0 / max(n_channels - 1, 1)
    cells = band_cells(band)
    if max_cells is not None and len(cells) > max_cells:
        cells = cells[np.linspace(0, len(cells) - 1, max_cells).round().astype(int)]
    for start in range(0, len(cells), CELLS_PER_CHUNK):
        boxes, kept, rgb, crop_of, classes, q, warped, trust, in_band = [], [], [], [], [], [], [], [], []
        for row, col in cells[start:start + CELLS_PER_CHUNK]:
            top, left = _box(row, height), _box(col, width)
            window = np.s_[top:top + CROP, left:left + CROP]
            label, sure = channels[window], confidence[window]
            competing = np.union1d(np.unique(label), np.flatnonzero(probs[window].reshape(-1, n_channels).max(0)
                                                                    >= COMPETES))
            crop = len(boxes)
            boxes.append((top, left))
            kept.append((int(row), int(col)))
            rgb.append(frame[window])
            for c in competing:
                crop_of.append(crop)
                classes.append(int(c))
                q.append(np.where(label == c, sure, (1 - sure) * spread))
                warped.append(probs[window][..., c])
                trust.append(reliability[window])
                in_band.append(band[window])
        yield Chunk(boxes, kept, torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).float(),
                    torch.tensor(crop_of), torch.tensor(classes),
                    *(torch.from_numpy(np.stack(a).astype(np.float32)) for a in (q, warped, trust)),
                    torch.from_numpy(np.stack(in_band)))
