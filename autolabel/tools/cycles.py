"""Train the refiner without dense ground truth: cycle consistency on the user's keyframes.

For a labeled frame t, its label L_t is carried to t+k and back to t (or to t-k
and back) with exactly the machinery propagation uses (`warp.carry` along DIS
flow, forward-backward trust, decay, the keyframe image carried along for the
photometric error). The round trip damages the label the way real propagation
does, and L_t is the target. Where two labeled frames are within reach, the
label of one is also carried straight to the other (a real propagation with a
real target). Arrivals at the same frame are fused pairwise like the pipeline
fuses its two keyframes, so the refiner sees fused and one-sided inputs, of
every distance.

Only the labels handed in are used. Frames are worked on at a reduced size
(long side `--train-size`, 432 by default) with flow computed once per clip.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..core import fuse as fusion
from ..core.flow import FlowEstimator
from ..core.warp import carry, consistency

CYCLE_STEPS = (1, 2, 3, 5, 7, 10, 15)   # k of the round trips t -> t+-k -> t
DIRECT_REACH = 30                       # labeled frames this close are propagated to each other
DECAY = 0.97


@dataclass
class ArrivedSide:
    """A label propagation arriving at a labeled frame, stored compactly."""
    probs: np.ndarray        # HxWxC uint8 (x255)
    reliability: np.ndarray  # HxW float16
    photo_error: np.ndarray  # HxW float16
    distance: int

    def side(self) -> fusion.Side:
        return fusion.Side(self.probs.astype(np.float32) / 255, self.reliability.astype(np.float32),
                           self.distance, self.photo_error.astype(np.float32))


@dataclass
class TrainClip:
    name: str
    frames: list            # HxWx3 uint8 at training size
    labels: dict            # index -> HxW int64 channel ids (only the labels handed in)
    n_channels: int
    pull_forward: list = field(default_factory=list)   # t: (flow t+1->t, trust) to carry t -> t+1
    pull_backward: list = field(default_factory=list)  # t: (flow t->t+1, trust) to carry t+1 -> t


def resize_clip(frames, labels: dict, size: int):
    h, w = frames[0].shape[:2]
    scale = min(1.0, size / max(h, w))
    if scale == 1.0:
        return list(frames), dict(labels)
    dsize = (max(8, round(w * scale)), max(8, round(h * scale)))
    frames = [cv2.resize(f, dsize, interpolation=cv2.INTER_AREA) for f in frames]
    labels = {i: cv2.resize(l.astype(np.int32), dsize, interpolation=cv2.INTER_NEAREST).astype(np.int64)
              for i, l in labels.items()}
    return frames, labels


def prepare(name: str, frames, labels: dict, n_channels: int, size: int, flow_preset: str = "medium") -> TrainClip:
    """Downscale and compute both-direction flow + trust for every consecutive pair, once."""
    frames, labels = resize_clip(frames, labels, size)
    clip = TrainClip(name, frames, labels, n_channels)
    estimator = FlowEstimator("dis", flow_preset, 1.0)
    h, w = frames[0].shape[:2]
    grays = [estimator.gray(f) for f in frames]
    for t in range(len(frames) - 1):
        fwd, bwd = estimator.pair(grays[t], grays[t + 1], w, h)   # t->t+1, t+1->t
        clip.pull_forward.append((bwd, consistency(bwd, fwd)))
        clip.pull_backward.append((fwd, consistency(fwd, bwd)))
    return clip


def carry_along(clip: TrainClip, start: int, path: list[int]) -> ArrivedSide:
    """Carry the label of `start` through the frames of `path` (each a neighbour of the previous)."""
    label = clip.labels[start]
    probs = np.eye(clip.n_channels, dtype=np.float32)[label]
    reliability = np.ones(label.shape, np.float32)
    image = clip.frames[start].astype(np.float32) / 255
    here = start
    for there in path:
        flow, trust = clip.pull_forward[here] if there == here + 1 else clip.pull_backward[there]
        probs, reliability, image = carry(probs, reliability, flow, trust, DECAY, image)
        here = there
    photo_error = np.abs(image - clip.frames[here].astype(np.float32) / 255).mean(axis=2)
    return ArrivedSide(np.rint(probs * 255).astype(np.uint8), reliability.astype(np.float16),
                       photo_error.astype(np.float16), len(path))


def arrivals(clip: TrainClip, steps=CYCLE_STEPS, reach: int = DIRECT_REACH) -> list[tuple[int, list[ArrivedSide]]]:
    """(labeled frame, propagations arriving there) for every labeled frame of the clip."""
    n = len(clip.frames)
    out = []
    for t in sorted(clip.labels):
        sides = []
        for k in steps:
            if t + k < n:
                sides.append(carry_along(clip, t, list(range(t + 1, t + k + 1)) + list(range(t + k - 1, t - 1, -1))))
            if t - k >= 0:
                sides.append(carry_along(clip, t, list(range(t - 1, t - k - 1, -1)) + list(range(t - k + 1, t + 1))))
        for s in sorted(clip.labels):
            if s != t and abs(s - t) <= reach:
                step = 1 if t > s else -1
                sides.append(carry_along(clip, s, list(range(s + step, t + step, step))))
        out.append((t, sides))
    return out


class SampleBank:
    """All (target label, arrivals) groups; draws fused or one-sided random crops."""

    def __init__(self, clips: list[TrainClip], groups: list[list[tuple[int, list[ArrivedSide]]]]):
        self.items = [(ci, t, sides) for ci, clip_groups in enumerate(groups) for t, sides in clip_groups if sides]
        self.clips = clips

    def __len__(self):
        return len(self.items)

    def draw(self, rng: np.random.Generator, crop: int):
        ci, t, sides = self.items[rng.integers(len(self.items))]
        clip = self.clips[ci]
        h, w = clip.frames[t].shape[:2]
        ch, cw = min(crop, h), min(crop, w)
        y, x = rng.integers(h - ch + 1), rng.integers(w - cw + 1)
        cut = (slice(y, y + ch), slice(x, x + cw))
        picked = [sides[i] for i in rng.choice(len(sides), size=min(len(sides), 1 + (rng.random() < 0.7)),
                                                replace=False)]
        cropped = [fusion.Side(s.probs[cut].astype(np.float32) / 255, s.reliability[cut].astype(np.float32),
                               s.distance, s.photo_error[cut].astype(np.float32)) for s in picked]
        probs, reliability = fusion.fuse(*cropped)
        photo_error = fusion.fuse_photo_error(*cropped)
        probs = probs / np.maximum(probs.sum(axis=2, keepdims=True), 1e-6)
        frame = clip.frames[t][cut]
        target = clip.labels[t][cut]
        if rng.random() < 0.5:   # horizontal flip
            probs, reliability, photo_error = probs[:, ::-1], reliability[:, ::-1], photo_error[:, ::-1]
            frame, target = frame[:, ::-1], target[:, ::-1]
        distance = min(s.distance for s in picked)
        return frame, probs, reliability, photo_error, distance, target, clip


def build_bank(clips: list[tuple], train_size: int = 432) -> SampleBank:
    """Flow once per clip, then every propagation that arrives at a labeled frame."""
    prepared = [prepare(name, frames, labels, n_channels, train_size) for name, frames, labels, n_channels in clips]
    groups = [arrivals(c) for c in prepared]
    for clip in prepared:   # flows are no longer needed
        clip.pull_forward, clip.pull_backward = [], []
    return SampleBank(prepared, groups)
