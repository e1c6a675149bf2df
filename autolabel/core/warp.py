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

from .memory import scratch

# Forward-backward check of Sundaram et al. (ECCV 2010), made soft: a round trip
# that misses by more than ALPHA * |motion|^2 + BETA px^2 is most likely occluded.
ALPHA = 0.01
BETA = 0.5
# Channels per OpenCV call: OpenCV 4 takes 512 (CV_CN_MAX); 5 fails from 129 (boxFilter, resize) and from
# 256 (remap with fixed-point maps).
MAX_CHANNELS = 128


def by_channels(function, image: np.ndarray, most: int = MAX_CHANNELS) -> np.ndarray:
    """`function` (an OpenCV call that treats channels alike) of an HxWxC image with any number of
    channels: in chunks of `most` channels where there are more, else in one call as before."""
    if image.ndim < 3 or image.shape[2] <= most:
        return function(image)
    parts = [function(np.ascontiguousarray(image[..., first:first + most]))
             for first in range(0, image.shape[2], most)]
    return np.concatenate([part.reshape(*part.shape[:2], -1) for part in parts], axis=2)


@lru_cache(maxsize=4)
def _grid(height: int, width: int) -> np.ndarray:
    """HxWx2 float32 (x, y) of every pixel."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return np.dstack([xs, ys])


@dataclass
class SamplingMaps:
    """Where each target pixel samples the source, ready for cv2.remap.

    Fixed-point maps (1/32 px, what remap uses internally anyway) are converted
    once per flow and shared by every quantity warped along it.
    """
    map_xy: np.ndarray    # HxWx2 int16: integer sample position (the top-left of the four pixels blended)
    map_frac: np.ndarray  # HxW uint16: sub-pixel interpolation table index
    inside: np.ndarray | None  # HxW uint8: 255 where the sample lands inside the source frame, else 0

    @property
    def outside(self) -> np.ndarray:
        return self.inside == 0


def sampling_maps(flow: np.ndarray, with_inside: bool = True) -> SamplingMaps:
    """Maps for pulling along `flow`; `with_inside=False` skips what only `consistency` needs."""
    height, width = flow.shape[:2]
    map_xy = np.add(_grid(height, width), flow, out=scratch("map", flow.shape, np.float32))
    inside = cv2.inRange(map_xy, (0, 0), (width - 1, height - 1)) if with_inside else None
    map_xy, map_frac = cv2.convertMaps(map_xy, None, cv2.CV_16SC2)
    return SamplingMaps(map_xy, map_frac, inside)


def warp(image: np.ndarray, flow: np.ndarray, maps: SamplingMaps | None = None) -> np.ndarray:
    """Pull `image` (HxW or HxWxC, any number of channels) along `flow`; keeps the channel axis.
    The result has the maps' size (the image's, unless `maps` are given for other points)."""
    maps = maps if maps is not None else sampling_maps(flow)
    warped = by_channels(lambda part: cv2.remap(part, maps.map_xy, maps.map_frac, cv2.INTER_LINEAR,
                                                borderMode=cv2.BORDER_REPLICATE), image)
    return warped.reshape(*maps.map_xy.shape[:2], *image.shape[2:])


def _squared_norm(vectors: np.ndarray, out: np.ndarray) -> np.ndarray:
    squares = cv2.multiply(vectors, vectors, dst=scratch("squares", vectors.shape, np.float32))
    return np.add(squares[..., 0], squares[..., 1], out=out)


def consistency(flow_pull: np.ndarray, flow_push: np.ndarray, maps: SamplingMaps | None = None) -> np.ndarray:
    """Per-pixel trust in [0, 1] of pulling along `flow_pull` (target -> source).

    `flow_push` is the opposite flow (source -> target): following one and then
    the other should come back home. Pixels whose pull lands outside the frame
    get 0 (their content was not visible in the source).
    """
    maps = maps if maps is not None else sampling_maps(flow_pull)
    size = flow_pull.shape[:2]
    push_at_source = cv2.remap(flow_push, maps.map_xy, maps.map_frac, cv2.INTER_LINEAR,
                               dst=scratch("push_at_source", flow_push.shape, np.float32),
                               borderMode=cv2.BORDER_REPLICATE)
    scale = _squared_norm(flow_pull, scratch("scale", size, np.float32))
    scale += _squared_norm(push_at_source, scratch("term", size, np.float32))
    scale *= ALPHA
    scale += BETA
    push_at_source += flow_pull  # the round trip's miss
    exponent = _squared_norm(push_at_source, scratch("term", size, np.float32))
    exponent = cv2.divide(exponent, scale, dst=exponent, scale=-1)
    trust = cv2.exp(exponent, exponent)
    return cv2.bitwise_and(trust, trust, mask=maps.inside)  # 0 where the pull leaves the frame


@dataclass
class SoftLabels:
    """Byte probabilities (x255) over `n_channels` channels per pixel, kept sparsely.

    Carried labels are certain (255 on one channel, 0 on the others) nearly everywhere but in
    bands along boundaries, so only those pixels keep their probabilities as rows; every pixel
    keeps its most likely channel. `dense()` is the HxWxC uint8 array this stands for, and
    warping it (`carry`) gives exactly what warping that array with cv2.remap would give.
    """
    label: np.ndarray    # HxW: the most likely channel (ties: the lowest), uint8/uint16/int32
    certain: np.ndarray  # HxW bool: exactly 255 on `label` and 0 on every other channel
    open: np.ndarray     # flat indices (ascending) of the other pixels
    rows: np.ndarray     # len(open) x n_channels uint8: their probabilities
    n_channels: int

    @classmethod
    def certain_of(cls, channels: np.ndarray, n_channels: int) -> "SoftLabels":
        """A keyframe: every pixel certain of its channel."""
        label = channels.astype(_label_dtype(n_channels))
        return cls(label, np.ones(label.shape, bool), np.zeros(0, np.intp), np.zeros((0, n_channels), np.uint8),
                   n_channels)

    @classmethod
    def from_dense(cls, probs: np.ndarray) -> "SoftLabels":
        """From HxWxC byte probabilities."""
        n = probs.shape[2]
        flat = probs.reshape(-1, n)
        label = flat.argmax(axis=1)
        certain = (flat[np.arange(len(flat)), label] == 255) & (flat.sum(axis=1, dtype=np.int64) == 255)
        open_ = np.flatnonzero(~certain)
        return cls(label.astype(_label_dtype(n)).reshape(probs.shape[:2]), certain.reshape(probs.shape[:2]),
                   open_, flat[open_], n)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*self.label.shape, self.n_channels)

    def dense(self) -> np.ndarray:
        if self.n_channels <= 4096:  # rows of a one-hot table: ~10x faster than comparing every channel
            probs = np.take(np.eye(self.n_channels, dtype=np.uint8) * np.uint8(255), self.label, axis=0)
        else:  # the table would not fit
            probs = np.equal(self.label[..., None], np.arange(self.n_channels, dtype=self.label.dtype)).view(np.uint8)
            probs *= np.uint8(255)
        probs.reshape(-1, self.n_channels)[self.open] = self.rows
        return probs

    def winner(self) -> tuple[np.ndarray, np.ndarray]:
        """(channel, byte probability) of the most likely channel per pixel, flat."""
        value = np.full(self.label.size, 255, np.uint8)
        value[self.open] = self.rows.max(axis=1)
        return self.label.reshape(-1), value

    def at(self, channels: np.ndarray | int, pixels: np.ndarray | None = None) -> np.ndarray:
        """The byte probability of `channels` (one per pixel, or one for all) at `pixels` (flat indices,
        ascending; default every pixel), flat."""
        label = self.label.reshape(-1) if pixels is None else self.label.reshape(-1)[pixels]
        value = (label == channels).view(np.uint8) * np.uint8(255)
        where, rows = (self.open, self.rows) if pixels is None else self._rows_among(pixels)
        chosen = channels if np.ndim(channels) == 0 else channels[where]
        value[where] = rows[np.arange(len(where)), chosen]
        return value

    def _rows_among(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `pixels` of the open ones, their rows)."""
        if len(self.open) == 0:
            return np.zeros(0, np.intp), self.rows
        position = np.searchsorted(self.open, pixels).clip(0, len(self.open) - 1)
        where = np.flatnonzero(self.open[position] == pixels)
        return where, self.rows[position[where]]


def _label_dtype(n_channels: int):
    return np.uint8 if n_channels <= 256 else np.uint16 if n_channels <= 2**16 else np.int32


def _pull_nearest(image: np.ndarray, maps: SamplingMaps) -> np.ndarray:
    """image[the top-left pixel each target pixel blends] for an HxW array of 1, 2 or 4-byte items."""
    lanes = image.view(np.int16).reshape(*image.shape, 2) if image.itemsize == 4 else image
    pulled = cv2.remap(lanes, maps.map_xy, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    return pulled.reshape(lanes.shape).view(image.dtype).reshape(image.shape)


def _blend_rows(probs: SoftLabels, maps: SamplingMaps, pixels: np.ndarray) -> np.ndarray:
    """cv2.remap's bilinear blend of `probs` at the target `pixels` (flat indices), as rows.

    Each pixel's four source neighbours (clamped at the edges, as BORDER_REPLICATE does) are laid
    out as a 2x2 block of a small image, which remap blends with the pixel's own sub-pixel weights:
    the same arithmetic on the same bytes, so the same result, for a cost that grows with the
    number of `pixels` instead of the frame.
    """
    height, width = probs.label.shape
    n, count = probs.n_channels, len(pixels)
    per_row = min(count, 2048)  # remap's int16 maps address the small image
    rows_of_blocks = -(-count // per_row)
    blocks = np.zeros((rows_of_blocks * 2 * per_row * 2, n), np.uint8)
    x0 = maps.map_xy[..., 0].reshape(-1)[pixels].astype(np.intp)
    y0 = maps.map_xy[..., 1].reshape(-1)[pixels].astype(np.intp)
    block = np.arange(count)
    block = block // per_row * (4 * per_row) + block % per_row * 2  # where each pixel's block starts
    corners = [(np.clip(y0 + dy, 0, height - 1) * width + np.clip(x0 + dx, 0, width - 1), block + dy * 2 * per_row + dx)
               for dy in (0, 1) for dx in (0, 1)]
    source, at = (np.concatenate(parts) for parts in zip(*corners))
    sure = probs.certain.reshape(-1)[source]
    blocks[at[sure], probs.label.reshape(-1)[source[sure]]] = 255
    unsure = ~sure
    row_of = scratch("row_of", (height * width,), np.intp)  # read only where written: at the open pixels
    row_of[probs.open] = np.arange(len(probs.open))
    blocks[at[unsure]] = probs.rows[row_of[source[unsure]]]
    blocks = blocks.reshape(2 * rows_of_blocks, 2 * per_row, n)
    at_x, at_y = np.meshgrid(np.arange(0, 2 * per_row, 2, dtype=np.int16),
                             np.arange(0, 2 * rows_of_blocks, 2, dtype=np.int16))
    block_maps = SamplingMaps(np.dstack([at_x, at_y]), np.zeros(rows_of_blocks * per_row, np.uint16), None)
    block_maps.map_frac[:count] = maps.map_frac.reshape(-1)[pixels]
    block_maps.map_frac = block_maps.map_frac.reshape(rows_of_blocks, per_row)
    return warp(blocks, None, block_maps).reshape(-1, n)[:count]


def warp_labels(probs: SoftLabels, maps: SamplingMaps) -> SoftLabels:
    """`probs` pulled along the flow of `maps`, exactly as cv2.remap would pull `probs.dense()`.

    A target pixel whose four source neighbours are all certain of one channel is certain of
    it (the blend's weights sum to one exactly); only the others are blended channel by channel.
    """
    n = probs.n_channels
    # A source pixel "agrees" when it and its right, lower and lower-right neighbours are certain of one channel.
    key = np.where(probs.certain, probs.label, np.array(n, _label_dtype(n + 1)))
    agrees = key != n
    agrees[:, :-1] &= key[:, :-1] == key[:, 1:]
    agrees[:-1, :] &= key[:-1, :] == key[1:, :]
    agrees[:-1, :-1] &= key[:-1, :-1] == key[1:, 1:]
    label = _pull_nearest(probs.label, maps)
    certain = _pull_nearest(agrees.view(np.uint8), maps).view(bool)
    pixels = np.flatnonzero(~certain)
    if len(pixels) == 0:
        return SoftLabels(label, certain, pixels, np.zeros((0, n), np.uint8), n)
    rows = _blend_rows(probs, maps, pixels)
    best = rows.argmax(axis=1)
    one_hot = (rows[np.arange(len(pixels)), best] == 255) & (rows.sum(axis=1, dtype=np.int64) == 255)
    label.reshape(-1)[pixels] = best
    certain.reshape(-1)[pixels[one_hot]] = True
    return SoftLabels(label, certain, pixels[~one_hot], rows[~one_hot], n)


def carry(probs: SoftLabels, reliability: np.ndarray, trust: np.ndarray, decay: float,
          maps: SamplingMaps) -> tuple[SoftLabels, np.ndarray]:
    """One propagation step: probabilities and reliability pulled along the flow of `maps`.

    Reliability multiplies in this step's trust and a constant decay, so it falls
    with distance from the keyframe and never recovers after an occlusion.
    """
    probs = warp_labels(probs, maps)
    reliability = warp(reliability, None, maps)
    reliability *= trust
    reliability *= decay
    return probs, reliability
