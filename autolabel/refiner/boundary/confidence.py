"""A clip's confidence, calibrated on its own round trips, so that it points at the errors.

The warp is sure of most pixels, and most of its errors lie within a few pixels of a label
boundary or where the flow lost track (low reliability): there a confidence of 0.99 is
wrong one time in ten. The round trips of a clip's keyframes (pipeline.Propagator) show how
often a label is right at each distance from its nearest boundary, reliability and
confidence; the refined confidence is scaled by how right over how sure it was there, so
pixels near boundaries and behind occlusions rank low, where the errors are. Labels are not changed.
"""
from __future__ import annotations

import cv2
import numpy as np

BOUNDARY_EDGES = np.array([1, 2, 3, 5, 8, 13, 21], np.float32)   # px to the nearest label boundary
RELIABILITY_EDGES = np.array([0.3, 0.7, 0.9], np.float32)
PRIOR = 50.0   # pixels' worth of the confidence itself in each cell: few samples keep it


def boundary_distance(channels: np.ndarray) -> np.ndarray:
    """Pixels from each pixel to the nearest pixel of another label (a large number where there is none)."""
    small = channels.astype(np.uint16)
    kernel = np.ones((3, 3), np.uint8)
    inside = (cv2.dilate(small, kernel) == cv2.erode(small, kernel)).view(np.uint8)
    return cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


class ConfidenceTable:
    """Per (boundary distance, reliability) cell: how often the label was right, and how sure the refiner
    said it was. A pixel's confidence is scaled by the ratio of the two in its cell: the ranking within
    a cell stays the refiner's own, and cells where it was too sure (near boundaries) sink."""

    def __init__(self):
        shape = (len(BOUNDARY_EDGES) + 1, len(RELIABILITY_EDGES) + 1)
        self.right, self.said, self.count = np.zeros(shape), np.zeros(shape), np.zeros(shape)

    def _cells(self, channels, reliability) -> np.ndarray:
        d = np.searchsorted(BOUNDARY_EDGES, boundary_distance(channels), side="right")
        r = np.searchsorted(RELIABILITY_EDGES, reliability, side="right")
        return np.ravel_multi_index((d, r), self.count.shape)

    def add(self, channels, confidence, reliability, target) -> None:
        cells = self._cells(channels, reliability).ravel()
        size = self.count.size
        self.count += np.bincount(cells, minlength=size).reshape(self.count.shape)
        self.said += np.bincount(cells, weights=confidence.ravel(), minlength=size).reshape(self.count.shape)
        self.right += np.bincount(cells, weights=(channels == target).ravel(), minlength=size).reshape(self.count.shape)

    def __bool__(self) -> bool:
        return bool(self.count.sum())

    def __call__(self, channels, confidence, reliability) -> np.ndarray:
        # PRIOR pixels as sure as they said and as right: a cell of few pixels keeps the confidence
        ratio = (self.right + PRIOR) / (self.said + PRIOR)
        calibrated = confidence * ratio.ravel()[self._cells(channels, reliability)]
        return np.minimum(calibrated, 1).astype(np.float32)
