"""The pipeline: read frames -> flow -> warp -> (refine) -> fuse -> labels + confidence.

The clip is cut at its keyframes into segments. A segment is walked twice: forward
in time carrying the left keyframe's labels, then backward carrying the right
keyframe's labels and fusing the two. Only one segment is ever held in memory (its
pull maps and forward results, compactly), so memory depends on the keyframe spacing
and frame size, never on the clip's length.
"""
from __future__ import annotations

import itertools
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Mapping

import cv2
import numpy as np

from . import fuse as fusion
from .flow import FlowEstimator, flow_pairs
from .warp import SamplingMaps, carry, consistency, sampling_maps


@dataclass(frozen=True)
class Settings:
    flow: str = "dis"                 # flow backend: dis | farneback
    flow_preset: str = "medium"       # ultrafast | fast | medium
    flow_scale: float = 1.0           # compute flow on frames scaled by this
    fusion: str = "reliability"       # reliability | distance (plain reference)
    decay: float = 0.97               # reliability kept per warp step (drift)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class FrameResult:
    index: int
    channels: np.ndarray        # HxW int: winning channel of the ClassSet
    confidence: np.ndarray      # HxW float32 in [0, 1]
    sources: tuple[int, ...]    # keyframe indices the label came from
    is_keyframe: bool = False


class ClassSet:
    """The ids seen in the keyframes, as probability channels; ignore is a channel of its own."""

    def __init__(self, ids, ignore_index: int | None = None, has_ignore: bool = False):
        self.ids = np.array(sorted(set(int(i) for i in ids) - {ignore_index}), dtype=np.int64)
        self.ignore_index = ignore_index if has_ignore else None
        self.channel_ids = np.append(self.ids, ignore_index) if has_ignore else self.ids

    @classmethod
    def from_labels(cls, labels, ignore_index: int | None) -> "ClassSet":
        seen: set[int] = set()
        for label in labels:
            seen.update(np.unique(label).tolist())
        return cls(seen, ignore_index, ignore_index in seen)

    def __len__(self) -> int:
        return len(self.channel_ids)

    def one_hot(self, ids: np.ndarray) -> np.ndarray:
        probs = np.zeros(ids.shape + (len(self),), np.float32)
        np.put_along_axis(probs, self.channels(ids)[..., None], 1.0, axis=2)
        return probs

    def channels(self, ids: np.ndarray) -> np.ndarray:
        channel = np.searchsorted(self.ids, ids).clip(0, len(self.ids) - 1)
        if self.ignore_index is not None:
            channel[ids == self.ignore_index] = len(self.ids)
        return channel

    def to_ids(self, channels: np.ndarray) -> np.ndarray:
        return self.channel_ids[channels]


class StageTimer:
    """Seconds spent per pipeline stage, for the manifest and `autolabel bench`."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


def segments(n_frames: int, keyframes: list[int]) -> list[tuple[int, int, int | None, int | None]]:
    """(start, end, left keyframe, right keyframe) spans covering the clip, ends inclusive."""
    spans = []
    if keyframes[0] > 0:
        spans.append((0, keyframes[0], None, keyframes[0]))
    spans += [(a, b, a, b) for a, b in zip(keyframes, keyframes[1:]) if b > a + 1]
    if keyframes[-1] < n_frames - 1:
        spans.append((keyframes[-1], n_frames - 1, keyframes[-1], None))
    return spans


class Propagator:
    """Runs the pipeline over one clip; `run` yields a FrameResult per frame."""

    def __init__(self, source, keyframe_label: Callable[[int], np.ndarray], keyframes: list[int],
                 classes: ClassSet, settings: Settings = Settings(), refiner=None, flow_cache=None):
        if not keyframes:
            raise ValueError("no keyframes")
        self.source, self.keyframe_label = source, keyframe_label
        self.keyframes, self.classes, self.settings = sorted(keyframes), classes, settings
        self.refiner = refiner
        self.flow = FlowEstimator(settings.flow, settings.flow_preset, settings.flow_scale, flow_cache)
        self.timer = StageTimer()

    def _trust(self, flow_pull, flow_push, maps):
        with self.timer("warp"):
            return consistency(flow_pull, flow_push, maps)

    def _carry(self, side: "_Carried", flow_pull, trust, maps) -> None:
        with self.timer("warp"):
            side.probs, side.reliability, side.image = carry(
                side.probs, side.reliability, flow_pull, trust, self.settings.decay, side.image, maps)

    def _start(self, index: int, frame: np.ndarray) -> "_Carried":
        label = self.keyframe_label(index)
        image = frame.astype(np.float32) * (1 / 255) if self.refiner is not None else None
        return _Carried(self.classes.one_hot(label), np.ones(label.shape, np.float32), image)

    def run(self) -> Iterator[FrameResult]:
        for index in self.keyframes:
            label = self.keyframe_label(index)
            yield FrameResult(index, self.classes.channels(label), np.ones(label.shape, np.float32),
                              (index,), is_keyframe=True)
        spans = segments(len(self.source), self.keyframes)
        # One stream of flow pairs for the whole clip: the next segment's flow is computed
        # while this segment's backward pass runs.
        pairs = flow_pairs(self.source.read, (t for start, end, _, _ in spans for t in range(start, end)),
                           self.flow, self.timer)
        for start, end, left, right in spans:
            yield from self._segment(start, end, left, right, itertools.islice(pairs, end - start))

    def _segment(self, start, end, left, right, pairs) -> Iterator[FrameResult]:
        refining = self.refiner is not None
        # Pass 1, forward in time: flow for every pair, the left keyframe carried along.
        ahead: dict[int, _Stored] = {}                             # left side's result per frame
        pulls: dict[int, tuple[SamplingMaps, np.ndarray]] = {}     # t -> (pull along flow t->t+1, trust at t)
        frames: dict[int, np.ndarray] = {}
        side = None
        for t, frame, frame_next, flow_forward, flow_backward in pairs:
            if refining:
                frames[t], frames[t + 1] = frame, frame_next
            if right is not None:
                maps = sampling_maps(flow_forward)
                # Kept as ready remap maps: pass 2 then needs no conversions, only the remaps.
                pulls[t] = (SamplingMaps(maps.map_xy, maps.map_frac, None),
                            self._trust(flow_forward, flow_backward, maps))
            if left is not None and t + 1 != right:
                side = side or self._start(left, frame)
                maps = sampling_maps(flow_backward)
                self._carry(side, flow_backward, self._trust(flow_backward, flow_forward, maps), maps)
                ahead[t + 1] = _Stored.of(_arrive(side, t + 1 - left, frame_next if refining else None))

        # Pass 2, backward in time: the right keyframe carried along and fused.
        by_reliability = self.settings.fusion == "reliability"
        sources = tuple(k for k in (left, right) if k is not None)
        first, last = (start + 1 if left is not None else start), (end - 1 if right is not None else end)
        side = None
        for t in range(last, first - 1, -1):
            arrivals = []
            if left is not None:
                arrivals.append(ahead.pop(t).restore())
            if right is not None:
                maps, trust = pulls.pop(t)
                side = side or self._start(right, frames.get(right))
                self._carry(side, None, trust, maps)
                arrivals.append(_arrive(side, right - t, frames.get(t)))
            if refining:
                # Each side is refined before fusing: measured better than refining the fused
                # labels (models/MODEL_CARD.md), since fusion still weighs the repaired sides.
                with self.timer("refine"):
                    refined = self.refiner.refine_sides(
                        frames.pop(t), [(a.probs, a.reliability, a.photo_error, a.distance) for a in arrivals])
                    arrivals = [fusion.Side(probs, a.reliability, a.distance)
                                for (probs, _), a in zip(refined, arrivals)]
            with self.timer("fuse"):
                fused, reliability = fusion.fuse(*arrivals, by_reliability=by_reliability)
                channels, confidence = fusion.label_and_confidence(fused, reliability)
            yield FrameResult(t, channels, confidence, sources)


@dataclass
class _Carried:
    """A keyframe's labels (and image, when refining) on their way through a segment."""
    probs: np.ndarray
    reliability: np.ndarray
    image: np.ndarray | None


def _arrive(carried: _Carried, distance: int, frame: np.ndarray | None) -> fusion.Side:
    """The carried side as it arrives at a frame; with the frame, how well its image matches."""
    photo_error = None
    if frame is not None:
        photo_error = np.abs(carried.image - frame.astype(np.float32) * (1 / 255)).mean(axis=2)
    return fusion.Side(carried.probs, carried.reliability, distance, photo_error)


@dataclass
class _Stored:
    """A Side kept between the two passes, compactly: probabilities as bytes (reliability stays
    float32: fusion compares small reliabilities of the two sides)."""
    probs: np.ndarray
    reliability: np.ndarray
    distance: int
    photo_error: np.ndarray | None

    @classmethod
    def of(cls, side: fusion.Side) -> "_Stored":
        return cls(cv2.convertScaleAbs(side.probs, alpha=255), side.reliability, side.distance, side.photo_error)

    def restore(self) -> fusion.Side:
        probs = np.multiply(self.probs, np.float32(1 / 255), dtype=np.float32)
        return fusion.Side(probs, self.reliability, self.distance, self.photo_error)


def propagate(frames, keyframes: Mapping[int, np.ndarray], *, ignore_index: int | None = 255,
              settings: Settings = Settings(), refiner=None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Notebook entry point; holds everything in memory (the CLI streams).

    frames: a sequence of RGB frames, each an HxWx3 uint8 array, all one size.
    keyframes: {frame index: label}, each label an HxW integer array of class or object ids;
    `ignore_index` marks unlabeled pixels (never propagated as a class).
    Returns (labels, confidences), one per frame: labels are HxW int64 arrays holding the
    keyframes' ids (keyframes come back unchanged); confidences are HxW float32 arrays in [0, 1],
    the probability that the label at that pixel is right (1 on keyframes).
    Bad input raises autolabel.InputError with the CLI's one-line message.
    """
    from ..io.arrays import check_arrays
    from ..io.frames import ArrayFrames

    check_arrays(frames, keyframes)
    source = ArrayFrames(frames)
    classes = ClassSet.from_labels(keyframes.values(), ignore_index)
    propagator = Propagator(source, lambda i: np.asarray(keyframes[i]), list(keyframes), classes, settings, refiner)
    labels: list = [None] * len(source)
    confidences: list = [None] * len(source)
    for result in propagator.run():
        labels[result.index] = classes.to_ids(result.channels)
        confidences[result.index] = result.confidence
    return labels, confidences
