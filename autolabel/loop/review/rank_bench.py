"""Does review's per-frame rank find the frames that are most wrong? For propagation results with
dense ground truth, the Spearman rank correlation, per clip, between each frame's true error and
(a) its share of doubtful pixels (what review ranks by), (b) 1 - its mean confidence (what it ranked
by before). Keyframes are left out.

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
from .run import frame_score


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


def clip_rows(clip: ClipResult, gt_labels: Path) -> dict:
    """Per non-keyframe: true error share, 1 - score, doubtful share, 1 - mean confidence."""
    fmt = clip.label_format()
    gt_fmt = detect_format([gt_labels / f"{clip.stems[0]}.png"], kind=fmt.kind, ignore_index=fmt.ignore_index)
    keyframes = set(clip.manifest["keyframes"])
    columns = {"error": [], "one_minus_score": [], "doubtful": [], "one_minus_mean": []}
    for stem in clip.stems:
        if stem in keyframes or not (gt_labels / f"{stem}.png").is_file():
            continue
        label = read_label(clip.folder / "labels" / f"{stem}.png", fmt)
        truth = read_label(gt_labels / f"{stem}.png", gt_fmt)
        confidence = read_confidence(clip.folder / "confidence" / f"{stem}.png")
        missed, extra = wrong_pixels(label, truth, fmt.is_object_format, fmt.ignore_index)
        scored = truth != fmt.ignore_index if fmt.ignore_index is not None else np.ones(truth.shape, bool)
        columns["error"].append((missed | extra).sum() / max(1, scored.sum()))
        columns["one_minus_score"].append(1 - frame_score(label, truth, fmt.is_object_format, fmt.ignore_index))
        columns["doubtful"].append((confidence < LOW_CONFIDENCE).mean())
        columns["one_minus_mean"].append(1 - confidence.mean())
    return {name: np.nan_to_num(np.array(values), nan=0.0) for name, values in columns.items()}


def main(out: str, gt_clips: str) -> None:
    table = Table(title=f"Spearman rank correlation with each frame's true error ({out}; keyframes left out)")
    for column in ("clip", "frames", "doubtful share vs wrong pixels", "1 - mean conf. vs wrong pixels",
                   "doubtful share vs 1 - J/mIoU", "1 - mean conf. vs 1 - J/mIoU"):
        table.add_column(column, justify="left" if column == "clip" else "right")
    means = []
    for clip in find_results(Path(out)):
        rows = clip_rows(clip, Path(gt_clips) / clip.name / "labels")
        values = [spearman(rows["doubtful"], rows["error"]), spearman(rows["one_minus_mean"], rows["error"]),
                  spearman(rows["doubtful"], rows["one_minus_score"]),
                  spearman(rows["one_minus_mean"], rows["one_minus_score"])]
        means.append(values)
        table.add_row(clip.name, str(len(rows["error"])), *(f"{v:.2f}" for v in values))
    table.add_row("mean", "", *(f"{v:.2f}" for v in np.nanmean(np.array(means), axis=0)))
    tables.print(table)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
