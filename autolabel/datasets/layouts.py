"""Where a dataset keeps its clips: each layout lists a dataset's clips as `ClipJob`s.

- generic:    DATASET/<clip>/frames/ (or <clip>/video.mp4) and DATASET/<clip>/labels/
- davis:      DATASET/JPEGImages/480p/<seq>/ and DATASET/Annotations/480p/<seq>/
- cityscapes: DATASET/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png (or .jpg) frames and
              DATASET/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png keyframes;
              a clip is one snippet of consecutive frames of one city and sequence
- manifest:   a CSV file with header video,keyframes,out, or JSON lines with those keys

A folder that looks like a clip but is broken (no frames, no labels) is still listed,
so that the batch reports it instead of silently leaving it out.
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, NamedTuple

from ..errors import InputError
from ..io.frames import VIDEO_SUFFIXES


class LabelNames(NamedTuple):
    """How a dataset names a frame's label: the batch also publishes the labels under these names."""
    folder: str         # OUT/<clip>/<folder>/ holds the labels under the dataset's names
    frame_suffix: str   # ends every frame stem
    label_suffix: str   # replaces frame_suffix in the dataset's label names


@dataclass(frozen=True)
class ClipJob:
    name: str                     # unique within the dataset; also names the clip in reports
    video: Path                   # folder of frames or a video file
    keyframes: Path               # folder of keyframe labels named like the frames
    out_subdir: str               # results go to OUT/<out_subdir>/
    # The clip's own frames, when `video` is a folder shared with other clips (Cityscapes cities).
    frame_files: tuple[Path, ...] | None = None
    # (frame stem, label file) pairs, when labels are not named like their frames.
    keyframe_files: tuple[tuple[str, Path], ...] | None = None
    label_names: LabelNames | None = None


def generic_clips(dataset: Path) -> Iterator[ClipJob]:
    for folder in _subfolders(dataset):
        video = _clip_video(folder)
        labels = folder / "labels"
        if video is None and not labels.is_dir() or _is_autolabel_output(folder):
            continue  # not a clip at all, or autolabel's own results (labels/ + manifest.json)
        yield ClipJob(folder.name, video or folder / "frames", labels, folder.name)


def _is_autolabel_output(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("tool") == "autolabel"


def _clip_video(folder: Path) -> Path | None:
    if (folder / "frames").is_dir():
        return folder / "frames"
    videos = sorted(p for p in folder.glob("video.*") if p.suffix.lower() in VIDEO_SUFFIXES)
    return videos[0] if videos else None


def davis_clips(dataset: Path) -> Iterator[ClipJob]:
    frames_root, labels_root = dataset / "JPEGImages" / "480p", dataset / "Annotations" / "480p"
    if not frames_root.is_dir():
        raise InputError(frames_root, "missing: a DAVIS dataset has JPEGImages/480p/<sequence>/")
    names = {p.name for p in _subfolders(frames_root)} | {p.name for p in _subfolders(labels_root)}
    for name in sorted(names):
        yield ClipJob(name, frames_root / name, labels_root / name, name)


CITYSCAPES_FRAME = re.compile(r"(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+)_leftImg8bit")
CITYSCAPES_FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")  # converted to JPEG to save space, the frames still count
CITYSCAPES_NAMES = LabelNames("cityscapes", "_leftImg8bit", "_gtFine_labelIds")


def cityscapes_clips(dataset: Path) -> Iterator[ClipJob]:
    frames_root = dataset / "leftImg8bit_sequence"
    if not frames_root.is_dir():
        raise InputError(frames_root, "missing: a Cityscapes dataset has leftImg8bit_sequence/<split>/<city>/")
    for split in _subfolders(frames_root):
        for city in _subfolders(split):
            yield from _city_snippets(city, dataset / "gtFine" / split.name / city.name)


def _city_snippets(city: Path, labels: Path) -> Iterator[ClipJob]:
    by_sequence: dict[tuple[str, str], dict[int, Path]] = defaultdict(dict)
    for path in city.glob("*_leftImg8bit.*"):
        match = CITYSCAPES_FRAME.fullmatch(path.stem)
        if match and path.suffix.lower() in CITYSCAPES_FRAME_SUFFIXES:
            by_sequence[match["city"], match["seq"]][int(match["frame"])] = path
    for (city_name, sequence), frames in sorted(by_sequence.items()):
        snippets = _consecutive_runs(sorted(frames))
        for numbers in snippets:
            name = f"{city_name}_{sequence}" if len(snippets) == 1 else f"{city_name}_{sequence}_{numbers[0]:06d}"
            snippet = tuple(frames[n] for n in numbers)
            keyframes = tuple((frame.stem, label) for frame in snippet
                              if (label := labels / _cityscapes_label_name(frame.stem)).is_file())
            yield ClipJob(name, city, labels, name, frame_files=snippet, keyframe_files=keyframes,
                          label_names=CITYSCAPES_NAMES)


def _cityscapes_label_name(frame_stem: str) -> str:
    return frame_stem.removesuffix(CITYSCAPES_NAMES.frame_suffix) + CITYSCAPES_NAMES.label_suffix + ".png"


def _consecutive_runs(numbers: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return runs


def manifest_clips(manifest: Path) -> Iterator[ClipJob]:
    """Rows of video,keyframes,out; relative video and keyframes paths are relative to the manifest file."""
    if not manifest.is_file():
        raise InputError(manifest, "a manifest layout needs a CSV or JSON-lines file")
    text = manifest.read_text()
    rows = _json_lines(manifest, text) if text.lstrip().startswith("{") else _csv_rows(manifest, text)
    for line, row in rows:
        missing = [key for key in ("video", "keyframes", "out") if not str(row.get(key) or "").strip()]
        if missing:
            raise InputError(manifest, f"line {line}: no {', '.join(missing)}")
        out = PurePosixPath(str(row["out"]).strip())
        if out.is_absolute() or ".." in out.parts:
            raise InputError(manifest, f"line {line}: out {str(out)!r} must be a folder inside OUT")
        yield ClipJob(str(out), manifest.parent / str(row["video"]).strip(),
                      manifest.parent / str(row["keyframes"]).strip(), str(out))


def _json_lines(manifest: Path, text: str) -> Iterator[tuple[int, dict]]:
    for line, content in enumerate(text.splitlines(), 1):
        if content.strip():
            try:
                row = json.loads(content)
            except ValueError as error:
                raise InputError(manifest, f"line {line}: not JSON ({error})") from None
            if not isinstance(row, dict):
                raise InputError(manifest, f"line {line}: not a JSON object")
            yield line, row


def _csv_rows(manifest: Path, text: str) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(text.splitlines())
    if not {"video", "keyframes", "out"} <= set(reader.fieldnames or ()):
        raise InputError(manifest, "a CSV manifest needs the header video,keyframes,out")
    for row in reader:
        yield reader.line_num, row


LAYOUTS: dict[str, Callable[[Path], Iterator[ClipJob]]] = {
    "generic": generic_clips, "davis": davis_clips, "cityscapes": cityscapes_clips, "manifest": manifest_clips,
}


# What each layout looks for, for the message when a dataset holds no clips.
LOOKS_FOR = {
    "generic": "<clip>/frames/ or <clip>/video.*, with <clip>/labels/",
    "davis": "JPEGImages/480p/<sequence>/",
    "cityscapes": "leftImg8bit_sequence/<split>/<city>/",
    "manifest": "a CSV or JSON-lines file",
}


def no_clips_message(layout: str) -> str:
    if layout == "auto":
        looked = "; ".join(f"{name}: {what}" for name, what in LOOKS_FOR.items())
        return f"no clips found; looked for the layouts {looked} (see --layout)"
    return f"no clips found in the {layout} layout ({LOOKS_FOR[layout]})"


def detect_layout(dataset: Path) -> str:
    if dataset.is_file():
        return "manifest"
    if (dataset / "leftImg8bit_sequence").is_dir():
        return "cityscapes"
    if (dataset / "JPEGImages").is_dir():
        return "davis"
    return "generic"


def find_clips(dataset: str | Path, layout: str = "auto") -> list[ClipJob]:
    """Every clip of the dataset, sorted by name; a missing dataset or two clips with one output are errors."""
    dataset = Path(dataset)
    if not dataset.exists():
        raise InputError(dataset, "no such dataset folder or manifest file")
    if layout == "auto":
        layout = detect_layout(dataset)
    jobs = sorted(LAYOUTS[layout](dataset), key=lambda job: job.name)
    twice = sorted(out for out, count in Counter(job.out_subdir for job in jobs).items() if count > 1)
    if twice:
        raise InputError(dataset, f"several clips would write to the same output folder: {', '.join(twice[:5])}")
    return jobs


def _subfolders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
