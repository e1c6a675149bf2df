"""Does review's per-frame rank find the frames that are most wrong? For propagation results with
dense ground truth, the Spearman rank correlation, per clip, between each frame's true error (1 - its
J or mIoU, and its share of wrong pixels) and what might predict it from the confidence alone:
1 - the expected score (what review ranks by), the share of doubtful pixels, 1 - the mean confidence
(what review ranked by before). Keyframes are left out.

    python -m autolabel.loop.review.rank_bench OUT GT_CLIPS
OUT: a `batch` output folder (OUT/<clip>/labels, confidence, manifest.json); GT_CLIPS: the folder
of the clips it was made from (GT_CLIPS/<clip>/labels, one label per frame).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from rich.table import Table

from ...evaluation.evaluate import read_confidence
from ...io.labels import detect_format, read_label
from ...io.results import ClipResult, find_results
from ...progress import tables
from .draw import LOW_CONFIDENCE, wrong_pixels
from .run import expected_score, frame_score


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank."""
    order = np.argsort(values, kind="stable")
    ranked = np.empty(len(values))
    ranked[order] = np.arange(len(values))
    for value in np.unique(values):
        tied = values == value
        ranked[tied] = ranked[tied].mean()
    return ranked


def spearman(a, b) -> float:
    a, b = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


PREDICTORS = {"1 - expected score": "expected", "doubtful share": "doubtful", "1 - mean confidence": "mean"}
ERRORS = {"1 - J/mIoU": "score", "wrong pixels": "wrong"}


def clip_rows(clip: ClipResult, gt_labels: Path) -> dict[str, np.ndarray]:
    """Per non-keyframe: the true errors (ERRORS) and the predictors (PREDICTORS)."""
    fmt = clip.label_format()
    gt_fmt = detect_format([gt_labels / f"{clip.stems[0]}.png"], kind=fmt.kind, ignore_index=fmt.ignore_index)
    keyframes = set(clip.manifest["keyframes"])
    columns: dict[str, list[float]] = {"score": [], "wrong": [], "expected": [], "doubtful": [], "mean": []}
    for stem in clip.stems:
        if stem in keyframes or not (gt_labels / f"{stem}.png").is_file():
            continue
        label = read_label(clip.folder / "labels" / f"{stem}.png", fmt)
        truth = read_label(gt_labels / f"{stem}.png", gt_fmt)
        confidence = read_confidence(clip.folder / "confidence" / f"{stem}.png")
        missed, extra = wrong_pixels(label, truth, fmt.is_object_format, fmt.ignore_index)
        scored = truth != fmt.ignore_index if fmt.ignore_index is not None else np.ones(truth.shape, bool)
        columns["score"].append(1 - frame_score(label, truth, fmt.is_object_format, fmt.ignore_index))
        columns["wrong"].append((missed | extra).sum() / max(1, scored.sum()))
        columns["expected"].append(1 - expected_score(label, confidence, fmt.is_object_format, fmt.ignore_index))
        columns["doubtful"].append((confidence < LOW_CONFIDENCE).mean())
        columns["mean"].append(1 - confidence.mean())
    return {name: np.nan_to_num(np.array(values), nan=0.0) for name, values in columns.items()}


def main(out: str, gt_clips: str) -> None:
    table = Table(title=f"Spearman rank correlation of each frame's true error with a prediction from its confidence "
                        f"({out}; keyframes left out)")
    pairs = [(error, predictor) for error in ERRORS for predictor in PREDICTORS]
    table.add_column("clip")
    table.add_column("frames", justify="right")
    for error, predictor in pairs:
        table.add_column(f"{error} ~ {predictor}", justify="right")
    rows = []
    for clip in find_results(Path(out)):
        columns = clip_rows(clip, Path(gt_clips) / clip.name / "labels")
        values = [spearman(columns[PREDICTORS[p]], columns[ERRORS[e]]) for e, p in pairs]
        rows.append(values)
        table.add_row(clip.name, str(len(columns["score"])), *(f"{v:.2f}" for v in values))
    table.add_row("mean", "", *(f"{v:.2f}" for v in np.nanmean(np.array(rows), axis=0)))
    tables.print(table)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
