"""Official scoring protocols that `evaluate --protocol` reproduces: DAVIS-2017 semi-supervised, Cityscapes.

DAVIS (davisvideochallenge/davis2017-evaluation, semi-supervised task), per sequence:
  * frame window: every ground-truth frame in name order except the first and the last; keyframes
    inside the window are scored like any other frame (the official code knows only the first one).
  * objects: ids 1..max of the first ground-truth frame; 255 (void) in the ground truth counts as
    background, as the official code does for this task. Binary 0/255 masks are object 1.
  * per object and frame: J = IoU (1 when both masks are empty); F = boundary F with the official
    boundary map (`seg2bmap`) and a disk of radius ceil(0.008 * diagonal).
  * per object: Mean = mean over the window, Recall = share of frames above 0.5, Decay = mean of the
    first quarter of the window minus mean of the last quarter (the official bins).
  * J-Mean, F-Mean, … of the sequence: mean over its objects; J&F-Mean = (J-Mean + F-Mean) / 2.
Cityscapes (cityscapesScripts evalPixelLevelSemanticLabeling): only the 19 evaluated labelIds are
  classes; ground-truth pixels of every other id are not scored; a prediction of a non-evaluated id
  on a scored pixel is a miss. IoU per class pooled over the frames, mIoU = mean over classes with
  a non-empty union. That is `Scorer(evaluated_ids=CITYSCAPES_EVALUATED)` in metrics.py.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..io.classnames import CITYSCAPES_STEM

PROTOCOLS = ("plain", "davis", "cityscapes")
HEADLINE = {"davis": "J&F-Mean", "cityscapes": "mIoU"}   # plain: the clip's pooled J or mIoU
DAVIS_BOUNDARY_FRACTION = 0.008


def frame_key(stem: str) -> str:
    """What identifies a frame across folders: <city>_<seq>_<frame> for any Cityscapes file
    (…_leftImg8bit, …_gtFine_labelIds), else the stem itself."""
    match = CITYSCAPES_STEM.fullmatch(stem)
    return match["frame"] if match else stem


# ---------------------------------------------------------------- DAVIS

def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """The official one-pixel boundary map of a binary mask (offset half a pixel towards the origin)."""
    east, south, south_east = (np.zeros_like(mask) for _ in range(3))
    east[:, :-1] = mask[:, 1:]
    south[:-1, :] = mask[1:, :]
    south_east[:-1, :-1] = mask[1:, 1:]
    boundary = (mask ^ east) | (mask ^ south) | (mask ^ south_east)
    boundary[-1, :] = mask[-1, :] ^ east[-1, :]
    boundary[:, -1] = mask[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def disk(radius: int) -> np.ndarray:
    """skimage.morphology.disk: the pixels within `radius` of the centre."""
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def davis_f(pred: np.ndarray, gt: np.ndarray) -> float:
    """Boundary F of two binary masks as davis2017 `f_measure` computes it."""
    radius = math.ceil(DAVIS_BOUNDARY_FRACTION * float(np.linalg.norm(pred.shape)))
    pred_boundary, gt_boundary = seg2bmap(pred), seg2bmap(gt)
    kernel = disk(radius)
    pred_dilated = cv2.dilate(pred_boundary.astype(np.uint8), kernel).astype(bool)
    gt_dilated = cv2.dilate(gt_boundary.astype(np.uint8), kernel).astype(bool)
    n_pred, n_gt = int(pred_boundary.sum()), int(gt_boundary.sum())
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0   # precision 1 and recall 0, or the other way round
    precision = float((pred_boundary & gt_dilated).sum()) / n_pred
    recall = float((gt_boundary & pred_dilated).sum()) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def davis_j(pred: np.ndarray, gt: np.ndarray) -> float:
    union = int((pred | gt).sum())
    return 1.0 if union == 0 else float((pred & gt).sum()) / union


def davis_statistics(values: list[float]) -> tuple[float, float, float]:
    """(Mean, Recall, Decay) of one object's per-frame values, as davis2017 `db_statistics`."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(np.nanmean(values))
    recall = float(np.nanmean(values > 0.5))
    # the official bins, uint8 cast included (windows of up to 256 frames, like every DAVIS sequence)
    ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.uint8)
    bins = [values[ids[i]:ids[i + 1] + 1] for i in range(4)]
    decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return mean, recall, decay


class DavisScorer:
    """Per-object J and F over a sequence's frame window; `result()` has the official measures (percent)."""

    def __init__(self, n_objects: int):
        self.objects = list(range(1, n_objects + 1))
        self.j: dict[int, list[float]] = {obj: [] for obj in self.objects}
        self.f: dict[int, list[float]] = {obj: [] for obj in self.objects}
        self.frames_scored = 0

    def add(self, pred_ids: np.ndarray, gt_ids: np.ndarray) -> None:
        """One frame of object ids (0 background; the ground truth's void already made background)."""
        for obj in self.objects:
            pred, gt = pred_ids == obj, gt_ids == obj
            self.j[obj].append(davis_j(pred, gt))
            self.f[obj].append(davis_f(pred, gt))
        self.frames_scored += 1

    def result(self) -> dict:
        per_object, columns = {}, {}
        for obj in self.objects:
            j_mean, j_recall, j_decay = davis_statistics(self.j[obj])
            f_mean, f_recall, f_decay = davis_statistics(self.f[obj])
            per_object[str(obj)] = {"J-Mean": 100 * j_mean, "J-Recall": 100 * j_recall, "J-Decay": 100 * j_decay,
                                    "F-Mean": 100 * f_mean, "F-Recall": 100 * f_recall, "F-Decay": 100 * f_decay}
        for measure in ("J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"):
            columns[measure] = float(np.mean([row[measure] for row in per_object.values()])) if per_object else None
        both = None if columns["J-Mean"] is None else (columns["J-Mean"] + columns["F-Mean"]) / 2
        return {"J&F-Mean": both, **columns, "per_object": per_object, "frames_scored": self.frames_scored}
