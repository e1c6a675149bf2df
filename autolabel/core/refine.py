"""Refine: repair the fused propagation with what the frame itself shows.

Two cues, both fitted to the clip at hand:

* appearance, the semantic cue: P(class | colour, band) from the keyframes
  (`appearance.Appearance`) multiplies into the warped probabilities. It repairs
  the large errors that flow cannot: drift, disocclusion, fast thin parts. The
  warp's errors grow with the distance from the keyframe, so the cue's weight
  grows with it too.
* edges: a guided filter (`guided.GuidedFilter`) snaps the label boundaries,
  which the warp leaves a few pixels off, to the frame's colour edges, at full
  resolution.

How strongly to apply each is a `Setting`. `Refiner.learn` scores every
candidate setting on real propagation errors with real targets: one keyframe's
labels carried to the next keyframe, compared with that keyframe's own label
(the appearance cue taken from the other keyframes only). `refine` uses the
candidate that scored best on this clip so far (`adapt`), or the trained
default before any score exists. The defaults come from the same scores summed
over training clips (`autolabel train`, models/MODEL_CARD.md).

Everything is OpenCV and numpy on the CPU: a few passes over a ~480 px copy of
the frame, and a few full-size passes per class for the edges.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from .appearance import Appearance, bins
from .calibration import Calibration
from .guided import GuidedFilter, sample
from .warp import MAX_CHANNELS, by_channels

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "refiner.json"
FORMAT = "autolabel-refiner/2"
EPS = 1e-3
WORK_SIDE = 480          # the cues work at about this long side; edges are applied at full size
# Appearance weight per DISTANCE_UNIT frames from the nearest keyframe: a label carried 30 frames
# (what `learn` sees at spacing 30) and a fused frame 8 frames from its nearer keyframe then ask
# for the same setting. Capped, for the long one-sided ends of a clip.
DISTANCE_UNIT = 30
DISTANCE_CAP = 60
SURE = 0.9                                  # small pixels less sure than this are redone at full size
FUSED_SURE = 0.9                            # fused pixels this sure keep the warp's label
BAND_CHUNK = 1 << 16                        # band pixels worked out at a time
KERNEL = np.ones((3, 3), np.uint8)
# Label sets of up to this many channels share a default: the fewer classes compete, the more
# their colours tell them apart (objects vs. a street scene's 19 classes).
CHANNEL_BOUNDS = (8, 1 << 16)


@dataclass(frozen=True)
class Setting:
    """One candidate strength of the two cues."""
    appearance: float   # weight of log P(class | colour, band), per DISTANCE_UNIT frames of distance
    radius: int         # guided filter radius in full-size pixels; 0: no edge filter
    eps: float          # guided filter regulariser: larger keeps more of the warped labels

    def as_list(self) -> list:
        return [self.appearance, self.radius, self.eps]


def subsample_of(height: int, width: int) -> int:
    return max(1, round(max(height, width) / WORK_SIDE))


class Cues:
    """What one frame offers to refinement: its small copy, the appearance of its pixels, and
    guided filters, each computed once however many settings are tried on it."""

    def __init__(self, frame: np.ndarray, table: np.ndarray | None, present: np.ndarray | None = None):
        height, width = frame.shape[:2]
        self.frame, self.step = frame, subsample_of(height, width)
        self.small = (max(1, width // self.step), max(1, height // self.step))
        self.log_looks = None
        if table is not None:
            looks = table[bins(cv2.resize(frame, self.small, interpolation=cv2.INTER_AREA))]
            if present is not None:   # the channels carried here: P(channel | pixel, one of these)
                looks = looks[..., present]
                looks /= np.maximum(looks.sum(axis=2, keepdims=True), 1e-12)
            self.log_looks = np.log(looks + EPS)
        self._filters: dict[tuple[int, float], GuidedFilter] = {}

    def shrink(self, image: np.ndarray, nearest: bool = False) -> np.ndarray:
        height, width = image.shape[:2]
        exact = width % self.small[0] == 0 and height % self.small[1] == 0
        # OpenCV 5 averages areas at a fractional scale (frame sides not multiples of the step) for 4
        # channels at most
        most = MAX_CHANNELS if nearest or exact else 4
        interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
        out = by_channels(lambda part: cv2.resize(part, self.small, interpolation=interpolation), image, most)
        return out.reshape(self.small[1], self.small[0], *image.shape[2:])

    def _edges(self, radius: int, eps: float) -> GuidedFilter:
        if (radius, eps) not in self._filters:
            self._filters[radius, eps] = GuidedFilter(self.frame, radius, eps, self.step)
        return self._filters[radius, eps]

    def apply(self, setting: Setting, probs_small: np.ndarray, distance: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(refined probabilities at the small size, each pixel summing to 1; the guided filter's
        coefficients, or None). `probs_small`: fused probabilities shrunk; `distance`: frames
        to the nearest keyframe."""
        weight = setting.appearance * min(distance, DISTANCE_CAP) / DISTANCE_UNIT
        if weight > 0 and self.log_looks is not None:
            logits = np.log(probs_small + EPS)
            logits += weight * self.log_looks
            logits -= logits.max(axis=2, keepdims=True)
            probs_small = np.exp(logits)
            probs_small /= probs_small.sum(axis=2, keepdims=True)
        coefficients = None
        if setting.radius > 0:
            edges = self._edges(setting.radius, setting.eps)
            coefficients = edges.coefficient_maps(probs_small)
            probs_small = _normalised(edges.filter_small(coefficients))
        return probs_small, coefficients

    def full_size(self, setting: Setting, probs_small: np.ndarray, coefficients) -> tuple[np.ndarray, np.ndarray]:
        """(channel HxW, confidence HxW float32) at full size. Only pixels within a small pixel of a
        label boundary, or unsure, are worked out at full size (the guided filter applied to the
        full-size frame there); the rest take their small pixel's label: the cost grows with the
        length of the boundaries, not with the area times the classes."""
        height, width = self.frame.shape[:2]
        channels_small = probs_small.argmax(axis=2).astype(np.uint8 if probs_small.shape[2] < 256 else np.uint16)
        top_small = probs_small.max(axis=2)
        channels = cv2.resize(channels_small, (width, height), interpolation=cv2.INTER_NEAREST)
        confidence = cv2.resize(top_small, (width, height), interpolation=cv2.INTER_LINEAR)
        np.minimum(confidence, 1, out=confidence)  # sums of float32 reach 1 + 1e-7
        if self.step == 1 and coefficients is None:
            return channels, confidence
        unsure = (top_small < SURE) | (cv2.dilate(channels_small, KERNEL) != cv2.erode(channels_small, KERNEL))
        band = cv2.resize(cv2.dilate(unsure.view(np.uint8), KERNEL), (width, height), interpolation=cv2.INTER_NEAREST)
        rows, cols = np.nonzero(band)
        for start in range(0, len(rows), BAND_CHUNK):   # in chunks: memory stays small on busy frames
            r, c = rows[start:start + BAND_CHUNK], cols[start:start + BAND_CHUNK]
            if coefficients is not None:
                refined = _normalised(self._edges(setting.radius, setting.eps).at(coefficients, r, c))
            else:
                refined = sample(probs_small, r, c, (width, height))
            channels[r, c] = refined.argmax(axis=1)
            confidence[r, c] = np.minimum(refined.max(axis=1), 1)
        return channels, confidence


def _normalised(probs: np.ndarray) -> np.ndarray:
    np.clip(probs, 0, None, out=probs)
    probs /= np.maximum(probs.sum(axis=-1, keepdims=True), 1e-6)
    return probs


def mean_iou(channels: np.ndarray, target: np.ndarray, n_channels: int) -> float:
    """Mean IoU over the channels present in either map (what the benchmarks report)."""
    joint = np.bincount(target.ravel().astype(np.int64) * n_channels + channels.ravel(), minlength=n_channels ** 2)
    confusion = joint.reshape(n_channels, n_channels)
    inter = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - inter
    return float((inter[union > 0] / union[union > 0]).mean())


class Refiner:
    """The refine stage of one clip: `start_clip` with its keyframes, `learn` from
    keyframe-to-keyframe propagations, `refine` every other frame.

    `candidates`: the settings to choose between; `defaults`: {largest label-set size: index of
    the candidate used before anything is learned}. `adapt=False` always uses the default.
    """

    def __init__(self, candidates: list[Setting], defaults: dict[int, int] | int, adapt: bool = True,
                 name: str = "refiner", calibrations: dict[int, list[Calibration]] | None = None):
        defaults = defaults if isinstance(defaults, dict) else {CHANNEL_BOUNDS[-1]: defaults}
        if not all(0 <= i < len(candidates) for i in defaults.values()):
            raise ValueError(f"defaults {defaults} are not among {len(candidates)} candidates")
        self.candidates, self.defaults, self.adapt, self.name = list(candidates), defaults, adapt, name
        # {label-set size bound: a Calibration per candidate}; learn adds to the current size's
        self.calibrations = calibrations or {b: [Calibration() for _ in candidates] for b in defaults}
        self.bound = max(defaults)   # the label-set size of the clip at hand, set by start_clip
        self.scores = np.zeros(len(candidates))
        self.samples = 0
        self.appearance: Appearance | None = None
        self.path: Path | None = None   # where the weights came from
        self.learn_calibration = False  # training fits the calibration tables; a run uses them

    @property
    def default(self) -> int:
        return self.defaults[self.bound]

    @property
    def chosen_index(self) -> int:
        return int(np.argmax(self.scores)) if self.adapt and self.samples else self.default

    @property
    def chosen(self) -> Setting:
        return self.candidates[self.chosen_index]

    def start_clip(self, keyframes, n_channels: int, keep_scores: bool = False, channel_ids=None) -> None:
        """`keyframes`: (frame, channel indices) of every keyframe of the clip. What an earlier
        clip taught is forgotten unless `keep_scores` (training sums scores over clips).
        `channel_ids` (the label id of each channel) is for refiners that know a dataset's classes."""
        self.appearance = Appearance(n_channels)
        self.bound = next((b for b in sorted(self.defaults) if n_channels <= b), max(self.defaults))
        for frame, channels in keyframes:
            self.appearance.add(frame, channels)
        if not keep_scores:
            self.scores[:] = 0
            self.samples = 0

    def learn(self, frame, probs, reliability, target, distance: int, present=None) -> None:
        """One real propagation error: labels carried `distance` frames from another keyframe to
        the keyframe `frame`, whose own label (channel indices into `probs`, which holds the clip's
        channels `present`) is `target`. Scored at the cues' small size: it ranks settings as well."""
        if probs.shape[2] < 2:   # one class on both sides (an object left the view): nothing to choose
            return
        table = None
        if self.appearance is not None:
            table = self.appearance.without(frame, target if present is None else present[target])
        cues = Cues(frame, table, present)
        probs_small, target_small = cues.shrink(probs), cues.shrink(target.astype(np.int32), nearest=True)
        for i, setting in enumerate(self.candidates):
            refined, _ = cues.apply(setting, probs_small, distance)
            channels = refined.argmax(axis=2)
            self.scores[i] += mean_iou(channels, target_small, probs.shape[2])
            if self.learn_calibration:
                top = np.take_along_axis(refined, channels[..., None], axis=2)[..., 0]
                self.calibrations[self.bound][i].add(top, channels == target_small, distance)
        self.samples += 1

    def refine(self, frame, probs, reliability, distance: int, present=None,
               one_sided: bool = False, spacing: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(channel index HxW, confidence HxW float32 in [0, 1]) of one fused frame; `one_sided`:
        only one keyframe's labels reach it (before the first keyframe or after the last);
        `spacing`: frames between its two keyframes (used by the class prior, not here)."""
        if probs.shape[2] < 2:   # one class carried: every pixel is it, as sure as the warp is
            return np.zeros(probs.shape[:2], np.uint8), np.minimum(probs[..., 0], 1).astype(np.float32)
        cues = Cues(frame, self.appearance.table if self.appearance is not None else None, present)
        chosen = self.chosen_index
        setting = self.candidates[chosen]
        channels, confidence = cues.full_size(setting, *cues.apply(setting, cues.shrink(probs), distance))
        if one_sided:
            confidence = self.calibrations[self.bound][chosen](confidence, distance)
        else:
            # Where both keyframes' propagations agree and are sure, the warp stands: `learn` sees
            # one-sided propagations, which need more repair than fused ones (see the model card).
            fused = probs.argmax(axis=2)
            top = np.take_along_axis(probs, fused[..., None], axis=2)[..., 0]
            sure = top >= FUSED_SURE
            channels[sure] = fused[sure]
            confidence[sure] = np.minimum(top[sure], 1)
        return channels, confidence


def save_refiner(path: str | Path, candidates: list[Setting], by_size: dict, provenance: dict) -> None:
    """Weights as a small JSON file (nothing executable to load), written atomically. `by_size`:
    {largest label-set size: (summed scores per candidate, propagations scored, Calibrations)}."""
    path = Path(path)
    blob = {"format": FORMAT, "candidates": [s.as_list() for s in candidates],
            "defaults": [{"max_channels": size, "default": int(np.argmax(scores)), "propagations": samples,
                          "mean_iou": [round(float(s) / max(samples, 1), 5) for s in scores],
                          "calibration": [c.as_lists() for c in calibrations]}
                         for size, (scores, samples, calibrations) in sorted(by_size.items())],
            "trained": provenance}
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(blob, indent=1) + "\n")
    staging.replace(path)


def load_refiner(path: str | Path | None = None, adapt: bool = True) -> Refiner:
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    try:
        blob = json.loads(path.read_text())
        if blob.get("format") != FORMAT:
            raise ValueError(f"not {FORMAT} weights")
        candidates = [Setting(float(a), int(r), float(e)) for a, r, e in blob["candidates"]]
        defaults = {int(d["max_channels"]): int(d["default"]) for d in blob["defaults"]}
        calibrations = {int(d["max_channels"]): [Calibration(c["correct"], c["count"]) for c in d["calibration"]]
                        for d in blob["defaults"]}
        refiner = Refiner(candidates, defaults, adapt, name=f"refiner:{path.name}", calibrations=calibrations)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(path, f"cannot load refiner weights ({error})") from None
    refiner.path = path
    return refiner
