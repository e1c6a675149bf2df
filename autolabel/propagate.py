"""The pipeline: read frames -> flow -> warp -> fuse -> (refine) -> labels + confidence.

The clip is cut at its keyframes into segments. A segment is walked twice: forward
in time computing flow and carrying the left keyframe's labels, then backward
carrying the right keyframe's labels and fusing the two. Only one segment is ever
held in memory (its flows and forward results, compactly), so memory depends on
the keyframe spacing and frame size, never on the clip's length.
"""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Mapping

import numpy as np

from . import fuse as fusion
from .flow import FlowEstimator
from .warp import consistency, sampling_maps, warp


@dataclass(frozen=True)
class Settings:
    flow: str = "dis"                 # flow backend: dis | farneback
    flow_preset: str = "medium"       # ultrafast | fast | medium
    flow_scale: float = 1.0           # compute flow on frames scaled by this
    fusion: str = "reliability"       # reliability | distance (plain reference)
    occlusion: bool = True            # use forward-backward consistency
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
        channel = np.searchsorted(self.channel_ids, ids) if self.ignore_index is None else self.channels(ids)
        return np.eye(len(self), dtype=np.float32)[channel]

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


def _quantize(probs: np.ndarray) -> np.ndarray:
    return np.rint(probs * 255).astype(np.uint8)


def _dequantize(probs: np.ndarray) -> np.ndarray:
    return probs.astype(np.float32) * (1 / 255)


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

    def _read(self, index: int) -> np.ndarray:
        with self.timer("read"):
            return self.source.read(index)

    def _step(self, probs, reliability, flow_pull, trust):
        """One warp step: pull probabilities and reliability along the flow together."""
        with self.timer("warp"):
            stacked = np.concatenate([probs, reliability[..., None]], axis=2)
            warped = warp(stacked, flow_pull)
            probs, reliability = warped[..., :-1], warped[..., -1]
            reliability *= trust
            reliability *= self.settings.decay
            return probs, reliability

    def _trust(self, flow_pull, flow_push):
        if not self.settings.occlusion:
            return np.ones(flow_pull.shape[:2], np.float32)
        with self.timer("warp"):
            return consistency(flow_pull, flow_push, sampling_maps(flow_pull))

    def _keyframe_side(self, index: int):
        label = self.keyframe_label(index)
        return self.classes.one_hot(label), np.ones(label.shape, np.float32), label

    def run(self) -> Iterator[FrameResult]:
        for index in self.keyframes:
            label = self.keyframe_label(index)
            yield FrameResult(index, self.classes.channels(label), np.ones(label.shape, np.float32),
                              (index,), is_keyframe=True)
        for start, end, left, right in segments(len(self.source), self.keyframes):
            yield from self._segment(start, end, left, right)

    def _segment(self, start, end, left, right) -> Iterator[FrameResult]:
        width, height = self.source.width, self.source.height
        # Pass 1, forward in time: flow for every pair, the left keyframe carried along.
        forward_store: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        pull_store: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # t -> (flow t->t+1, trust at t)
        frames: dict[int, np.ndarray] = {}
        frame = self._read(start)
        if self.refiner is not None:
            frames[start] = frame
        with self.timer("flow"):
            gray = self.flow.gray(frame)
        if left is not None:
            probs, reliability, _ = self._keyframe_side(left)
        for t in range(start, end):
            frame_next = self._read(t + 1)
            if self.refiner is not None:
                frames[t + 1] = frame_next
            with self.timer("flow"):
                gray_next = self.flow.gray(frame_next)
                flow_forward, flow_backward = self.flow.pair(gray, gray_next, width, height)
            gray = gray_next
            if right is not None:
                pull_store[t] = (flow_forward.astype(np.float16), self._trust(flow_forward, flow_backward))
            if left is not None and t + 1 != right:
                probs, reliability = self._step(probs, reliability, flow_backward,
                                                self._trust(flow_backward, flow_forward))
                forward_store[t + 1] = (_quantize(probs), reliability.copy())

        # Pass 2, backward in time: the right keyframe carried along and fused.
        by_reliability = self.settings.fusion == "reliability"
        outputs = range(end - 1 if right is not None else end, start if left is not None else start - 1, -1)
        if right is not None:
            probs, reliability, _ = self._keyframe_side(right)
        for t in outputs:
            sides = []
            if right is not None:
                flow_forward, trust = pull_store.pop(t)
                probs, reliability = self._step(probs, reliability, flow_forward.astype(np.float32), trust)
                sides.append(fusion.Side(probs, reliability, right - t))
            if left is not None:
                stored_probs, stored_reliability = forward_store.pop(t)
                sides.insert(0, fusion.Side(_dequantize(stored_probs), stored_reliability, t - left))
            with self.timer("fuse"):
                fused, fused_reliability = fusion.fuse(*sides, by_reliability=by_reliability)
            if self.refiner is not None:
                with self.timer("refine"):
                    fused = self.refiner(frames.pop(t), fused, fused_reliability)
            with self.timer("fuse"):
                channels, confidence = fusion.label_and_confidence(fused, fused_reliability)
            sources = tuple(k for k in (left, right) if k is not None)
            yield FrameResult(t, channels, confidence, sources)


def propagate(frames, keyframes: Mapping[int, np.ndarray], *, ignore_index: int | None = 255,
              settings: Settings = Settings(), refiner=None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Notebook entry point: frames (list of HxWx3 uint8) and {index: HxW ids} keyframes in,
    (labels, confidences) out, one per frame. Holds everything in memory; the CLI streams."""
    from .frames import ArrayFrames

    source = ArrayFrames(frames)
    classes = ClassSet.from_labels(keyframes.values(), ignore_index)
    propagator = Propagator(source, lambda i: np.asarray(keyframes[i]), list(keyframes), classes, settings, refiner)
    labels: list = [None] * len(source)
    confidences: list = [None] * len(source)
    for result in propagator.run():
        labels[result.index] = classes.to_ids(result.channels)
        confidences[result.index] = result.confidence
    return labels, confidences
