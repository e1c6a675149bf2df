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


def fuse(first: Side, second: Side | None = None, *, by_reliability: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(probs, reliability) at the frame; `by_reliability=False` is plain distance weighting."""
    if second is None:
        return first.probs, first.reliability
    total = first.distance + second.distance
    near_first, near_second = second.distance / total, first.distance / total
    if by_reliability:
        w_first = first.reliability + DISTANCE_WEIGHT * near_first
        w_second = second.reliability + DISTANCE_WEIGHT * near_second
    else:
        w_first = np.full(first.reliability.shape, near_first, np.float32)
        w_second = np.full(first.reliability.shape, near_second, np.float32)
    norm = w_first + w_second
    probs = first.probs * (w_first / norm)[..., None]
    probs += second.probs * (w_second / norm)[..., None]
    # Either side being trustworthy is enough for the fused label to be.
    reliability = 1.0 - (1.0 - first.reliability) * (1.0 - second.reliability)
    return probs, reliability


def label_and_confidence(probs: np.ndarray, reliability: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Winning channel per pixel and the probability that it is right."""
    channel = probs.argmax(axis=2)
    top = np.take_along_axis(probs, channel[..., None], axis=2)[..., 0]
    return channel, top
