"""Score label folders against ground truth (`evaluate`), by protocol: plain, davis or cityscapes.

Reads the predicted, ground-truth, keyframe and confidence PNGs frame by frame and feeds them
to `metrics.Scorer` (plain, cityscapes) or `protocols.DavisScorer`; the metric definitions are in
metrics.py and protocols.py, the tables in report.py. Files are matched by frame, not by name:
a Cityscapes `…_gtFine_labelIds` file is the frame of the `…_leftImg8bit` prediction.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from ..io.frames import IMAGE_SUFFIXES, natural_key
from ..progress import counted
from ..io.labels import detect_format, read_label
from ..io.classnames import CITYSCAPES_EVALUATED, class_names, looks_like_cityscapes
from .metrics import Scorer
from .protocols import HEADLINE, PROTOCOLS, DavisScorer, frame_key

CITYSCAPES_NOT_IDS = ("_color", "_instanceIds")


# ---------------------------------------------------------------- files

def label_files(folder: str | Path, what: str) -> dict[str, Path]:
    """frame key (protocols.frame_key of the stem) -> image file in `folder`, in natural order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, f"{what} folder does not exist")
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: natural_key(p.name))
    by_stem: dict[str, Path] = {}
    for path in files:
        if path.stem.endswith(CITYSCAPES_NOT_IDS) and frame_key(path.stem) != path.stem:
            continue  # a gtFine folder also holds each frame's colour and instance images
        key = frame_key(path.stem)
        if key in by_stem:
            raise InputError(path, f"is a second file for the frame of {by_stem[key].name}")
        by_stem[key] = path
    if not by_stem:
        raise InputError(folder, f"{what} folder holds no label images (png)")
    return by_stem


def read_manifest(path: Path) -> tuple[dict[str, dict], set[int] | None, dict]:
    """(frame key -> the manifest's record of that frame, the keyframes' class ids if recorded, the manifest)."""
    try:
        manifest = json.loads(path.read_text())
        frames = {frame_key(str(frame["stem"])): frame for frame in manifest["frames"]}
        class_ids = manifest.get("class_ids")
        return frames, None if class_ids is None else {int(i) for i in class_ids}, manifest
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(path, f"cannot read manifest ({type(error).__name__}: {error})") from None


def by_number(keys, reference) -> dict[str, str]:
    """key -> the reference key it stands for: itself, or the one reference key with the same number
    (00005 is frame 000005), find_keyframes' rule; keys that match neither are left out."""
    reference = list(reference)
    known = set(reference)
    numbered: dict[int, list[str]] = {}
    for key in reference:
        if key.isdigit():
            numbered.setdefault(int(key), []).append(key)
    matched = {}
    for key in keys:
        if key in known:
            matched[key] = key
        elif key.isdigit() and len(numbered.get(int(key), [])) == 1:
            matched[key] = numbered[int(key)][0]
    return matched


def distances_from_keyframes(stems, keyframe_stems: set[str]) -> dict[str, int]:
    """Frames to the nearest keyframe, by position in the natural order of all frame keys."""
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


def read_ids(path: Path) -> np.ndarray:
    """The pixel values of a label PNG as the DAVIS code reads them: palette index or grey value."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("P", "L", "I", "I;16"):
                raise InputError(path, f"object masks are palette or grey PNGs, not mode {image.mode!r}")
            return np.asarray(image).astype(np.int64)
    except (OSError, ValueError, SyntaxError) as error:
        raise InputError(path, f"cannot read label PNG ({error})") from None


def check_shape(path: Path, array: np.ndarray, gt: np.ndarray, gt_path: Path) -> None:
    if array.shape != gt.shape:
        raise InputError(path, f"is {array.shape[1]}x{array.shape[0]} but its ground truth "
                               f"{gt_path.name} is {gt.shape[1]}x{gt.shape[0]}")


def find_prediction(pred_files: dict[str, Path], key: str, pred_dir, gt_path: Path) -> Path:
    if key not in pred_files:
        raise InputError(Path(pred_dir) / f"{key}.png", f"no such prediction (ground truth {gt_path} needs one)")
    return pred_files[key]


def evaluate(pred_dir, gt_dir, *, protocol: str = "plain", keyframes_dir=None, confidence_dir=None,
             manifest_path=None, label_format: str | None = None, ignore_index: int | list[int] | None = None,
             color_table=None, names: str | Path | None = None) -> dict:
    """Score the label PNGs in `pred_dir` against those in `gt_dir` (matched by frame).

    plain (and cityscapes): keyframes (in `keyframes_dir`, or `keyframe: true` in the manifest) are
    not scored. The manifest is `manifest_path`, else `pred_dir/../manifest.json` if it exists; its
    `distance` per frame groups the scores, else distances come from the keyframes. davis: the
    official frame window instead (protocols.py). `ignore_index`: one id or several ([]: none; None: the
    manifest's, else 255). `confidence_dir`: default OUT/confidence when the predictions are OUT/labels
    beside a manifest. `names`: 'cityscapes', 'camvid' or an `id,name` CSV (default: Cityscapes names for
    Cityscapes files, else the names file the manifest recorded). Ground-truth files are matched to
    predictions by stem, or by frame number when unambiguous (00005.png is frame 000005). `notes` in
    the report say where settings came from.
    Returns the report: `Scorer.result()` or the DAVIS measures, plus `protocol` and `headline`.
    """
    if protocol not in PROTOCOLS:
        raise InputError(protocol, f"unknown protocol; choose one of {', '.join(PROTOCOLS)}")
    pred_files = label_files(pred_dir, "prediction")
    gt_files, renamed = match_by_number(label_files(gt_dir, "ground-truth"), pred_files)
    notes = [f"{counted(renamed, 'ground-truth file')} matched to predictions by frame number "
             f"(leading zeros aside)"] if renamed else []
    if protocol == "davis":
        return evaluate_davis(pred_files, gt_files, pred_dir, gt_dir, label_format) | {"notes": notes}

    keyframe_keys = set(by_number(label_files(keyframes_dir, "keyframe"), pred_files).values()) \
        if keyframes_dir is not None else set()
    if manifest_path is None:  # `autolabel propagate` writes out/labels next to out/manifest.json
        beside_predictions = Path(pred_dir).resolve().parent / "manifest.json"
        manifest_path = beside_predictions if beside_predictions.is_file() else None
    elif not Path(manifest_path).is_file():
        raise InputError(manifest_path, "manifest does not exist")
    manifest, keyframe_classes, recorded = read_manifest(Path(manifest_path)) if manifest_path else ({}, None, {})
    if ignore_index is None:  # not given: what the propagation used, else 255
        recorded_ignore = recorded.get("settings", {}).get("ignore_index")
        ignore_index = 255 if recorded_ignore is None else int(recorded_ignore)
        ignore_note = f"ignore id {ignore_index}: " + ("the default" if recorded_ignore is None else
                                                       f"from {manifest_path} (--ignore-index overrides it)")
    else:
        ignore_note = None
    ignore_ids = [ignore_index] if isinstance(ignore_index, int) else list(ignore_index or [])
    if confidence_dir is None and manifest_path and Path(pred_dir).name == "labels" \
            and (Path(pred_dir).parent / "confidence").is_dir():
        confidence_dir = Path(pred_dir).parent / "confidence"
        notes.append(f"confidence: {confidence_dir} (beside the predictions)")
    if names is None and recorded.get("names") and Path(recorded["names"]).is_file():
        names = recorded["names"]
        notes.append(f"class names: {names} (recorded in the manifest)")
    keyframe_keys |= {key for key, frame in manifest.items() if frame.get("keyframe")}
    if manifest:
        distances = {key: int(frame["distance"]) for key, frame in manifest.items() if "distance" in frame}
    else:
        distances = distances_from_keyframes(pred_files, keyframe_keys)

    scored_keys = [key for key in gt_files if key not in keyframe_keys]
    if not scored_keys:
        raise InputError(gt_dir, "every ground-truth frame is a keyframe; nothing to score")
    for key in scored_keys:
        find_prediction(pred_files, key, pred_dir, gt_files[key])

    fmt = detect_format(list(gt_files.values()), kind=label_format, ignore_index=ignore_ids[0] if ignore_ids else None,
                        color_table=color_table)
    if ignore_note and fmt.ignore_index is not None:  # binary masks have no ignore id to speak of
        notes.insert(0, ignore_note)
    if protocol == "cityscapes" and fmt.kind != "ids":
        raise InputError(gt_dir, f"Cityscapes ground truth is grayscale labelIds, not {fmt.describe()}")
    scorer = Scorer(fmt.is_object_format, ignore_ids if fmt.ignore_index is not None else None,
                    evaluated_ids=CITYSCAPES_EVALUATED if protocol == "cityscapes" else None)
    if keyframe_classes is None and keyframes_dir is not None:
        keyframe_classes = set()
        for path in label_files(keyframes_dir, "keyframe").values():
            keyframe_classes.update(np.unique(read_label(path, fmt)).tolist())
    for key in scored_keys:
        gt = read_label(gt_files[key], fmt)
        pred = read_label(pred_files[key], fmt)
        check_shape(pred_files[key], pred, gt, gt_files[key])
        confidence = None
        if confidence_dir is not None:
            confidence_path = Path(confidence_dir) / f"{pred_files[key].stem}.png"
            if not confidence_path.is_file():
                raise InputError(confidence_path, "missing: no confidence for this frame")
            confidence = read_confidence(confidence_path)
            check_shape(confidence_path, confidence, gt, gt_files[key])
        scorer.add(pred, gt, confidence, distances.get(key))

    report = scorer.result()
    if names is None and (protocol == "cityscapes" or looks_like_cityscapes(p.stem for p in gt_files.values())):
        names = "cityscapes"
    known = class_names(names)
    missing = None if keyframe_classes is None else sorted(
        int(i) for i in report["per_class"] if int(i) not in keyframe_classes)
    headline = HEADLINE.get(protocol, report["metric"])
    return report | {
        "protocol": protocol, "headline": {"name": headline, "value": report["score"]},
        **({"mIoU": report["score"]} if protocol == "cityscapes" else {}),
        "class_names": {i: known[int(i)] for i in report["per_class"] if int(i) in known},
        "not_in_keyframes": missing,
        "max_reachable": None if missing is None or not report["per_class"] else
        100.0 * (len(report["per_class"]) - len(missing)) / len(report["per_class"]),
        "format": fmt.describe(),
        "skipped_predictions": len(set(pred_files) - set(gt_files)),
        "keyframes_excluded": len(set(gt_files) & keyframe_keys),
        "notes": notes,
    }


def match_by_number(gt_files: dict[str, Path], pred_files: dict[str, Path]) -> tuple[dict[str, Path], int]:
    """Ground-truth files keyed by their prediction's key (by_number), and how many needed the number."""
    matched = by_number(gt_files, pred_files)
    renamed = sum(key != target for key, target in matched.items())
    if not renamed or len(set(matched.values())) != len(matched):
        return gt_files, 0
    return {matched.get(key, key): path for key, path in gt_files.items()}, renamed


def evaluate_davis(pred_files: dict[str, Path], gt_files: dict[str, Path], pred_dir, gt_dir,
                   label_format: str | None) -> dict:
    """The DAVIS-2017 semi-supervised measures of one sequence (protocols.py says how)."""
    window = sorted(gt_files, key=natural_key)
    if len(window) < 3:
        raise InputError(gt_dir, "DAVIS scores the frames between the first and the last ground-truth frame; "
                                 f"there are {len(window)}")
    fmt = detect_format(list(gt_files.values()), kind=label_format, ignore_index=255)
    if not fmt.is_object_format:
        raise InputError(gt_dir, f"DAVIS ground truth holds object masks, not {fmt.describe()}")

    def objects(ids: np.ndarray) -> np.ndarray:
        # binary masks are object 1; 255 elsewhere is void, which this task scores as background
        return (ids == 255).astype(np.int64) if fmt.kind == "binary" else np.where(ids == 255, 0, ids)

    first = objects(read_label(gt_files[window[0]], fmt))
    scorer = DavisScorer(int(first.max()))
    for key in window[1:-1]:
        gt = objects(read_label(gt_files[key], fmt))
        pred_path = find_prediction(pred_files, key, pred_dir, gt_files[key])
        pred = read_ids(pred_path)
        if fmt.kind == "binary":  # our own binary output (0/255) scores like the DAVIS export (0/1)
            pred = np.where(pred == 255, 1, pred)
        check_shape(pred_path, pred, gt, gt_files[key])
        scorer.add(pred, gt)
    result = scorer.result()
    return result | {
        "protocol": "davis", "headline": {"name": HEADLINE["davis"], "value": result["J&F-Mean"]},
        "window": [gt_files[window[1]].stem, gt_files[window[-2]].stem], "objects": len(scorer.objects),
        "format": fmt.describe(), "skipped_predictions": len(set(pred_files) - set(gt_files)),
    }
