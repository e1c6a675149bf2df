"""Carry per-pixel quantities along optical flow, and say where that can be trusted.

Warping pulls: out[y, x] = image[y + flow[y, x, 1], x + flow[y, x, 0]], with
`flow` pointing from the target frame into the source frame. So propagating
frame t -> t+1 uses the flow t+1 -> t, and the flow t -> t+1 checks it.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

# Forward-backward check of Sundaram et al. (ECCV 2010), made soft: a round trip
# that misses by more than ALPHA * |motion|^2 + BETA px^2 is most likely occluded.
ALPHA = 0.01
BETA = 0.5


@lru_cache(maxsize=4)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs, ys


def sampling_maps(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = _grid(*flow.shape[:2])
    return xs + flow[..., 0], ys + flow[..., 1]


def warp(image: np.ndarray, flow: np.ndarray, maps=None) -> np.ndarray:
    """Pull `image` (HxW or HxWxC float32) along `flow`; keeps the channel axis."""
    map_x, map_y = maps if maps is not None else sampling_maps(flow)
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped.reshape(image.shape)


def consistency(flow_pull: np.ndarray, flow_push: np.ndarray, maps=None) -> np.ndarray:
    """Per-pixel trust in [0, 1] of pulling along `flow_pull` (target -> source).

    `flow_push` is the opposite flow (source -> target): following one and then
    the other should come back home. Pixels whose pull lands outside the frame
    get 0 (their content was not visible in the source).
    """
    maps = maps if maps is not None else sampling_maps(flow_pull)
    push_at_source = warp(flow_push, flow_pull, maps)
    round_trip = flow_pull + push_at_source
    error = np.einsum("hwc,hwc->hw", round_trip, round_trip)
    scale = ALPHA * (np.einsum("hwc,hwc->hw", flow_pull, flow_pull)
                     + np.einsum("hwc,hwc->hw", push_at_source, push_at_source)) + BETA
    trust = np.exp(-error / scale)
    height, width = flow_pull.shape[:2]
    map_x, map_y = maps
    outside = (map_x < 0) | (map_x > width - 1) | (map_y < 0) | (map_y > height - 1)
    trust[outside] = 0.0
    return trust.astype(np.float32, copy=False)


def carry(probs: np.ndarray, reliability: np.ndarray, flow_pull: np.ndarray, trust: np.ndarray,
          decay: float, image: np.ndarray | None = None, maps=None):
    """One propagation step: probabilities, reliability (and optionally the keyframe's
    image, for photometric checks) pulled along the flow with the same sampling maps.

    Reliability multiplies in this step's trust and a constant decay, so it falls
    with distance from the keyframe and never recovers after an occlusion.
    """
    maps = maps if maps is not None else sampling_maps(flow_pull)
    probs = warp(probs, flow_pull, maps)
    reliability = warp(reliability, flow_pull, maps)
    reliability *= trust
    reliability *= decay
    return probs, reliability, (warp(image, flow_pull, maps) if image is not None else None)
