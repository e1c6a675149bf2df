"""Resume and crash safety for `autolabel batch`: a clip's inputs, its fingerprint, and sealing.

A clip's results are complete only when its manifest carries the fingerprint of the
inputs and settings that made them. `run_clip` writes the manifest last; the batch then
rewrites it atomically with the fingerprint added. `--resume` skips exactly the clips
whose manifest carries the fingerprint the clip has now and redoes the rest (run_clip
stages its work and swaps it in), so a batch killed at any moment and resumed ends with
the outputs of an uninterrupted run.

The fingerprint covers every input file's name, size and mtime_ns rather than its
content: resuming then costs one stat per file instead of reading the whole dataset
again, and any ordinary change to a file (rewrite, re-export, edit) changes its mtime.
A copy that drops mtimes only costs a redo, never a wrong skip.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..core.pipeline import Settings
from ..errors import InputError, writing
from ..io.frames import FrameSource, natural_key
from ..io.keyframes import find_keyframes
from ..io.output import RESULT_NAMES
from .layouts import ClipJob


@dataclass(frozen=True)
class BatchOptions:
    """Everything a clip's run depends on besides its inputs; sent to every worker."""
    settings: Settings = field(default_factory=Settings)
    label_format: str | None = None
    ignore_index: int | None = 255
    keyframe_every: int | None = None    # use only labels at frame indices divisible by this
    flow_cache: Path | None = None
    overwrite: bool = False              # replace results already there
    resume: bool = False                 # skip complete clips, redo the rest
    refine: bool = True                  # refine the warped labels (core/refine.py)
    refiner: str | None = None           # default | classic | weights path (refiner/load.py)
    adapt: bool = True                   # the refiner learns this clip
    device: str = "auto"                 # where the refiner's networks run
    adapt_steps: int | None = None       # its per-clip learning steps (None: the weights' default)
    command: str | None = None           # the batch's command line, for the manifests (not a setting)
    threads: int | None = None           # OpenCV threads per clip (None: every core; not a setting)
    color_table: Path | None = None      # CSV id,r,g,b for RGB labels (None: the keyframes' colours)


# ------------------------------------------------------------------ inputs and fingerprint


def frame_stems(job: ClipJob) -> list[str]:
    """The clip's frame stems in the order run_clip will index them."""
    if job.frame_files is not None:
        return sorted((path.stem for path in job.frame_files), key=natural_key)
    source = FrameSource(job.video)  # for a video file this decodes it once more, to count its frames
    source.close()
    return source.stems


def keyframe_paths(job: ClipJob, every: int | None) -> dict[int, Path]:
    """{frame index: label} of the keyframes the clip runs from, as run_clip takes them."""
    stems = frame_stems(job)
    if job.keyframe_files is None:
        paths = find_keyframes(job.keyframes, stems)
    else:
        index_of = {stem: index for index, stem in enumerate(stems)}
        paths = {index_of[stem]: label for stem, label in job.keyframe_files}
    if every is not None:
        paths = {index: label for index, label in paths.items() if index % every == 0}
    if not paths:
        raise InputError(job.keyframes, "no keyframe labels for this clip" if every is None
                         else f"no keyframe label at a frame index divisible by {every}")
    return paths


def input_files(job: ClipJob) -> tuple[list[Path], list[Path]]:
    """(frame files or the video file, candidate keyframe files): what the fingerprint covers."""
    if job.frame_files is not None:
        frames = list(job.frame_files)
    else:
        frames = [job.video] if job.video.is_file() else _files_in(job.video)
    keyframes = [label for _, label in job.keyframe_files] if job.keyframe_files is not None \
        else _files_in(job.keyframes)
    return frames, keyframes


def _files_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_file() and not path.name.startswith("."))


def fingerprint(job: ClipJob, options: BatchOptions) -> str:
    return _digest(fingerprint_document(job, options))


def _digest(document: dict) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def fingerprint_document(job: ClipJob, options: BatchOptions) -> dict:
    """What the fingerprint is a digest of; the sealed manifest keeps it, so `--check` can say what changed."""
    frames, keyframes = input_files(job)

    def described(path: Path) -> list:
        stat = path.stat()
        return [path.name, stat.st_size, stat.st_mtime_ns]

    document = {
        "version": __version__, "settings": options.settings.as_dict(),
        "label_format": options.label_format, "ignore_index": options.ignore_index,
        "keyframe_every": options.keyframe_every,
        "keyframe_stems": [stem for stem, _ in job.keyframe_files] if job.keyframe_files is not None else None,
        "frames": [described(path) for path in frames], "keyframes": [described(path) for path in keyframes],
    }
    if options.color_table is not None:  # only then, as the refiner below
        document["color_table"] = described(options.color_table)
    if options.refine:  # only then: fingerprints of runs without the refiner stay as they were
        from ..refiner.load import is_classic, weight_files

        document["refiner"] = [*map(described, weight_files(options.refiner)), options.adapt]
        if not is_classic(options.refiner):   # a network's output depends on the device
            from ..refiner.device import resolve_device
            document["refiner"] += [str(resolve_device(options.device)), options.adapt_steps]
    return document


def what_changed(before: dict | None, now: dict) -> str:
    """The first input file or setting that differs between two fingerprint documents, in words."""
    if not isinstance(before, dict):
        return "made from other inputs or settings (an older manifest does not say which)"
    for key in ("frames", "keyframes"):
        old = {entry[0]: entry for entry in before.get(key, [])}
        new = {entry[0]: entry for entry in now.get(key, [])}
        what = "frame" if key == "frames" else "keyframe label"
        for name in sorted(set(old) | set(new), key=natural_key):
            if name not in old:
                return f"{what} {name} is new"
            if name not in new:
                return f"{what} {name} is gone"
            if old[name] != new[name]:
                return f"{what} {name} changed ({'size' if old[name][1] != new[name][1] else 'modification time'})"
    for key in sorted(set(before) | set(now)):
        if key in ("frames", "keyframes") or before.get(key) == now.get(key):
            continue
        if key == "settings":
            differs = [name for name in sorted(set(before[key]) | set(now[key]))
                       if before[key].get(name) != now[key].get(name)]
            return ", ".join(f"setting {name}: {before[key].get(name)} then, {now[key].get(name)} now"
                             for name in differs)
        if key == "refiner":
            return "refiner: " + ("not used then" if key not in before else "not used now" if key not in now
                                  else "other weights, --adapt, --adapt-steps or device")
        return f"{key.replace('_', ' ')}: {before.get(key)} then, {now.get(key)} now"
    return "made from other inputs or settings"


# ------------------------------------------------------------------ resume and sealing


def complete_manifest(out: Path, stamp: str) -> dict | None:
    """The clip's manifest when its results are complete and were made from these inputs and settings."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("fingerprint") == stamp else None


def seal(out: Path, manifest: dict, job: ClipJob, stamp: str, document: dict | None = None) -> dict:
    """Rewrite the manifest with the fingerprint (and what it is a digest of), atomically: from now on
    the clip counts as complete."""
    sealed = {**manifest, "clip": job.name, "video": str(job.video), "fingerprint": stamp,
              **({"fingerprint_of": document} if document is not None else {})}
    temporary = out / ".manifest.json.tmp"
    with writing(out / "manifest.json"):
        temporary.write_text(json.dumps(sealed, indent=1) + "\n")
    os.replace(temporary, out / "manifest.json")
    return sealed


def holds_results(out: Path) -> bool:
    return any((out / name).exists() for name in RESULT_NAMES)


def clip_state(job: ClipJob, out_root: Path, options: BatchOptions) -> dict:
    """Whether a clip's results in OUT are complete and current, without writing anything (`batch --check`).

    `state` is "current" (what `--resume` would skip), "stale" (made from other inputs or settings,
    or a result file is missing) or "missing" (no results); `reason` says why it is not current.
    """
    out = out_root / job.out_subdir
    try:
        document = fingerprint_document(job, options)
    except (InputError, OSError, ValueError) as error:
        return {"clip": job.name, "state": "stale", "reason": f"inputs unreadable: {error}"}
    if not (out / "manifest.json").is_file():
        return {"clip": job.name, "state": "missing", "reason": "no results"}
    manifest = complete_manifest(out, _digest(document))
    if manifest is None:
        try:
            before = json.loads((out / "manifest.json").read_text())
        except (OSError, ValueError):
            return {"clip": job.name, "state": "stale", "reason": "manifest.json unreadable"}
        if not isinstance(before, dict) or "fingerprint" not in before:
            return {"clip": job.name, "state": "stale", "reason": "incomplete: not sealed by a finished batch run"}
        return {"clip": job.name, "state": "stale", "reason": what_changed(before.get("fingerprint_of"), document)}
    absent = [f"{folder}/{frame['stem']}.png" for frame in manifest.get("frames", [])
              for folder in ("labels", "confidence") if not (out / folder / f"{frame['stem']}.png").is_file()]
    if absent:
        return {"clip": job.name, "state": "stale", "reason": f"{len(absent)} result files missing ({absent[0]}, …)"}
    return {"clip": job.name, "state": "current", "reason": None}
