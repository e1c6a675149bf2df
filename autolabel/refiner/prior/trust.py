"""Fit how far to trust the network against the warp: `autolabel train CLIPS --fit-trust`.

Cycle consistency from sparse labels: on each training clip, keyframes every `spacing` frames
(a subset of the labels a user has, every `every`) are propagated with the class prior as
a run would (per-clip learning on those keyframes, the network's weight at zero), and every
labeled frame they skip is a target: the classic output, the network's opinion and the true
label are kept. Two things are fitted on those targets, per label-set size:

* the calibration of the classic confidence: how often a pixel of that confidence, at that
  distance / spacing, was right (the warp says 0.97 where it is right 0.87 of the time);
* alpha, the network's weight per unit of distance / spacing, picked from a grid by the mean
  per-frame IoU the fused labels get.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ...core.pipeline import ClassSet, Propagator, Settings
from ...errors import InputError
from ...io.frames import FrameSource
from ...io.keyframes import find_keyframes
from ...io.labels import detect_format, read_label
from .stage import PriorRefiner, calibrate, distance_share, combine
from .samples import IGNORE, frame_miou
from .weights import Weights

ALPHAS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
SPACINGS = (20, 30)
CONFIDENCE_EDGES = np.array([0, .5, .6, .7, .8, .9, .95, .98, .99, .995, 1.0001], np.float32)
U_EDGES = np.array([0, .2, .4, .6, .8], np.float32)
BOUNDS = (8, 1 << 16)   # label-set sizes that share a fit: objects, street scenes


@dataclass
class Target:
    channels: np.ndarray      # classic output (segment-local channel indices)
    confidence: np.ndarray    # classic confidence
    log_net: np.ndarray       # network log-probabilities at the working size
    u: float                  # distance / spacing
    truth: np.ndarray         # the true label as segment-local channels; IGNORE where not scorable
    bound: int


class _Recording(PriorRefiner):
    """The class prior with the network's weight at zero, keeping what `refine` saw."""

    def refine(self, frame, probs, reliability, distance, present=None, one_sided=False, spacing=None):
        channels, confidence = self.classic.refine(frame, probs, reliability, distance, present, one_sided)
        self.last = (channels, confidence, self.network_log_probs(frame, present) if self.net is not None else None,
                     distance_share(distance, spacing), present)
        return channels, confidence


def clip_targets(frames: Path, labels: Path, weights: Weights, refiner_factory, every: int, spacing: int,
                 settings: Settings) -> list[Target]:
    source = FrameSource(frames)
    try:
        paths = {i: p for i, p in find_keyframes(labels, source.stems).items() if i % every == 0}
        fmt = detect_format(list(paths.values()))
        keys = [i for i in paths if i % spacing == 0]
        if not keys:
            return []
        label = {i: read_label(paths[i], fmt) for i in paths}
        classes = ClassSet.from_labels([label[i] for i in keys], fmt.ignore_index)
        refiner = refiner_factory()
        propagator = Propagator(source, lambda i: label[i], keys, classes, settings, refiner)
        targets = []
        for result in propagator.run():
            if result.is_keyframe or result.index not in label or refiner.last[2] is None:
                continue
            channels, confidence, log_net, u, present = refiner.last
            local = np.full(len(classes), IGNORE, np.int64)
            local[present] = np.arange(len(present))
            truth_ids = label[result.index]
            known = np.isin(truth_ids, classes.channel_ids)
            truth = np.where(known, local[classes.channels(truth_ids)], IGNORE)
            targets.append(Target(channels, confidence.astype(np.float16), log_net, u, truth,
                                  next(b for b in BOUNDS if len(classes) <= b)))
        return targets
    finally:
        source.close()


def fit_calibration(targets: list[Target]) -> dict:
    correct = np.zeros((len(U_EDGES), len(CONFIDENCE_EDGES) - 1))
    count = np.zeros_like(correct)
    for t in targets:
        row = min(int(np.searchsorted(U_EDGES, t.u, side="right")) - 1, len(U_EDGES) - 1)
        valid = t.truth != IGNORE
        bins = np.clip(np.searchsorted(CONFIDENCE_EDGES, t.confidence[valid].astype(np.float32), side="right") - 1,
                       0, len(CONFIDENCE_EDGES) - 2)
        count[row] += np.bincount(bins, minlength=count.shape[1])
        correct[row] += np.bincount(bins, weights=t.channels[valid] == t.truth[valid], minlength=count.shape[1])
    centres = (CONFIDENCE_EDGES[:-1] + CONFIDENCE_EDGES[1:]) / 2
    # few pixels in a bin: lean on the confidence itself (10,000 pixels of pseudo-count)
    accuracy = (correct + 1e4 * np.minimum(centres, 1)) / (count + 1e4)
    accuracy = np.maximum.accumulate(accuracy, axis=1)   # more confident never means less often right
    return {"edges": CONFIDENCE_EDGES.tolist(), "u_edges": U_EDGES.tolist(), "accuracy": accuracy.round(5).tolist()}


def fit_trust(clips: list[tuple[Path, Path]], weights: Weights, out: Path, *, every: int = 10,
               device=None, steps: int | None = None, settings: Settings = Settings(),
               log: Callable[[str], None] = print) -> dict:
    """Fit alpha and the calibration on `clips` and write `weights` with them to `out`."""
    from ...core.refine import load_refiner as load_classic
    from ..device import resolve_device

    device = device or resolve_device("auto")
    started = time.perf_counter()
    targets: list[Target] = []
    recording = replace(weights, fusion={"alpha": {1 << 16: 1.0}})   # any weight > 0: the network is trained
    for frames, labels in clips:
        for spacing in SPACINGS:
            found = clip_targets(frames, labels, weights,
                                 lambda: _Recording(recording, load_classic(), device, True, steps), every, spacing,
                                 settings)
            log(f"{frames.parent.name}, keyframes every {spacing}: {len(found)} labeled frames between them")
            targets += found
    if not targets:
        raise InputError(clips[0][1], "no labeled frames between keyframes to fit on")
    alpha, calibration, table = {}, {}, {}
    for bound in BOUNDS:
        group = [t for t in targets if t.bound == bound]
        if not group:
            alpha[bound], calibration[bound] = 0.0, {}
            continue
        calibration[bound] = fit_calibration(group)
        scores = []
        for a in ALPHAS:
            ious = [frame_miou(combine(t.channels, calibrate(t.confidence.astype(np.float32), t.u, calibration[bound]),
                                   t.log_net, a * t.u)[0], t.truth, t.log_net.shape[0]) for t in group]
            scores.append(float(np.mean(ious)))
        alpha[bound] = ALPHAS[int(np.argmax(scores))]
        table[bound] = {"frames": len(group), "mean_iou_by_alpha": {str(a): round(float(v), 4) for a, v in zip(ALPHAS, scores)}}
        log(f"up to {bound} channels: {len(group)} frames, mean IoU by alpha "
            + ", ".join(f"{a}: {100 * s:.2f}" for a, s in zip(ALPHAS, scores)) + f" -> alpha {alpha[bound]}")
    weights.fusion = {"alpha": alpha, "calibration": calibration}
    weights.trained = {**weights.trained, "fusion": {"clips": [str(f.parent.name) for f, _ in clips],
                                                     "adapt_steps": steps if steps is not None
                                                     else weights.adapt_steps["cpu"],
                                                     "every": every, "spacings": list(SPACINGS),
                                                     "seconds": round(time.perf_counter() - started, 1),
                                                     "fit": {str(b): v for b, v in table.items()}}}
    weights.save(out)
    return {"alpha": alpha, "targets": len(targets), "seconds": time.perf_counter() - started}
