"""Combine the propagations from the keyframes on both sides of a frame, and score them.

Each side brings soft label probabilities and a per-pixel reliability (how much
of the way from its keyframe the warp stayed trustworthy). Weighting by
reliability lets the side that saw a region keep it where the other side's warp
ran through an occlusion; distance only breaks ties where neither is reliable.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Weight of plain distance weighting, so pixels unreliable from both sides still
# get the nearer keyframe's label.
DISTANCE_WEIGHT = 1e-3


@dataclass
class Side:
    """One keyframe's propagation arriving at a frame."""
    probs: np.ndarray        # HxWxC float32, sums to 1 over C
    reliability: np.ndarray  # HxW float32 in [0, 1]
    distance: int            # frames from its keyframe
    photo_error: np.ndarray | None = None  # HxW: |carried keyframe image - frame|, when refining


def weight_of_first(first: Side, second: Side, by_reliability: bool = True) -> np.ndarray:
    """Per-pixel share in [0, 1] of the first side; `by_reliability=False` is distance alone."""
    near_first = second.distance / (first.distance + second.distance)
    if not by_reliability:
        return np.full(first.reliability.shape, near_first, np.float32)
    w_first = first.reliability + DISTANCE_WEIGHT * near_first
    w_second = second.reliability + DISTANCE_WEIGHT * (1 - near_first)
    return w_first / (w_first + w_second)


def fuse(first: Side, second: Side | None = None, *, by_reliability: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(probs, reliability) at the frame from one or two sides."""
    if second is None:
        return first.probs, first.reliability
    share = weight_of_first(first, second, by_reliability)
    # first * share + second * (1 - share), in two passes over the C channels
    probs = first.probs - second.probs
    probs *= share[..., None]
    probs += second.probs
    # Either side being trustworthy is enough for the fused label to be.
    reliability = 1.0 - (1.0 - first.reliability) * (1.0 - second.reliability)
    return probs, reliability


def fuse_photo_error(first: Side, second: Side | None = None, *, by_reliability: bool = True) -> np.ndarray:
    """Photometric error of the two sides, weighted as their labels are (for training samples)."""
    if second is None:
        return first.photo_error
    share = weight_of_first(first, second, by_reliability)
    return second.photo_error + share * (first.photo_error - second.photo_error)


def label_and_confidence(probs: np.ndarray, reliability: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Winning channel per pixel and the probability that it is right."""
    return probs.argmax(axis=2), probs.max(axis=2)
