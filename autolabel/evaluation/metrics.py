"""Score propagated labels against ground truth: J or mIoU, boundary F, calibration.

Everything streams: each frame is read, scored into running totals and dropped,
so a clip of any length is scored in memory of one frame. The array-level
`Scorer` is what `evaluate` feeds, and what a benchmark feeds directly with
in-memory results.

Definitions (scores in percent, ECE as a fraction):

* Region score. A confusion matrix of pixel counts [GT id, predicted id] is
  summed over the scored frames; pixels whose GT is an ignore id are left out (with
  `evaluated_ids`, every GT id outside them: Cityscapes' 19 classes).
  IoU of an id = intersection / union from those clip totals, so an object is
  weighted by its pixels over the clip, not by frame. Ids present in GT or
  prediction count; an ignore id never does.
  - semantic formats (grayscale ids, RGB): mIoU = mean IoU over those ids.
  - object formats (palette, binary): J = mean IoU over object ids, background
    (id 0) excluded; for binary masks the one object is 255.
  `frame_mean_score` is the same mean computed per frame, then averaged over
  frames (frames with nothing to score are skipped) - DAVIS's per-frame flavour.
* Boundary F (DAVIS F). Per frame and per object/class present in that frame's
  GT or prediction: boundary pixels are those with a 4-neighbour of another id;
  precision/recall = share of predicted/GT boundary pixels within
  `max(1, round(0.008 * diagonal))` px of the other's boundary; F = 2PR/(P+R).
  Mean over the frame's objects, then over frames.
* By distance. The region score of the frames at each distance from the nearest
  keyframe, each group accumulated like the whole clip.
* Calibration. Pixels (ignore-GT excluded) binned by confidence into 10 equal
  bins; ECE = sum over bins of |accuracy - mean confidence| weighted by pixels.
* Errors in the least-confident 5 %: of all wrong pixels of the clip, the share that
  lies among the 5 % of pixels with the lowest confidence (where a reviewer looks
  first). Pixels of equal confidence can't be told apart, so the tie at the 5 % line
  counts in proportion. 5 % of random pixels would hold 5 % of the errors.

Keyframes are never scored: they are copies of the input, not predictions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import cv2
import numpy as np

CALIBRATION_BINS = 10
BOUNDARY_TOLERANCE_FRACTION = 0.008   # of the image diagonal, as in DAVIS


# ---------------------------------------------------------------- region scores

@dataclass
class Confusion:
    """Pixel counts[GT, prediction] over the sorted ids seen so far (ids can be sparse, up to 65535)."""
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))

    @classmethod
    def of_pixels(cls, pred_ids: np.ndarray, gt_ids: np.ndarray) -> Confusion:
        """Counts of one frame's scored pixels (1-D, non-negative ids, ignore already removed)."""
        if gt_ids.size == 0:
            return cls()
        top = int(max(pred_ids.max(), gt_ids.max())) + 1
        # Compact the ids to 0..k-1 so the matrix is k x k, not 65536 x 65536.
        present = np.flatnonzero(np.bincount(gt_ids, minlength=top) + np.bincount(pred_ids, minlength=top))
        compact = np.zeros(top, np.int64)
        compact[present] = np.arange(len(present))
        k = len(present)
        counts = np.bincount(compact[gt_ids] * k + compact[pred_ids], minlength=k * k).reshape(k, k)
        return cls(present.astype(np.int64), counts.astype(np.int64))

    def merge(self, other: Confusion) -> None:
        ids = np.union1d(self.ids, other.ids)
        if len(ids) != len(self.ids):
            grown = np.zeros((len(ids), len(ids)), np.int64)
            position = np.searchsorted(ids, self.ids)
            grown[np.ix_(position, position)] = self.counts
            self.ids, self.counts = ids, grown
        position = np.searchsorted(self.ids, other.ids)
        self.counts[np.ix_(position, position)] += other.counts

    def iou(self, excluded: set[int]) -> dict[int, float]:
        """IoU (0-1) of every id present in GT or prediction, except `excluded`."""
        intersection = np.diag(self.counts)
        union = self.counts.sum(axis=0) + self.counts.sum(axis=1) - intersection
        return {int(i): float(inter / uni) for i, inter, uni in zip(self.ids, intersection, union)
                if uni > 0 and int(i) not in excluded}


def mean_or_none(values) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None


def percent(value: float | None) -> float | None:
    return None if value is None else 100.0 * value


# ---------------------------------------------------------------- boundary F

def boundary_tolerance(height: int, width: int) -> int:
    return max(1, round(BOUNDARY_TOLERANCE_FRACTION * float(np.hypot(height, width))))


def boundary_points(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N x 2 row/col, N ids) of pixels with a 4-neighbour of another id.

    The image edge is not a boundary: a region touching it has no contour there.
    """
    edge = np.zeros(labels.shape, bool)
    horizontal = labels[:, 1:] != labels[:, :-1]
    vertical = labels[1:, :] != labels[:-1, :]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    rows, cols = np.nonzero(edge)
    return np.stack([rows, cols], axis=1), labels[rows, cols]


def boundary_f(pred_points: np.ndarray, gt_points: np.ndarray, tolerance: int) -> float:
    """F-measure (0-1) of two boundaries given as N x 2 pixel coordinates."""
    if len(pred_points) == 0 or len(gt_points) == 0:
        # DAVIS: nothing on either side is perfect; one side empty is a complete miss.
        return 1.0 if len(pred_points) == len(gt_points) else 0.0
    # Work in the boxes around both boundaries: every point a distance can reach is inside.
    origin = np.minimum(pred_points.min(axis=0), gt_points.min(axis=0))
    shape = tuple(np.maximum(pred_points.max(axis=0), gt_points.max(axis=0)) - origin + 1)
    pred_local, gt_local = pred_points - origin, gt_points - origin

    def within_tolerance(points: np.ndarray, of: np.ndarray) -> float:
        not_boundary = np.ones(shape, np.uint8)
        not_boundary[of[:, 0], of[:, 1]] = 0
        distance = cv2.distanceTransform(not_boundary, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        return float(np.mean(distance[points[:, 0], points[:, 1]] <= tolerance))

    precision = within_tolerance(pred_local, gt_local)
    recall = within_tolerance(gt_local, pred_local)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def frame_boundary_f(pred_ids: np.ndarray, gt_ids: np.ndarray, scored_ids, unscored: np.ndarray | None) -> float | None:
    """Mean boundary F (0-1) over `scored_ids` in one frame; None when there are none."""
    scored_ids = list(scored_ids)
    if not scored_ids:
        return None
    if unscored is not None:
        # Unscored GT regions (ignore ids): give the prediction the same hole, so a region's
        # edge against the hole is a boundary on both sides and matches.
        pred_ids = np.where(unscored, -1, pred_ids.astype(np.int64))
        gt_ids = np.where(unscored, -1, gt_ids.astype(np.int64))
    tolerance = boundary_tolerance(*gt_ids.shape)
    pred_points, pred_owner = boundary_points(pred_ids)
    gt_points, gt_owner = boundary_points(gt_ids)
    return float(np.mean([boundary_f(pred_points[pred_owner == i], gt_points[gt_owner == i], tolerance)
                          for i in scored_ids]))


# ---------------------------------------------------------------- calibration

class Calibration:
    """Running per-bin pixel count, confidence sum and correct count over equal-width bins."""

    RANK_BINS = 4096   # fine enough that 8-bit confidences (k/255) never share a bin

    def __init__(self, bins: int = CALIBRATION_BINS):
        self.bins = bins
        self.count = np.zeros(bins, np.int64)
        self.confidence_sum = np.zeros(bins, np.float64)
        self.correct = np.zeros(bins, np.int64)
        self.rank_count = np.zeros(self.RANK_BINS, np.int64)
        self.rank_wrong = np.zeros(self.RANK_BINS, np.int64)

    def add(self, confidence: np.ndarray, correct: np.ndarray) -> None:
        confidence = confidence.astype(np.float64).ravel()
        # A confidence of exactly 1 belongs in the top bin, not a bin of its own.
        bin_of = np.minimum((confidence * self.bins).astype(np.int64), self.bins - 1)
        self.count += np.bincount(bin_of, minlength=self.bins)
        self.confidence_sum += np.bincount(bin_of, weights=confidence, minlength=self.bins)
        self.correct += np.bincount(bin_of, weights=correct.ravel(), minlength=self.bins).astype(np.int64)
        rank_of = np.minimum((confidence * self.RANK_BINS).astype(np.int64), self.RANK_BINS - 1)
        self.rank_count += np.bincount(rank_of, minlength=self.RANK_BINS)
        self.rank_wrong += np.bincount(rank_of[~correct.ravel()], minlength=self.RANK_BINS)

    def errors_in_least_confident(self, share: float = 0.05) -> float | None:
        """The share of wrong pixels among the `share` least-confident pixels (ties in proportion)."""
        total, wrong = self.rank_count.sum(), self.rank_wrong.sum()
        if not total or not wrong:
            return None
        budget = share * total
        below = np.cumsum(self.rank_count) - self.rank_count          # pixels in lower bins
        taken = np.clip(budget - below, 0, self.rank_count)            # pixels of each bin in the budget
        fraction = np.divide(taken, self.rank_count, out=np.zeros(len(taken)), where=self.rank_count > 0)
        return float((fraction * self.rank_wrong).sum() / wrong)

    def ece(self) -> float | None:
        total = self.count.sum()
        # sum_b n_b/N * |acc_b - conf_b| with acc_b = correct_b/n_b, conf_b = sum_b/n_b
        return float(np.abs(self.correct - self.confidence_sum).sum() / total) if total else None

    def table(self) -> list[dict]:
        rows = []
        for b in range(self.bins):
            count = int(self.count[b])
            rows.append({"lo": b / self.bins, "hi": (b + 1) / self.bins, "count": count,
                         "confidence": float(self.confidence_sum[b] / count) if count else None,
                         "accuracy": float(self.correct[b] / count) if count else None})
        return rows


# ---------------------------------------------------------------- scorer

class Scorer:
    """Accumulates scores frame by frame; `result()` is the report `evaluate` returns.

    `object_format`: True scores J (background 0 excluded), False scores mIoU.
    `ignore_index`: GT id (or ids) whose pixels are not scored (None for binary masks).
    `evaluated_ids`: when given, only GT pixels of these ids are scored and only they are classes
    (Cityscapes: the 19 evaluated labelIds); a prediction of another id there is a miss.
    Frames added here are all scored: leave keyframes out.
    """

    def __init__(self, object_format: bool, ignore_index: int | Iterable[int] | None,
                 evaluated_ids: Iterable[int] | None = None):
        self.object_format = object_format
        self.ignore_ids = ({ignore_index} if isinstance(ignore_index, int)
                           else set(ignore_index) if ignore_index is not None else set())
        self.evaluated_ids = None if evaluated_ids is None else sorted(set(evaluated_ids) - self.ignore_ids)
        self.excluded_ids = self.ignore_ids | ({0} if object_format else set())
        self.confusion = Confusion()
        self.confusion_by_distance: dict[int, Confusion] = {}
        self.frames_by_distance: dict[int, int] = {}
        self.frame_scores: list[float] = []
        self.frame_boundary_f: list[float] = []
        self.calibration: Calibration | None = None
        self.frames_scored = 0

    def add(self, pred_ids: np.ndarray, gt_ids: np.ndarray, confidence: np.ndarray | None = None,
            distance: int | None = None) -> None:
        """One frame: HxW non-negative integer ids; `confidence` HxW probabilities in [0, 1]."""
        if pred_ids.shape != gt_ids.shape:
            raise ValueError(f"prediction is {pred_ids.shape}, ground truth {gt_ids.shape}")
        if confidence is not None and confidence.shape != gt_ids.shape:
            raise ValueError(f"confidence is {confidence.shape}, ground truth {gt_ids.shape}")
        if self.evaluated_ids is not None:
            scored = np.isin(gt_ids, self.evaluated_ids)
        elif self.ignore_ids:
            scored = ~np.isin(gt_ids, list(self.ignore_ids))
        else:
            scored = np.ones(gt_ids.shape, bool)
        pred_scored, gt_scored = pred_ids[scored], gt_ids[scored]

        frame = Confusion.of_pixels(pred_scored.astype(np.int64), gt_scored.astype(np.int64))
        self.confusion.merge(frame)
        if distance is not None:
            self.confusion_by_distance.setdefault(distance, Confusion()).merge(frame)
            self.frames_by_distance[distance] = self.frames_by_distance.get(distance, 0) + 1

        frame_iou = self._iou(frame)
        if frame_iou:
            self.frame_scores.append(float(np.mean(list(frame_iou.values()))))
        boundary = frame_boundary_f(pred_ids, gt_ids, frame_iou.keys(), None if scored.all() else ~scored)
        if boundary is not None:
            self.frame_boundary_f.append(boundary)

        if confidence is not None:
            self.calibration = self.calibration or Calibration()
            self.calibration.add(confidence[scored], pred_scored == gt_scored)
        self.frames_scored += 1

    def _iou(self, confusion: Confusion) -> dict[int, float]:
        iou = confusion.iou(self.excluded_ids)
        if self.evaluated_ids is None:
            return iou
        return {i: value for i, value in iou.items() if i in self.evaluated_ids}

    def _score(self, confusion: Confusion) -> float | None:
        return percent(mean_or_none(self._iou(confusion).values()))

    def result(self) -> dict:
        """The report (JSON-serialisable). A score with nothing to average is None."""
        distances = sorted(self.confusion_by_distance)
        return {
            "metric": "J" if self.object_format else "mIoU",
            "score": self._score(self.confusion),
            "frame_mean_score": percent(mean_or_none(self.frame_scores)),
            "per_class": {str(i): 100.0 * iou for i, iou in self._iou(self.confusion).items()},
            "boundary_f": percent(mean_or_none(self.frame_boundary_f)),
            "frames_scored": self.frames_scored,
            "by_distance": {str(d): self._score(self.confusion_by_distance[d]) for d in distances},
            "frames_by_distance": {str(d): self.frames_by_distance[d] for d in distances},
            "ece": self.calibration.ece() if self.calibration else None,
            "errors_in_least_confident_5": self.calibration.errors_in_least_confident() if self.calibration else None,
            "calibration": self.calibration.table() if self.calibration else None,
            "format": None,
            "skipped_predictions": 0,
        }
