"""One clip from disk to disk: the function behind `autolabel propagate`.

Results go to a staging folder inside `out` and are moved into place only when
every frame is done, with `manifest.json` written last: a folder with a manifest
is complete, and a failed run leaves nothing behind but what was there before.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from ..core.pipeline import Propagator, Settings
from ..errors import InputError
from ..progress import counted
from .frames import FrameSource
from .keyframes import find_keyframes, load_keyframes, matched_by_number
from .labels import write_confidence, write_label

RESULT_NAMES = ("labels", "confidence", "manifest.json")
STAGING = ".autolabel-staging"
# Frames handed to the PNG writer thread and not yet written: enough to ride out a slow frame, few
# enough that memory stays a few frames.
WRITES_AHEAD = 3


def check_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a folder")
    existing = [name for name in RESULT_NAMES if (out / name).exists()]
    if existing and not overwrite:
        raise InputError(out, f"already holds results ({', '.join(existing)}); pass --overwrite to replace them")
    check_writable(out)


def check_writable(out: Path) -> None:
    """Make and remove the staging folder (and `out`, if new) before any work: an output folder that
    cannot be written (no permission, read-only file system) is found now, not after the whole clip."""
    created = next((folder for folder in (*reversed(out.parents), out, out / STAGING)
                    if not folder.exists()), None)
    try:
        (out / STAGING).mkdir(parents=True, exist_ok=True)  # exists when left by a killed run
    except OSError as error:
        raise InputError(out, f"cannot write the output folder ({error.strerror or error})") from None
    finally:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)


def run_clip(video: str | Path, keyframes: str | Path | dict[int, Path], out: str | Path, *,
             settings: Settings = Settings(),
             label_format: str | None = None, ignore_index: int | None = 255, color_table=None,
             refiner=None, flow_cache=None, overwrite: bool = False, command: str | None = None,
             threads: int | None = None,
             on_start: Callable[[str], None] = lambda message: None,
             on_frame: Callable[[int, int], None] = lambda done, total: None) -> dict:
    """Propagate `keyframes` (a folder, or {frame index: label path}) through `video` into `out`.

    `command` (the command line that asked for this run) is recorded in the manifest; `threads` is how many
    threads OpenCV may use (None: every core). Returns the manifest."""
    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = Path(out)
    check_output(out, overwrite)
    created_out = not out.exists()
    source = FrameSource(video)
    try:
        paths = keyframes if isinstance(keyframes, dict) else find_keyframes(keyframes, source.stems)
        if not isinstance(keyframes, dict) and (note := matched_by_number(paths, source.stems)):
            on_start(note)
        keys = load_keyframes(paths, (source.width, source.height), label_format=label_format,
                              ignore_index=ignore_index, color_table=color_table)
        on_start(f"{counted(len(source), 'frame')}, {source.width}x{source.height}, "
                 f"{counted(len(keys.paths), 'keyframe')}, labels: {keys.format.describe()}")
        propagator = Propagator(source, keys.label, keys.indices, keys.classes, settings, refiner, flow_cache,
                                threads)
        started = time.perf_counter()
        staging = out / STAGING
        if staging.exists():
            shutil.rmtree(staging)  # ours, left by a killed run
        (staging / "labels").mkdir(parents=True)
        (staging / "confidence").mkdir()

        def write(stem: str, channels: np.ndarray, confidence: np.ndarray) -> None:
            with propagator.timer("write"):
                write_label(staging / "labels" / f"{stem}.png", keys.classes.to_ids(channels), keys.format)
                write_confidence(staging / "confidence" / f"{stem}.png", confidence)

        # PNGs are written on a thread of their own (zlib and numpy release the GIL), beside the pipeline.
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="write-png") as writer:
                records = _propagate_and_write(propagator, source.stems, keys.indices, writer, write, on_frame)
            stems = source.stems
            manifest = {
                "tool": "autolabel", "version": __version__, "command": command, "started": started_at,
                "video": str(video), "keyframes": [stems[i] for i in keys.indices],
                "settings": {**settings.as_dict(), "label_format": keys.format.kind,
                             "ignore_index": keys.format.ignore_index,
                             "refiner": getattr(refiner, "name", None)},
                "format": keys.format.describe(),
                "class_ids": [int(i) for i in keys.classes.ids],
                **({"color_table": [[i, *rgb] for i, rgb in enumerate(keys.format.colors)]}  # rows: id, r, g, b
                   if keys.format.kind == "rgb" else {}),
                "n_frames": len(source), "size": [source.width, source.height],
                "frames": [records[i] for i in range(len(source))],
                "timings": {stage: round(s, 3) for stage, s in propagator.timer.seconds.items()}
                           | {"total": round(time.perf_counter() - started, 3)},
            }
            (out / "manifest.json").unlink(missing_ok=True)  # the folder is incomplete while results swap
            for name in ("labels", "confidence"):
                if (out / name).exists():
                    shutil.rmtree(out / name)
                os.replace(staging / name, out / name)
            temporary = staging / "manifest.json"
            temporary.write_text(json.dumps(manifest, indent=1) + "\n")
            os.replace(temporary, out / "manifest.json")
        finally:
            if staging.exists():
                shutil.rmtree(staging)
            if created_out and not (out / "manifest.json").exists():
                shutil.rmtree(out)
    finally:
        source.close()
    return manifest


def _propagate_and_write(propagator: Propagator, stems: list[str], keyframes: list[int], writer: ThreadPoolExecutor,
                         write: Callable, on_frame: Callable[[int, int], None]) -> dict[int, dict]:
    """Run the pipeline, handing each frame to `writer`; returns the manifest's record of every frame."""
    records, pending = {}, deque()
    for done, result in enumerate(propagator.run(), 1):
        stem = stems[result.index]
        pending.append(writer.submit(write, stem, result.channels, result.confidence))
        if len(pending) > WRITES_AHEAD:
            pending.popleft().result()  # raises what the writer raised
        records[result.index] = {
            "stem": stem, "keyframe": result.is_keyframe,
            "sources": [stems[k] for k in result.sources],
            "distance": min(abs(result.index - k) for k in keyframes),
            "mean_confidence": round(float(result.confidence.mean()), 4),
        }
        on_frame(done, len(stems))
    for write_done in pending:
        write_done.result()
    return records
