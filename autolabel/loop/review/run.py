"""`review`: one streaming pass writes overlay.mp4 and collects per-frame numbers; the worst frames are
read again for the contact sheet. Memory does not depend on the clip's length."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ...errors import InputError
from ...io.frames import FrameSource
from ...io.labels import detect_format, read_label
from ...evaluation.evaluate import read_confidence
from ...evaluation.metrics import Confusion
from ...progress import counted
from . import draw, fonts
from ...io.classnames import class_names
from .classes import CITYSCAPES, looks_like_cityscapes, names_beside, read_names
from .palette import ClassColors
from .sheet import CELL, contact_sheet
from .timeline import timeline
from .video import VideoOut, video_width

REVIEW = "review"


def _manifest(out: Path) -> dict:
    path = out / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
        manifest["frames"][0]["stem"], manifest["keyframes"], manifest["settings"]["label_format"]
        return manifest
    except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
        raise InputError(path, f"not a propagation result ({type(error).__name__}: {error})") from None


def frame_score(pred: np.ndarray, gt: np.ndarray, object_format: bool, ignore_index: int | None) -> float:
    """J (objects) or mIoU (classes) of one frame in [0, 1]; NaN when there is nothing to score."""
    scored = gt != ignore_index if ignore_index is not None else np.ones(gt.shape, bool)
    excluded = ({ignore_index} if ignore_index is not None else set()) | ({0} if object_format else set())
    iou = Confusion.of_pixels(pred[scored].astype(np.int64), gt[scored].astype(np.int64)).iou(excluded)
    return float(np.mean(list(iou.values()))) if iou else float("nan")


def expected_score(label: np.ndarray, confidence: np.ndarray, object_format: bool, ignore_index: int | None) -> float:
    """J (objects) or mIoU (classes) of one frame in [0, 1] as its confidence predicts it: per labeled
    class, S = the summed confidence of its pixels (the expected right ones) over an expected union of
    its pixels and as many missed as wrong ones, S / (2 area - S); NaN when nothing is scored. Ranks
    frames by their true score far better than mean confidence, a mean over mostly easy pixels
    (python -m autolabel.loop.review.rank_bench)."""
    rows = np.bincount(label.ravel(), minlength=1) if label.min(initial=0) >= 0 else None
    if rows is None:
        return float("nan")
    sums = np.bincount(label.ravel(), weights=confidence.ravel().astype(np.float64), minlength=len(rows))
    excluded = ({ignore_index} if ignore_index is not None else set()) | ({0} if object_format else set())
    scores = [sums[k] / (2 * rows[k] - sums[k]) for k in np.flatnonzero(rows) if int(k) not in excluded]
    return float(np.mean(scores)) if scores else float("nan")


def spacing(n_frames: int, count: int) -> int:
    """How far apart spread_worst keeps its frames."""
    return max(1, n_frames // (2 * count))


def spread_worst(frames: list[int], values: np.ndarray, count: int) -> list[int]:
    """The `count` frames with the lowest values, at least n / (2 count) frames apart where the clip
    allows: one per dip, not six neighbours from the same dip. Worst first."""
    order = sorted(frames, key=lambda i: (values[i], i))
    apart = spacing(len(values), count)
    chosen: list[int] = []
    for i in order:
        if len(chosen) < count and all(abs(i - j) >= apart for j in chosen):
            chosen.append(i)
    return chosen


def _class_names(names, keyframes, fmt, ids, manifest: dict) -> dict[int, str] | None:
    """--names; else the names file the manifest recorded, or one beside the keyframes (-k, or the
    folder the manifest recorded); else Cityscapes' names for labelIds, or the format's own."""
    if names is not None:
        return class_names(names)
    recorded = manifest.get("names")
    path = names_beside(keyframes or manifest.get("keyframes_dir")) if not recorded or not Path(recorded).is_file() \
        else recorded
    if path is not None:
        return read_names(path)
    if looks_like_cityscapes(fmt.kind, ids, fmt.ignore_index):
        return {i: name for i, (name, _) in CITYSCAPES.items()}
    if fmt.kind == "binary":
        return {0: "background", 255: "object"}
    if fmt.kind == "rgb":   # ids are rows of the colour table: say which colour
        return {i: "rgb({},{},{})".format(*color) for i, color in enumerate(fmt.colors)}
    return None


def review(out, *, video=None, gt=None, names=None, keyframes=None, worst: int = 6, fps: float = 10.0,
           overwrite: bool = False, on_frame: Callable[[int, int], None] = lambda done, total: None) -> dict:
    """Write OUT/review/{overlay.mp4, contact-sheet.png, timeline.png, review.json}; return review.json's content.

    `names`: a names CSV, or "cityscapes"; default: a names file beside `keyframes`, else
    Cityscapes' names when the ids look like labelIds.
    """
    out = Path(out)
    fonts.missing()  # forget characters an earlier review could not draw
    manifest = _manifest(out)
    target = out / REVIEW
    if target.exists() and not overwrite:
        raise InputError(target, "already exists; pass --overwrite to replace it")
    stems = [frame["stem"] for frame in manifest["frames"]]
    keyframe_set = {i for i, frame in enumerate(manifest["frames"]) if frame.get("keyframe")}
    settings = manifest["settings"]
    labels_dir, confidence_dir = out / "labels", out / "confidence"
    key_paths = [labels_dir / f"{stem}.png" for stem in manifest["keyframes"]]
    fmt = detect_format(key_paths, kind=settings["label_format"], ignore_index=settings.get("ignore_index"))
    ids: set[int] = set()
    for path in key_paths:
        ids.update(np.unique(read_label(path, fmt)).tolist())
    known_names = _class_names(names, keyframes, fmt, ids, manifest)
    colors = ClassColors.for_labels(fmt, ids, cityscapes=known_names is not None and names is None
                                    and looks_like_cityscapes(fmt.kind, ids, fmt.ignore_index))
    gt_files = {}
    if gt is not None:
        gt = Path(gt)
        if not gt.is_dir():
            raise InputError(gt, "ground-truth folder does not exist")
        gt_files = {stem: gt / f"{stem}.png" for stem in stems if (gt / f"{stem}.png").is_file()}
        if not gt_files:
            raise InputError(gt, "holds no label PNG named like the frames")
    source = FrameSource(video or manifest["video"], accept_short=bool(manifest.get("accept_short_video")))
    staging = out / f".{REVIEW}.partial"
    try:
        if source.stems != stems:
            raise InputError(source.path, f"has {len(source)} frames, the result {len(stems)} (or other names)")
        if staging.exists():
            shutil.rmtree(staging)  # ours, left by a killed run
        staging.mkdir()

        def pictures(index: int):
            frame = source.read(index)
            label = read_label(labels_dir / f"{stems[index]}.png", fmt)
            confidence = read_confidence(confidence_dir / f"{stems[index]}.png")
            truth = read_label(gt_files[stems[index]], fmt) if stems[index] in gt_files else None
            return frame, label, confidence, truth

        mean_confidence = np.zeros(len(stems))
        low_share = np.zeros(len(stems))
        expected = np.full(len(stems), np.nan)
        score = np.full(len(stems), np.nan)
        width = video_width(source.width)
        writer = VideoOut(staging / "overlay.mp4", width, round(source.height * width / source.width), fps)
        try:
            for index in range(len(stems)):
                frame, label, confidence, truth = pictures(index)
                mean_confidence[index] = confidence.mean()
                low_share[index] = (confidence < draw.LOW_CONFIDENCE).mean()
                expected[index] = expected_score(label, confidence, fmt.is_object_format, fmt.ignore_index)
                if truth is not None and index not in keyframe_set:
                    score[index] = frame_score(label, truth, fmt.is_object_format, fmt.ignore_index)
                small = draw.blend(draw.resize(frame, width), draw.resize(label, width, nearest=True), colors,
                                   draw.resize(confidence, width, nearest=True))
                lines = [(f"frame {stems[index]}  ({index + 1}/{len(stems)})", (255, 255, 255))]
                if index in keyframe_set:
                    lines.append(("KEYFRAME", (120, 255, 120)))
                lines.append((f"mean confidence {mean_confidence[index]:.3f}",
                              (255, 255, 255) if mean_confidence[index] >= 0.9 else (255, 120, 255)))
                if np.isfinite(score[index]):
                    lines.append((f"{'J' if fmt.is_object_format else 'mIoU'} {100 * score[index]:.1f}",
                                  (255, 200, 80)))
                writer.write(draw.corner_text(small, lines))
                on_frame(index + 1, len(stems))
        finally:
            writer.close()

        candidates = [i for i in range(len(stems)) if i not in keyframe_set] or list(range(len(stems)))
        by_expected = spread_worst([i for i in candidates if np.isfinite(expected[i])], expected, worst)
        by_score = spread_worst([i for i in candidates if np.isfinite(score[i])], score, worst)
        metric = "J" if fmt.is_object_format else "mIoU"
        nearest = lambda i: min(abs(i - k) for k in keyframe_set) if keyframe_set else None  # noqa: E731

        def row(index: int):
            frame, label, confidence, truth = pictures(index)
            wrong = (label != truth) & ((truth != fmt.ignore_index) if fmt.ignore_index is not None else True) \
                if truth is not None else None
            region = draw.worst_region(wrong if wrong is not None else 1.0 - confidence)
            scale = CELL / frame.shape[1]
            region = tuple(round(v * scale) for v in region) if region else None
            small_label = draw.resize(label, CELL, nearest=True)
            small_conf = draw.resize(confidence, CELL, nearest=True)
            images = [draw.box(draw.resize(frame, CELL), region),
                      draw.box(draw.label_column(draw.resize(frame, CELL), small_label, colors, small_conf), region),
                      draw.heat(small_conf)]
            if truth is not None:
                missed, extra = draw.wrong_pixels(label, truth, fmt.is_object_format, fmt.ignore_index)
                images.append(draw.box(draw.errors(draw.resize(frame, CELL),
                                                   draw.resize(missed.astype(np.uint8), CELL, nearest=True) > 0,
                                                   draw.resize(extra.astype(np.uint8), CELL, nearest=True) > 0),
                                       region))
            caption = (f"frame {stems[index]} (#{index}): "
                       + (f"expected {metric} {100 * expected[index]:.1f}, " if np.isfinite(expected[index]) else "")
                       + f"{100 * low_share[index]:.1f}% of pixels below {draw.LOW_CONFIDENCE}")
            if np.isfinite(score[index]):
                caption += f", {metric} {100 * score[index]:.1f}"
            if keyframe_set:
                caption += f"; {nearest(index)} frame{'s' if nearest(index) != 1 else ''} from the nearest keyframe"
            return caption, images

        headers = ["frame (box: worst region)", "labels (hatched: doubtful)", "confidence"] \
            + (["errors vs ground truth"] if gt_files else [])
        apart = spacing(len(stems), worst)
        dips = f", the worst frame of each dip (frames at least {apart} apart)" if apart > 1 else ""
        sections = []
        if by_score:
            sections.append((f"lowest {metric}: {counted(len(by_score), 'frame')}{dips}", [row(i) for i in by_score]))
        sections.append((f"lowest expected {metric} (from the confidence, without ground truth): "
                         f"{counted(len(by_expected), 'frame')}{dips}", [row(i) for i in by_expected]))
        used = ids - ({fmt.ignore_index} if fmt.ignore_index is not None else set())
        error_items = [] if not gt_files else \
            [(draw.MISSED, "object missed (ground truth object labeled otherwise)"),
             (draw.EXTRA, "extra (background labeled as an object)")] if fmt.is_object_format else \
            [(draw.MISSED, "wrong class (the ground truth's class missed)")]
        sheet = contact_sheet(f"autolabel review: {out}", sections, headers, colors, known_names, used, error_items)
        sheet.save(staging / "contact-sheet.png", optimize=False)
        series = [(f"expected {metric} (from the confidence)", expected, by_expected)]
        if gt_files:
            series.append((f"{metric} vs ground truth", score, by_score))
        strip = timeline(f"autolabel review: {out}  ({len(stems)} frames, {len(keyframe_set)} keyframes)",
                         sorted(keyframe_set), series)
        strip.save(staging / "timeline.png", optimize=False)
        summary = {
            "frames": len(stems), "keyframes": [stems[k] for k in sorted(keyframe_set)],
            "lowest_expected_score": [stems[i] for i in by_expected],
            "lowest_score": [stems[i] for i in by_score], "metric": metric if gt_files else None,
            "sections": [heading for heading, _ in sections], "video_codec": writer.codec,
            "characters_not_drawn": fonts.missing(),
            "per_frame": [{"stem": stem, "mean_confidence": round(float(mean_confidence[i]), 4),
                           "low_confidence_share": round(float(low_share[i]), 4),
                           "expected_score": round(100 * float(expected[i]), 2) if np.isfinite(expected[i]) else None,
                           "score": round(100 * float(score[i]), 2) if np.isfinite(score[i]) else None}
                          for i, stem in enumerate(stems)],
        }
        (staging / "review.json").write_text(json.dumps(summary, indent=1) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
        return summary
    finally:
        source.close()
        if staging.exists():
            shutil.rmtree(staging)
