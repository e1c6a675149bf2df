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
from ..errors import InputError, writing
from ..progress import counted
from .classnames import names_beside
from .frames import FrameSource
from .keyframes import find_keyframes, load_keyframes, matched_by_number
from .labels import write_confidence, write_label
from .update import frames_digest, label_digest, plan_update

RESULT_NAMES = ("labels", "confidence", "manifest.json")
DERIVED_NAMES = ("review",)  # made from the results (review's pictures): replaced results take them along
STAGING = ".autolabel-staging"
# Frames handed to the PNG writer thread and not yet written: enough to ride out a slow frame, few
# enough that memory stays a few frames.
WRITES_AHEAD = 3


def refiner_settings(refiner) -> dict:
    """What of the refiner decides the output: its name and, for the networks, steps and device."""
    settings = {"refiner": getattr(refiner, "name", None)}
    if hasattr(refiner, "device"):
        settings.update(refiner_steps=refiner.steps, refiner_device=str(refiner.device), refiner_adapt=refiner.adapt)
    return settings


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
             refiner=None, flow_cache=None, overwrite: bool = False, update: bool = False,
             command: str | None = None, accept_short_video: bool = False, threads: int | None = None,
             on_start: Callable[[str], None] = lambda message: None,
             on_frame: Callable[[int, int], None] = lambda done, total: None) -> dict:
    """Propagate `keyframes` (a folder, or {frame index: label path}) through `video` into `out`.

    `command` (the command line that asked for this run) is recorded in the manifest; `threads` is how many
    threads OpenCV may use (None: every core). `update`: OUT may hold results, and only the segments the
    keyframes' changes touch are computed again (io/update.py); the manifest's "update" says what was.
    Returns the manifest."""
    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = Path(out)
    check_output(out, overwrite or update)
    created_out = not out.exists()
    source = FrameSource(video, accept_short=accept_short_video)
    try:
        if source.frames_listed and source.frames_listed > len(source):
            on_start(f"{video}: using the {len(source)} frames that decode of the {source.frames_listed} listed")
        paths = keyframes if isinstance(keyframes, dict) else find_keyframes(keyframes, source.stems)
        keyframes_dir = Path(keyframes) if not isinstance(keyframes, dict) else next(iter(paths.values())).parent
        names = names_beside(keyframes_dir)  # recorded, so that review and export find the class names
        if not isinstance(keyframes, dict) and (note := matched_by_number(paths, source.stems)):
            on_start(note)
        keys = load_keyframes(paths, (source.width, source.height), label_format=label_format,
                              ignore_index=ignore_index, color_table=color_table)
        on_start(f"{counted(len(source), 'frame')}, {source.width}x{source.height}, "
                 f"{counted(len(keys.paths), 'keyframe')}, labels: {keys.format.describe()}")
        identity = {
            "version": __version__, "frames_digest": frames_digest(source.files),
            "settings": {**settings.as_dict(), "label_format": keys.format.kind, "ignore_index": keys.format.ignore_index,
                         **refiner_settings(refiner)},
            "color_table": [[i, *rgb] for i, rgb in enumerate(keys.format.colors)]  # rows: id, r, g, b
                           if keys.format.kind == "rgb" else None}
        digests = {k: label_digest(keys.label(k)) for k in keys.indices}
        plan = None
        if update:
            plan = plan_update(out, stems=source.stems, keyframes=digests, identity=identity,
                               refining=refiner is not None, video=video)
            if plan.other_clip is not None and not overwrite:  # --update never replaces another clip's results
                raise InputError(out, f"holds the results of other frames ({plan.other_clip}); --update brings a "
                                      "clip's own results up to date, pass --overwrite to replace them")
            on_start(plan.describe() + (" (no --flow-cache: the flow is computed again)"
                                        if plan.spans is None and plan.record and flow_cache is None else ""))
        propagator = Propagator(source, keys.label, keys.indices, keys.classes, settings, refiner, flow_cache,
                                threads)
        started = time.perf_counter()
        staging = out / STAGING
        if staging.exists():
            shutil.rmtree(staging)  # ours, left by a killed run

        def write(stem: str, channels: np.ndarray, confidence: np.ndarray) -> None:
            with propagator.timer("write"):
                write_label(staging / "labels" / f"{stem}.png", keys.classes.to_ids(channels), keys.format)
                write_confidence(staging / "confidence" / f"{stem}.png", confidence)

        # PNGs are written on a thread of their own (zlib and numpy release the GIL), beside the pipeline.
        try:
            # made inside the try: a Ctrl-C right after them still removes them (and OUT, if this run made it)
            (staging / "labels").mkdir(parents=True)
            (staging / "confidence").mkdir()
            stems = source.stems
            records = {}
            if plan is not None and plan.reused:
                for t in plan.reused:
                    for folder in ("labels", "confidence"):
                        _link_or_copy(out / folder / f"{stems[t]}.png", staging / folder / f"{stems[t]}.png")
                    records[t] = plan.records[t]
                on_frame(len(records), len(source))
            with ThreadPoolExecutor(1, thread_name_prefix="write-png") as writer:
                records.update(_propagate_and_write(propagator, plan.spans if plan else None, stems, keys.indices,
                                                    writer, write, on_frame, done_before=len(records)))
            manifest = {
                "tool": "autolabel", "version": __version__, "command": command, "started": started_at,
                "video": str(video), **({"accept_short_video": True} if accept_short_video else {}),
                "keyframes": [stems[i] for i in keys.indices],
                "keyframes_dir": str(keyframes_dir), "names": None if names is None else str(names),
                "settings": identity["settings"],
                "format": keys.format.describe(),
                "class_ids": [int(i) for i in keys.classes.ids],
                **({"color_table": identity["color_table"]} if keys.format.kind == "rgb" else {}),
                "keyframe_digests": {stems[k]: digest for k, digest in digests.items()},
                "frames_digest": identity["frames_digest"],
                **({"update": plan.record} if plan is not None and plan.record else {}),
                "n_frames": len(source), "size": [source.width, source.height],
                "frames": [records[i] for i in range(len(source))],
                "timings": {stage: round(s, 3) for stage, s in propagator.timer.seconds.items()}
                           | {"total": round(time.perf_counter() - started, 3)},
            }
            (out / "manifest.json").unlink(missing_ok=True)  # the folder is incomplete while results swap
            for name in DERIVED_NAMES:
                if (out / name).exists():
                    shutil.rmtree(out / name)
            for name in ("labels", "confidence"):
                if (out / name).exists():
                    shutil.rmtree(out / name)
                os.replace(staging / name, out / name)
            temporary = staging / "manifest.json"
            with writing(out / "manifest.json"):
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


def _link_or_copy(source: Path, target: Path) -> None:
    """A reused result: a hard link where the file system allows one (no bytes copied), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _propagate_and_write(propagator: Propagator, spans, stems: list[str], keyframes: list[int],
                         writer: ThreadPoolExecutor, write: Callable, on_frame: Callable[[int, int], None],
                         done_before: int = 0) -> dict[int, dict]:
    """Run the pipeline (only `spans`, when given), handing each frame to `writer`; returns the manifest's
    record of every frame it computed."""
    records, pending = {}, deque()
    for done, result in enumerate(propagator.run(spans), done_before + 1):
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
