"""Carry per-pixel quantities along optical flow, and say where that can be trusted.

Warping pulls: out[y, x] = image[y + flow[y, x, 1], x + flow[y, x, 0]], with
`flow` pointing from the target frame into the source frame. So propagating
frame t -> t+1 uses the flow t+1 -> t, and the flow t -> t+1 checks it.
"""
from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class SamplingMaps:
    """Where each target pixel samples the source, ready for cv2.remap.

    Fixed-point maps (1/32 px, what remap uses internally anyway) are converted
    once per flow and shared by every quantity warped along it.
    """
    map_xy: np.ndarray    # HxWx2 int16: integer sample position
    map_frac: np.ndarray  # HxW uint16: sub-pixel interpolation table index
    outside: np.ndarray | None  # HxW bool: the sample lands outside the source frame (dropped once used)


def sampling_maps(flow: np.ndarray) -> SamplingMaps:
    xs, ys = _grid(*flow.shape[:2])
    map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
    height, width = flow.shape[:2]
    outside = (map_x < 0) | (map_x > width - 1) | (map_y < 0) | (map_y > height - 1)
    map_xy, map_frac = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
    return SamplingMaps(map_xy, map_frac, outside)


def warp(image: np.ndarray, flow: np.ndarray, maps: SamplingMaps | None = None) -> np.ndarray:
    """Pull `image` (HxW or HxWxC float32) along `flow`; keeps the channel axis."""
    maps = maps if maps is not None else sampling_maps(flow)
    warped = cv2.remap(image, maps.map_xy, maps.map_frac, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped.reshape(image.shape)


def _squared_norm(vectors: np.ndarray) -> np.ndarray:
    return vectors[..., 0] ** 2 + vectors[..., 1] ** 2


def consistency(flow_pull: np.ndarray, flow_push: np.ndarray, maps: SamplingMaps | None = None) -> np.ndarray:
    """Per-pixel trust in [0, 1] of pulling along `flow_pull` (target -> source).

    `flow_push` is the opposite flow (source -> target): following one and then
    the other should come back home. Pixels whose pull lands outside the frame
    get 0 (their content was not visible in the source).
    """
    maps = maps if maps is not None else sampling_maps(flow_pull)
    push_at_source = warp(flow_push, flow_pull, maps)
    scale = _squared_norm(flow_pull)
    scale += _squared_norm(push_at_source)
    scale *= ALPHA
    scale += BETA
    push_at_source += flow_pull  # the round trip's miss
    exponent = _squared_norm(push_at_source)
    exponent /= scale
    np.negative(exponent, out=exponent)
    trust = cv2.exp(exponent, exponent)
    trust[maps.outside] = 0.0
    return trust


def carry(probs: np.ndarray, reliability: np.ndarray, flow_pull: np.ndarray, trust: np.ndarray,
          decay: float, maps=None):
    """One propagation step: probabilities and reliability pulled along the flow with the
    same sampling maps.

    Reliability multiplies in this step's trust and a constant decay, so it falls
    with distance from the keyframe and never recovers after an occlusion.
    """
    maps = maps if maps is not None else sampling_maps(flow_pull)
    probs = warp(probs, flow_pull, maps)
    reliability = warp(reliability, flow_pull, maps)
    reliability *= trust
    reliability *= decay
    return probs, reliability
