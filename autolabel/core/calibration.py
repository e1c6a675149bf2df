"""Confidence of frames that only one keyframe's labels reach.

One-sided frames (before the first keyframe, after the last) have no second opinion, and their
top probability gets overconfident with distance. Their confidence is read from a table of the
accuracy that keyframe-to-keyframe propagations (one-sided by nature) had in training, per
confidence bin and distance bin.
"""
from __future__ import annotations

import numpy as np

CONFIDENCE_BINS = 10
DISTANCE_EDGES = np.array([5, 15, 25])
CALIBRATION_PRIOR = 1000.0  # pixels of "as confident as it says" that every table cell starts with


class Calibration:
    """Accuracy of one-sided propagations per (confidence bin, distance bin), from pixel counts."""

    def __init__(self, correct=None, count=None):
        shape = (CONFIDENCE_BINS, len(DISTANCE_EDGES) + 1)
        self.correct = np.zeros(shape) if correct is None else np.asarray(correct, np.float64).reshape(shape)
        self.count = np.zeros(shape) if count is None else np.asarray(count, np.float64).reshape(shape)

    @staticmethod
    def _bins(confidence: np.ndarray) -> np.ndarray:
        return np.minimum((confidence * CONFIDENCE_BINS).astype(np.int64), CONFIDENCE_BINS - 1)

    def add(self, confidence: np.ndarray, correct: np.ndarray, distance: int) -> None:
        column = int(np.searchsorted(DISTANCE_EDGES, distance, side="right"))
        bins = self._bins(confidence).ravel()
        self.count[:, column] += np.bincount(bins, minlength=CONFIDENCE_BINS)
        self.correct[:, column] += np.bincount(bins, weights=correct.ravel(), minlength=CONFIDENCE_BINS)

    def __call__(self, confidence: np.ndarray, distance: int) -> np.ndarray:
        column = int(np.searchsorted(DISTANCE_EDGES, distance, side="right"))
        middle = (np.arange(CONFIDENCE_BINS) + 0.5) / CONFIDENCE_BINS
        accuracy = (self.correct[:, column] + CALIBRATION_PRIOR * middle) / (self.count[:, column] + CALIBRATION_PRIOR)
        # within a bin, keep the order of the raw confidences: shift them by the bin's correction
        return np.clip(confidence + (accuracy - middle)[self._bins(confidence)], 0, 1).astype(np.float32)

    def as_lists(self) -> dict:
        return {"correct": self.correct.round().astype(int).tolist(), "count": self.count.astype(int).tolist()}
