"""The pipeline: read frames -> flow -> warp -> fuse -> (refine) -> labels + confidence.

The clip is cut at its keyframes into segments. A segment is walked twice: forward
in time carrying the left keyframe's labels, then backward carrying the right
keyframe's labels and fusing the two. A segment carries only the classes present in
its two keyframes, as byte probabilities. Only one segment is ever held in memory (its
pull maps and the left side's two most likely channels per pixel), so memory depends on
the keyframe spacing, frame size and classes present, never on the clip's length.
"""
from __future__ import annotations

import functools
import itertools
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Callable, Iterator, Mapping

import numpy as np

from . import fuse as fusion
from .flow import FlowEstimator, flow_pairs, full_size, use_threads
from .fuse import TopChannels
from .half import to_half, to_single
from .memory import map_large_arrays, scratch
from .warp import SoftLabels, carry, consistency, sampling_maps


# Flow computed ahead shares this with what the current segment keeps between its passes
# (pull maps, the waiting side, frames for the refiner): long segments of large frames leave
# less room to compute ahead.
MEMORY_BUDGET = 512 * 2**20


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
    local: np.ndarray | None = field(default=None, repr=False)  # the winner among the segment's channels


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
    """Runs the pipeline over one clip; `run` yields a FrameResult per frame.

    `refiner` (core.refine.Refiner), when given, refines every fused frame; it is shown the
    clip's keyframes first, and when it adapts, once per segment with two keyframes, the left
    keyframe's labels carried all the way to the right one, whose true label is the target.
    `threads`: how many threads OpenCV may use (None: every core); results do not depend on it.
    """

    def __init__(self, source, keyframe_label: Callable[[int], np.ndarray], keyframes: list[int],
                 classes: ClassSet, settings: Settings = Settings(), refiner=None, flow_cache=None,
                 threads: int | None = None):
        if not keyframes:
            raise ValueError("no keyframes")
        self.source, self.keyframe_label = source, keyframe_label
        self.keyframes, self.classes, self.settings = sorted(keyframes), classes, settings
        self.refiner = refiner
        self.flow = FlowEstimator(settings.flow, settings.flow_preset, settings.flow_scale, flow_cache,
                                  use_threads(threads))
        self.timer = StageTimer()
        map_large_arrays()
        self._held: list[dict] = []  # what the current segment keeps between its two passes
        self._trips_from: set[int] = set()   # keyframes a round trip starts from (run)

    def _trust(self, flow_pull, flow_push, maps):
        with self.timer("warp"):
            return consistency(flow_pull, flow_push, maps)

    def _step(self, side: "_Carried", trust, maps) -> None:
        with self.timer("warp"):
            side.probs, side.reliability = carry(side.probs, side.reliability, trust, self.settings.decay, maps)

    def run(self, only: set | None = None) -> Iterator[FrameResult]:
        """Every frame's result; with `only`, a set of `segments` spans, the keyframes and those spans' frames."""
        for index in self.keyframes:
            label = self.keyframe_label(index)
            yield FrameResult(index, self.classes.channels(label), np.ones(label.shape, np.float32),
                              (index,), is_keyframe=True)
        if self.refiner is not None:
            with self.timer("learn"):   # what the refiner learns from the keyframes themselves
                self.refiner.start_clip(((self.source.read(k), self.classes.channels(self.keyframe_label(k)))
                                         for k in self.keyframes), len(self.classes),
                                        channel_ids=self.classes.channel_ids)
        spans = [span for span in segments(len(self.source), self.keyframes) if only is None or span in only]
        # Round trips from as many keyframes as the refiner asks for, evenly spaced over the clip.
        lefts = [left for _, _, left, _ in spans if left is not None]
        wanted = min(getattr(self.refiner, "round_trips", 0), len(lefts))
        picked = np.linspace(0, len(lefts) - 1, wanted).round().astype(int) if wanted else []
        self._trips_from = {lefts[i] for i in picked}
        # One stream of flow pairs for the whole clip: the next segment's flow is computed
        # while this segment's backward pass runs.
        pairs = flow_pairs(self.source.read, (t for start, end, _, _ in spans for t in range(start, end)),
                           self.flow, self.timer, room=lambda: MEMORY_BUDGET - _nbytes(self._held))
        for start, end, left, right in spans:
            yield from self._segment(start, end, left, right, itertools.islice(pairs, end - start))

    def _channels(self, keys: list[int]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """The ClassSet channels present in the segment's keyframes (all it carries), and each
        keyframe's label as indices into them."""
        labels = {k: self.classes.channels(self.keyframe_label(k)) for k in keys}
        present = np.flatnonzero(sum(np.bincount(c.ravel(), minlength=len(self.classes)) for c in labels.values()))
        local = np.zeros(len(self.classes), np.min_scalar_type(len(present) - 1))
        local[present] = np.arange(len(present))
        return present, {k: local[c] for k, c in labels.items()}

    def _segment(self, start, end, left, right, pairs) -> Iterator[FrameResult]:
        present, keyframe_channels = self._channels([k for k in (left, right) if k is not None])
        start_side = lambda k: _Carried.of(keyframe_channels[k], len(present))  # noqa: E731
        result = functools.partial(self._result, present, tuple(k for k in (left, right) if k is not None))
        refining = self.refiner is not None
        learning = refining and left is not None and right is not None and self.refiner.adapt
        # A round trip from the left keyframe: carried `trip` frames on and back, it shows the warp's
        # errors at the distances this segment's frames have, against the keyframe's own label.
        trip = round_trip_length(left, right, end) if left in self._trips_from else 0
        trip_flows: dict[int, tuple[np.ndarray, np.ndarray]] = {}   # t -> (flow t->t+1, trust at t), t < left + trip
        # Pass 1, forward in time: flow for every pair, the left keyframe carried along.
        waiting: dict[int, TopChannels] = {}                       # left side's result per frame
        pulls: dict[int, tuple[np.ndarray, np.ndarray]] = {}       # t -> (flow t->t+1 to pull along, trust at t)
        frames: dict[int, np.ndarray] = {}                         # when refining: frames of pass 2
        self._held = [waiting, pulls, frames]
        side = None
        height, width = self.source.height, self.source.width
        for t, frame, frame_next, small_forward, small_backward in pairs:
            with self.timer("warp"):  # frame-sized temporaries reuse their pages (memory.scratch)
                flow_forward, flow_backward = (full_size(f, width, height, scratch(name, (height, width, 2), np.float32))
                                               for f, name in ((small_forward, "forward"), (small_backward, "back")))
            if right is not None:
                with self.timer("warp"):
                    maps = sampling_maps(flow_forward)
                # Kept as the flow computed (float16, working scale): smaller than remap maps.
                pulls[t] = (small_forward, to_half(self._trust(flow_forward, flow_backward, maps)))
                if refining and t != left:
                    frames[t] = frame
            if t == left and trip:
                trip_frame = frame   # read now: a video is read in order, once
            if t < (left or 0) + trip:
                trip_flows[t] = pulls[t] if right is not None else (small_forward, to_half(self._trust(
                    flow_forward, flow_backward, sampling_maps(flow_forward))))
            if left is None or (t + 1 == right and not learning):
                continue
            side = side or start_side(left)
            with self.timer("warp"):
                maps = sampling_maps(flow_backward)
            self._step(side, self._trust(flow_backward, flow_forward, maps), maps)
            if trip and t + 1 == left + trip:
                with self.timer("learn"):
                    self._round_trip(left, trip_frame, side, trip_flows, keyframe_channels[left], present)
                trip_flows.clear()
            if t + 1 == right:
                with self.timer("learn"):
                    self.refiner.learn(frame_next, *fusion.fused_probs(side.probs, side.reliability),
                                       keyframe_channels[right].astype(np.int64), right - left, present)
            elif right is None:
                yield result(t + 1, side, t + 1 - left, None, frame_next)
            else:
                with self.timer("fuse"):
                    waiting[t + 1] = TopChannels.of(side.probs, side.reliability, t + 1 - left)
        if right is None:
            return

        # Pass 2, backward in time: the right keyframe carried along and fused.
        side = None
        for t in range(end - 1, (start + 1 if left is not None else start) - 1, -1):
            flow, trust = pulls.pop(t)
            with self.timer("warp"):
                flow = full_size(flow, width, height, scratch("forward", (height, width, 2), np.float32))
                maps = sampling_maps(flow, with_inside=False)
            side = side or start_side(right)
            self._step(side, to_single(trust, scratch("trust", trust.shape, np.float32)), maps)
            yield result(t, side, right - t, waiting.pop(t, None), frames.pop(t, None))

    def _round_trip(self, left: int, frame: np.ndarray, side: "_Carried", flows: dict, target: np.ndarray,
                    present) -> None:
        """`side`, the left keyframe's labels carried len(flows) frames on, carried back to it (`frame`) and
        learned from."""
        height, width = self.source.height, self.source.width
        back = _Carried(SoftLabels.from_dense(side.probs.dense()), side.reliability.copy())
        for t in range(left + len(flows) - 1, left - 1, -1):
            flow, trust = flows[t]
            maps = sampling_maps(full_size(flow, width, height, scratch("trip", (height, width, 2), np.float32)),
                                 with_inside=False)
            back.probs, back.reliability = carry(back.probs, back.reliability, to_single(trust),
                                                 self.settings.decay, maps)
        self.refiner.learn_round_trip(frame, *fusion.fused_probs(back.probs, back.reliability),
                                      target.astype(np.int64), len(flows), present)

    def _result(self, present, sources, t, side: "_Carried", distance: int, waiting: TopChannels | None,
                frame) -> FrameResult:
        """The frame's label and confidence from the carried side, fused with the waiting one."""
        by_reliability = self.settings.fusion == "reliability"
        if self.refiner is None:
            with self.timer("fuse"):
                local, confidence = fusion.label_and_confidence(side.probs, waiting, side.reliability, distance,
                                                                by_reliability)
        else:
            with self.timer("fuse"):
                probs, reliability = fusion.fused_probs(side.probs, side.reliability, distance, waiting,
                                                        by_reliability)
            with self.timer("refine"):
                nearest = distance if waiting is None else min(distance, waiting.distance)
                local, confidence = self.refiner.refine(frame, probs, reliability, nearest, present,
                                                        one_sided=waiting is None,
                                                        spacing=None if waiting is None else distance + waiting.distance)
        return FrameResult(t, present[local], confidence, sources, local=local)


def round_trip_length(left: int, right: int | None, end: int) -> int:
    """Frames a round trip from keyframe `left` goes on before coming back: about a quarter of the spacing,
    so that the trip (there and back) is as long as the way to the segment's middle frame; 0 for none."""
    spacing = (right if right is not None else end) - left
    return min(max(spacing // 4, 1), 8, spacing - 1 if right is not None else spacing)


def _nbytes(held) -> int:
    """Bytes of the arrays in (nested tuples, lists, dicts and dataclasses of) `held`."""
    if isinstance(held, np.ndarray):
        return held.nbytes
    if isinstance(held, dict):
        held = list(held.values())
    elif is_dataclass(held):
        held = [getattr(held, attribute.name) for attribute in fields(held)]
    return sum(map(_nbytes, held)) if isinstance(held, (list, tuple)) else 0


@dataclass
class _Carried:
    """A keyframe's labels on their way through a segment: byte probabilities over the
    segment's channels and float32 reliability."""
    probs: SoftLabels
    reliability: np.ndarray

    @classmethod
    def of(cls, channels: np.ndarray, n_channels: int) -> "_Carried":
        return cls(SoftLabels.certain_of(channels, n_channels), np.ones(channels.shape, np.float32))


def propagate(frames, keyframes: Mapping[int, np.ndarray], *, ignore_index: int | None = 255,
              settings: Settings = Settings(), refiner="default") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Notebook entry point; holds everything in memory (the CLI streams).

    frames: a sequence of RGB frames, each an HxWx3 uint8 array, all one size.
    keyframes: {frame index: label}, each label an HxW integer array of class or object ids;
    `ignore_index` marks unlabeled pixels (never propagated as a class).
    Returns (labels, confidences), one per frame: labels are HxW int64 arrays holding the
    keyframes' ids (keyframes come back unchanged); confidences are HxW float32 arrays in [0, 1],
    the probability that the label at that pixel is right (1 on keyframes).
    refiner: "default" refines with the shipped default (classic + boundary network), "classic" with the classic one
    (refiner/load.py), None gives optical-flow geometry alone, or pass a refiner object.
    Bad input raises autolabel.InputError with the CLI's one-line message.
    """
    from ..io.arrays import check_arrays
    from ..io.frames import ArrayFrames

    check_arrays(frames, keyframes)
    if isinstance(refiner, str):
        from ..refiner.load import load_refiner

        refiner = load_refiner(refiner)
    source = ArrayFrames(frames)
    classes = ClassSet.from_labels(keyframes.values(), ignore_index)
    propagator = Propagator(source, lambda i: np.asarray(keyframes[i]), list(keyframes), classes, settings, refiner)
    labels: list = [None] * len(source)
    confidences: list = [None] * len(source)
    for result in propagator.run():
        labels[result.index] = classes.to_ids(result.channels)
        confidences[result.index] = result.confidence
    return labels, confidences
