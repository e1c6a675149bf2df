"""`autolabel train CLIPS --classic`: fit the classic refiner's default setting on labeled clips, from sparse labels alone.

For each clip and each keyframe spacing, the pipeline propagates from every
spacing-th label exactly as `propagate` does, and the refiner's `learn` scores
every candidate setting on each keyframe-to-keyframe propagation: one label
carried to the next labeled frame and compared with that frame's own label.
The scores are summed over all clips and spacings; the best candidate becomes
the default, used by `propagate` before a clip has taught anything (and on
clips with a single keyframe). Only labels of frames whose index is a multiple
of `every` are read, so evaluation labels in the same folder are never seen.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..core.pipeline import ClassSet, Propagator, Settings
from ..core.refine import CHANNEL_BOUNDS, Refiner, Setting, save_refiner
from ..errors import InputError
from ..io.frames import FrameSource
from ..io.keyframes import find_keyframes
from ..io.labels import detect_format, read_label

CANDIDATES = [Setting(appearance, radius, eps) for appearance in (0.0, 1.0, 2.0, 4.0, 8.0)
              for radius, eps in ((0, 0.0), (8, 1e-3))]
SPACINGS = (10, 20, 30)


class _Scoring(Refiner):
    """The refiner as training drives it: scores add up over clips, frames are left as fused."""

    def start_clip(self, keyframes, n_channels: int, keep_scores: bool = True, channel_ids=None) -> None:
        super().start_clip(keyframes, n_channels, keep_scores=True)

    def refine(self, frame, probs, reliability, distance, present=None, one_sided=False, spacing=None):
        channels = probs.argmax(axis=2)
        return channels, np.take_along_axis(probs, channels[..., None], axis=2)[..., 0]


def clip_scores(frames: Path, labels: Path, every: int = 10, spacings=SPACINGS, flow_cache=None,
                candidates=CANDIDATES) -> tuple[np.ndarray, int, int, list]:
    """(summed mean IoU per candidate, number of propagations scored, number of channels, a
    Calibration per candidate) on one clip."""
    source = FrameSource(frames)
    paths = {i: p for i, p in find_keyframes(labels, source.stems).items() if i % every == 0}
    if len(paths) < 2:
        raise InputError(labels, f"needs labels on at least 2 frames whose index is a multiple of {every}")
    fmt = detect_format(list(paths.values()))
    labeled = {i: read_label(p, fmt) for i, p in paths.items()}
    ignore = None if fmt.kind == "binary" else fmt.ignore_index
    classes = ClassSet.from_labels(labeled.values(), ignore)
    scoring = _Scoring(candidates, 0)
    scoring.learn_calibration = True
    for spacing in spacings:
        keys = [i for i in sorted(labeled) if i % spacing == 0]
        if len(keys) < 2:
            continue
        propagator = Propagator(source, labeled.__getitem__, keys, classes, Settings(), scoring, flow_cache)
        for _ in propagator.run():
            pass
    source.close()
    return scoring.scores.copy(), scoring.samples, len(classes), scoring.calibrations[scoring.bound]


def train(clips: list[tuple[Path, Path]], out: Path, every: int = 10, spacings=SPACINGS, flow_cache=None,
          log=print) -> dict:
    """Score every candidate on every clip, write the weights with the best of each label-set size
    as its default."""
    started = time.perf_counter()
    per_clip, by_size = {}, {}
    for frames, labels in clips:
        scores, n, n_channels, calibrations = clip_scores(frames, labels, every, spacings, flow_cache)
        name = Path(frames).parent.name if Path(frames).name in ("frames", "video.mp4") else Path(frames).name
        per_clip[name] = {"channels": n_channels, "propagations": n,
                          "mean_iou": [round(float(s) / max(n, 1), 4) for s in scores]}
        size = next(bound for bound in CHANNEL_BOUNDS if n_channels <= bound)
        total, samples, calibrated = by_size.get(size, (np.zeros(len(CANDIDATES)), 0, None))
        if calibrated is not None:
            for mine, theirs in zip(calibrations, calibrated):
                mine.correct += theirs.correct
                mine.count += theirs.count
        by_size[size] = (total + scores, samples + n, calibrations)
        log(f"{name}: {n} propagations, best {CANDIDATES[int(np.argmax(scores))]}")
    provenance = {"clips": sorted(per_clip), "every": every, "spacings": list(spacings),
                  "seconds": round(time.perf_counter() - started, 1), "per_clip": per_clip}
    save_refiner(out, CANDIDATES, by_size, provenance)
    defaults = {size: CANDIDATES[int(np.argmax(total))] for size, (total, _, _) in sorted(by_size.items())}
    return {"defaults": defaults, "samples": sum(n for _, n, _ in by_size.values()), "seconds": provenance["seconds"]}
