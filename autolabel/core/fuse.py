"""Combine the propagations from the keyframes on both sides of a frame, and score them.

Each side brings soft label probabilities and a per-pixel reliability (how much
of the way from its keyframe the warp stayed trustworthy). Weighting by
reliability lets the side that saw a region keep it where the other side's warp
ran through an occlusion; distance only breaks ties where neither is reliable.

In the pipeline a side is carried as byte probabilities (x255, `warp.SoftLabels`), and the
left keyframe's side waits for the right one's as `TopChannels`: its two most likely
channels per pixel. That is all fusion needs: the fused winner is one of those two or
the right side's own winner, so no HxWxC float array is ever built unless a refiner
asks for the fused probabilities.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .half import to_half, to_single
from .memory import scratch
from .warp import SoftLabels

# Weight of plain distance weighting, so pixels unreliable from both sides still
# get the nearer keyframe's label.
DISTANCE_WEIGHT = 1e-3
KEPT = 2  # channels per pixel a waiting side keeps


def share_of_first(first_reliability, second_reliability, first_distance: int, second_distance: int,
                   by_reliability: bool = True) -> np.ndarray:
    """Per-pixel share in [0, 1] of the first side; `by_reliability=False` is distance alone."""
    near_first = second_distance / (first_distance + second_distance)
    if not by_reliability:
        return np.full(np.shape(first_reliability), near_first, np.float32)
    # A waiting side keeps float16; numpy's own conversion inside np.add is ~10x slower.
    first_reliability, second_reliability = (to_single(r) if r.dtype == np.float16 else r
                                             for r in (first_reliability, second_reliability))
    w_first = np.add(first_reliability, DISTANCE_WEIGHT * near_first, dtype=np.float32)
    w_second = np.add(second_reliability, DISTANCE_WEIGHT * (1 - near_first), dtype=np.float32,
                      out=scratch("w_second", np.shape(second_reliability), np.float32))
    w_second += w_first
    w_first /= w_second
    return w_first


def either_reliable(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Either side being trustworthy is enough for the fused label to be."""
    return 1.0 - (1.0 - to_single(first)) * (1.0 - second)


@lru_cache(maxsize=2)
def _row_starts(pixels: int, channels: int) -> np.ndarray:
    return np.arange(0, pixels * channels, channels, dtype=np.intp)


@dataclass
class TopChannels:
    """A side waiting for the other one, compactly: its KEPT most likely channels per pixel and
    their byte probabilities, reliability as float16."""
    channels: np.ndarray | None  # HxWxKEPT ints; None: the side has at most KEPT channels, all kept in order
    probs: np.ndarray            # HxWxKEPT uint8 (x255)
    reliability: np.ndarray      # HxW float16
    distance: int

    @classmethod
    def of(cls, probs: SoftLabels, reliability: np.ndarray, distance: int) -> "TopChannels":
        kept = to_half(reliability)
        height, width, n = probs.shape
        if n <= KEPT:
            return cls(None, probs.dense(), kept, distance)
        first, p_first = probs.winner()
        # The runner-up, only where the winner is not certain: next to a 255 only rounding residue
        # (a 1 or so, from byte warping) can be left, and it is dropped.
        second, p_second = first.copy(), np.zeros_like(p_first)
        unsure = p_first[probs.open] != 255
        open_, rows = probs.open[unsure], probs.rows[unsure]
        rows[np.arange(len(open_)), first[open_]] = 0
        second[open_] = rows.argmax(axis=1)
        p_second[open_] = rows[np.arange(len(open_)), second[open_]]
        dtype = np.min_scalar_type(n - 1)
        channels = np.stack([first.astype(dtype), second.astype(dtype)], axis=1).reshape(height, width, KEPT)
        return cls(channels, np.stack([p_first, p_second], axis=1).reshape(height, width, KEPT), kept, distance)

    def prob_of(self, label: np.ndarray) -> np.ndarray:
        """The byte probability this side gives `label` (flat, one channel per pixel), flat; 0 if not kept."""
        value = np.zeros(label.shape, np.uint8)
        for channel, p in reversed(self.kept()):  # the first slot wins where both hold the channel
            np.copyto(value, p, where=channel == label)
        return value

    def kept(self) -> list[tuple[np.ndarray | int, np.ndarray]]:
        """(channel, byte probability) per kept slot, flat."""
        return [(k if self.channels is None else self.channels[..., k].reshape(-1),
                 self.probs[..., k].reshape(-1)) for k in range(self.probs.shape[2])]


def label_and_confidence(probs: SoftLabels, waiting: TopChannels | None = None, reliability=None,
                         distance: int = 0, by_reliability: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Winning channel per pixel and the probability that it is right, from one side's byte
    `probs` (with its `reliability` and `distance`), fused with the `waiting` side when there is one."""
    height, width = probs.shape[:2]
    if waiting is None:
        label, value = probs.winner()
        value = value.astype(np.float32)
    else:
        label = probs.label.reshape(-1).copy()
        share = share_of_first(waiting.reliability, reliability, waiting.distance, distance,
                               by_reliability).reshape(-1)
        rest = np.subtract(1, share, out=scratch("rest", share.shape, np.float32))
        kept = waiting.kept()
        # Where both sides are certain of one channel, no other can win and the value is both shares of 255
        # (the other kept slot adds 0): only the other pixels are fused channel by channel.
        agree = probs.certain.reshape(-1) & (waiting.prob_of(label) == 255)
        value = rest * np.float32(255)
        value += np.multiply(share, np.float32(255), out=scratch("fuse_term", share.shape, np.float32))
        pixels = np.flatnonzero(~agree)
        label[pixels], value[pixels] = _fuse_at(pixels, probs, label[pixels], kept, share[pixels], rest[pixels])
    np.minimum(value, 255, out=value)  # share + rest may round above 1
    value /= 255
    return label.reshape(height, width), value.reshape(height, width)


def _fuse_at(pixels, probs: SoftLabels, label, kept, share, rest) -> tuple[np.ndarray, np.ndarray]:
    """(label, value x255) at `pixels` of this side (`probs`, its `label` there) fused with the kept slots."""
    label = label.astype(np.intp)
    value = probs.at(label, pixels).astype(np.float32)
    value *= rest
    kept = [(channel if np.ndim(channel) == 0 else channel[pixels], p[pixels]) for channel, p in kept]
    for channel, p in kept:
        value += share * np.where(channel == label, p, 0)
    for channel, p in kept:
        candidate = share * p
        candidate += rest * probs.at(channel, pixels)
        better = (candidate > value) | ((candidate == value) & (channel < label))  # ties: lowest channel
        label = np.where(better, channel, label)
        value = np.where(better, candidate, value)
    return label, value


def fused_probs(probs: SoftLabels, reliability: np.ndarray, distance: int = 0, waiting: TopChannels | None = None,
                by_reliability: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(HxWxC float32 probabilities, HxW reliability) of one side's byte `probs`, fused with the
    `waiting` side when there is one: what a refiner works on."""
    probs = probs.dense()
    if waiting is None:
        return np.divide(probs, np.float32(255), dtype=np.float32), reliability.copy()
    share = share_of_first(waiting.reliability, reliability, waiting.distance, distance, by_reliability)
    fused = np.multiply(probs, ((1 - share) / 255)[..., None], dtype=np.float32)
    flat, starts = fused.reshape(-1), _row_starts(share.size, probs.shape[2])
    share = share.reshape(-1) / 255
    for channel, p in waiting.kept():
        flat[starts + channel] += share * p
    return fused, either_reliable(waiting.reliability, reliability)
