"""Score label folders against ground truth (`evaluate`) and show the report (`report_table`).

Reads the predicted, ground-truth, keyframe and confidence PNGs frame by frame and
feeds them to `metrics.Scorer`; the metric definitions are in metrics.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from rich.table import Table

from ..errors import InputError
from ..io.frames import IMAGE_SUFFIXES, natural_key
from ..io.labels import detect_format, read_label
from .metrics import Scorer


# ---------------------------------------------------------------- files

def label_files(folder: str | Path, what: str) -> dict[str, Path]:
    """stem -> image file in `folder`, in natural order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, f"{what} folder does not exist")
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: natural_key(p.name))
    by_stem: dict[str, Path] = {}
    for path in files:
        if path.stem in by_stem:
            raise InputError(path, f"shares its stem with {by_stem[path.stem].name}")
        by_stem[path.stem] = path
    if not by_stem:
        raise InputError(folder, f"{what} folder holds no label images (png)")
    return by_stem


def read_manifest(path: Path) -> dict[str, dict]:
    """stem -> the manifest's record of that frame."""
    try:
        frames = json.loads(path.read_text())["frames"]
        return {str(frame["stem"]): frame for frame in frames}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(path, f"cannot read manifest ({type(error).__name__}: {error})") from None


def distances_from_keyframes(stems, keyframe_stems: set[str]) -> dict[str, int]:
    """Frames to the nearest keyframe, by position in the natural order of all stems."""
    order = sorted(set(stems) | keyframe_stems, key=natural_key)
    keyframe_positions = np.array([i for i, stem in enumerate(order) if stem in keyframe_stems])
    if len(keyframe_positions) == 0:
        return {}
    return {stem: int(np.abs(keyframe_positions - i).min()) for i, stem in enumerate(order)}


def read_confidence(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode != "L":
                raise InputError(path, f"confidence must be an 8-bit grey PNG, not mode {image.mode!r}")
            return np.asarray(image, dtype=np.float32) / np.float32(255)
    except (OSError, ValueError, SyntaxError) as error:
        raise InputError(path, f"cannot read confidence PNG ({error})") from None


def evaluate(pred_dir, gt_dir, *, keyframes_dir=None, confidence_dir=None, manifest_path=None,
             label_format: str | None = None, ignore_index: int | None = 255, color_table=None) -> dict:
    """Score the label PNGs in `pred_dir` against those in `gt_dir` (matched by stem).

    Keyframes (stems in `keyframes_dir`, or `keyframe: true` in the manifest) are
    not scored. The manifest is `manifest_path`, else `pred_dir/../manifest.json`
    if it exists; its `distance` per frame groups the scores, else distances come
    from the keyframe stems. Returns `Scorer.result()` plus the format read and
    the number of predictions that had no ground truth.
    """
    pred_files = label_files(pred_dir, "prediction")
    gt_files = label_files(gt_dir, "ground-truth")
    keyframe_stems = set(label_files(keyframes_dir, "keyframe")) if keyframes_dir is not None else set()

    if manifest_path is not None:
        if not Path(manifest_path).is_file():
            raise InputError(manifest_path, "manifest does not exist")
        manifest = read_manifest(Path(manifest_path))
    else:  # `autolabel propagate` writes out/labels next to out/manifest.json
        beside_predictions = Path(pred_dir).resolve().parent / "manifest.json"
        manifest = read_manifest(beside_predictions) if beside_predictions.is_file() else {}
    keyframe_stems |= {stem for stem, frame in manifest.items() if frame.get("keyframe")}
    if manifest:
        distances = {stem: int(frame["distance"]) for stem, frame in manifest.items() if "distance" in frame}
    else:
        distances = distances_from_keyframes(pred_files, keyframe_stems)

    scored_stems = [stem for stem in gt_files if stem not in keyframe_stems]
    if not scored_stems:
        raise InputError(gt_dir, "every ground-truth frame is a keyframe; nothing to score")
    for stem in scored_stems:
        if stem not in pred_files:
            raise InputError(Path(pred_dir) / f"{stem}.png",
                             f"no such prediction (ground truth {gt_files[stem]} needs one)")

    fmt = detect_format(list(gt_files.values()), kind=label_format, ignore_index=ignore_index,
                        color_table=color_table)
    scorer = Scorer(fmt.is_object_format, fmt.ignore_index)
    for stem in scored_stems:
        gt = read_label(gt_files[stem], fmt)
        pred = read_label(pred_files[stem], fmt)
        if pred.shape != gt.shape:
            raise InputError(pred_files[stem], f"is {pred.shape[1]}x{pred.shape[0]} but its ground truth "
                                               f"{gt_files[stem].name} is {gt.shape[1]}x{gt.shape[0]}")
        confidence = None
        if confidence_dir is not None:
            confidence_path = Path(confidence_dir) / f"{stem}.png"
            if not confidence_path.is_file():
                raise InputError(confidence_path, "missing: no confidence for this frame")
            confidence = read_confidence(confidence_path)
            if confidence.shape != gt.shape:
                raise InputError(confidence_path, f"is {confidence.shape[1]}x{confidence.shape[0]} but its "
                                                  f"ground truth is {gt.shape[1]}x{gt.shape[0]}")
        scorer.add(pred, gt, confidence, distances.get(stem))

    return scorer.result() | {
        "format": fmt.describe(),
        "skipped_predictions": len(set(pred_files) - set(gt_files)),
        "keyframes_excluded": len(set(gt_files) & keyframe_stems),
    }


# ---------------------------------------------------------------- terminal

def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def report_table(report: dict) -> list[Table]:
    """Summary, per-class IoU, by-distance and (with confidence) calibration tables."""
    metric = report["metric"]
    summary = Table(title="Evaluation")
    summary.add_column("Measure")
    summary.add_column("Value", justify="right")
    summary.add_row(f"{metric} (%)", _number(report["score"]))
    if "frame_mean_score" in report:
        summary.add_row(f"{metric}, mean of frames (%)", _number(report["frame_mean_score"]))
    summary.add_row("boundary F (%)", _number(report["boundary_f"]))
    summary.add_row("ECE", _number(report["ece"], 4))
    summary.add_row("frames scored", str(report["frames_scored"]))
    if "keyframes_excluded" in report:
        summary.add_row("keyframes excluded", str(report["keyframes_excluded"]))
    summary.add_row("predictions without ground truth", str(report["skipped_predictions"]))
    if report.get("format"):
        summary.add_row("format", report["format"])
    tables = [summary]

    per_class = Table(title="IoU per object" if metric == "J" else "IoU per class")
    per_class.add_column("Id", justify="right")
    per_class.add_column("IoU (%)", justify="right")
    for class_id, iou in report["per_class"].items():
        per_class.add_row(class_id, _number(iou))
    tables.append(per_class)

    if report["by_distance"]:
        by_distance = Table(title=f"{metric} by distance from the nearest keyframe")
        by_distance.add_column("Frames away", justify="right")
        by_distance.add_column("Frames", justify="right")
        by_distance.add_column(f"{metric} (%)", justify="right")
        frame_counts = report.get("frames_by_distance", {})
        for distance, score in report["by_distance"].items():
            by_distance.add_row(distance, str(frame_counts.get(distance, "")), _number(score))
        tables.append(by_distance)

    if report["calibration"]:
        calibration = Table(title="Calibration (reliability diagram)")
        calibration.add_column("Confidence", justify="right")
        calibration.add_column("Pixels", justify="right")
        calibration.add_column("Mean confidence", justify="right")
        calibration.add_column("Accuracy", justify="right")
        for row in report["calibration"]:
            calibration.add_row(f"{row['lo']:.1f}–{row['hi']:.1f}", str(row["count"]),
                                _number(row["confidence"], 3), _number(row["accuracy"], 3))
        tables.append(calibration)
    return tables
