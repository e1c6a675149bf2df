"""`autolabel export`: propagated labels in the layouts that benchmark evaluators and CVAT read.

- davis:      DIR/<seq>/<frame>.png, palette PNGs with the DAVIS palette, object ids 1..n (binary 0/255
              masks become object 1; unlabeled pixels become background), what davis2017-evaluation reads.
- cityscapes: DIR/<city>_<seq>_<frame>_gtFine_labelIds.png (or _gtFine_trainIds.png with `train_ids`), one
              folder and nothing else in it, what cityscapesScripts' evaluation finds as CITYSCAPES_RESULTS.
- cvat:       DIR/<clip>.zip in CVAT's "Segmentation mask 1.1" import format (cvat.py).

OUT is one `propagate` output folder (it holds manifest.json) or a `batch` output folder (clips below it).
Everything is staged in DIR/.autolabel-export and moved into place at the end; nothing in DIR is
replaced without `overwrite`. Frames are read and written one at a time.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import InputError
from ..io.labels import LabelFormat, davis_palette, save_png
from ..io.classnames import CITYSCAPES_STEM, CITYSCAPES_TRAIN_IDS
from .cvat import export_cvat
from ..io.results import ClipResult, find_results

STAGING = ".autolabel-export"


# ---------------------------------------------------------------- DAVIS

def davis_ids(ids: np.ndarray, fmt: LabelFormat) -> np.ndarray:
    """Object ids as the DAVIS-2017 code reads them: 0 background, 1..n objects, no 255."""
    if fmt.kind == "binary":
        return (ids == 255).astype(np.uint8)
    if fmt.ignore_index is not None:
        ids = np.where(ids == fmt.ignore_index, 0, ids)  # the official code would read 255 as object 255
    return ids.astype(np.uint8)


def export_davis(clip: ClipResult, staging: Path, options: dict) -> list[str]:
    fmt = clip.label_format()
    if not fmt.is_object_format:
        raise InputError(clip.folder, f"DAVIS holds object masks; this clip's labels are {fmt.describe()}")
    folder = staging / clip.name
    folder.mkdir(parents=True)
    palette = davis_palette()
    for stem, ids in clip.labels(fmt):
        image = Image.fromarray(davis_ids(ids, fmt), mode="L")
        image.putpalette(palette)
        save_png(image, folder / f"{stem}.png")
    return [clip.name.split("/")[0]]


# ---------------------------------------------------------------- Cityscapes

def cityscapes_name(stem: str, path: Path, train_ids: bool) -> str:
    match = CITYSCAPES_STEM.fullmatch(stem)
    if not match:
        raise InputError(path, "is not named like a Cityscapes frame (<city>_<seq>_<frame>_leftImg8bit)")
    return f"{match['frame']}_gtFine_{'trainIds' if train_ids else 'labelIds'}.png"


def export_cityscapes(clip: ClipResult, staging: Path, options: dict) -> list[str]:
    fmt = clip.label_format()
    if fmt.kind != "ids":
        raise InputError(clip.folder, f"Cityscapes labels are grayscale ids; this clip's are {fmt.describe()}")
    train_ids = options.get("train_ids", False)
    to_train_ids = np.full(256, 255, np.uint8)
    for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
        to_train_ids[label_id] = train_id
    names = []
    for stem, ids in clip.labels(fmt):
        name = cityscapes_name(stem, clip.label_path(stem), train_ids)
        if (staging / name).exists():
            raise InputError(clip.label_path(stem), f"a second label for {name}")
        if ids.max(initial=0) > 255:
            raise InputError(clip.label_path(stem), "holds ids above 255, not Cityscapes labelIds")
        ids = to_train_ids[ids] if train_ids else ids.astype(np.uint8)
        save_png(Image.fromarray(ids.astype(np.uint8), mode="L"), staging / name)
        names.append(name)
    return names


# ---------------------------------------------------------------- all formats

EXPORTERS: dict[str, Callable[[ClipResult, Path, dict], list[str]]] = {
    "davis": export_davis, "cityscapes": export_cityscapes, "cvat": export_cvat}


def export(out: str | Path, target: str | Path, to: str, *, train_ids: bool = False, overwrite: bool = False,
           name: str | None = None, names: str | None = None,
           on_clip: Callable[[str], None] = lambda name: None) -> dict:
    """Export every clip of OUT into TARGET in format `to`; returns {"clips": n, "frames": n, "written":
    [top-level names]}. A single clip is named after its video, or `name`; `names`: class names for CVAT."""
    if to not in EXPORTERS:
        raise InputError(to, f"unknown export format; choose one of {', '.join(EXPORTERS)}")
    if train_ids and to != "cityscapes":
        raise InputError("--train-ids", "only applies to --to cityscapes")
    if names is not None and to != "cvat":
        raise InputError("--names", "only applies to --to cvat")
    clips = find_results(out)
    if name is not None:
        if len(clips) != 1:
            raise InputError(out, f"--name names one clip; this folder holds {len(clips)}")
        if not name or "/" in name or name.startswith("."):
            raise InputError("--name", f"{name!r} is not a plain file name")
        clips = [replace(clips[0], name=name)]
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise InputError(target, "exists and is not a folder")
    staging = target / STAGING
    created = not target.exists()
    if staging.exists():
        shutil.rmtree(staging)  # ours, left by a killed export
    staging.mkdir(parents=True)
    try:
        written: list[str] = []
        for clip in clips:
            on_clip(clip.name)
            written += EXPORTERS[to](clip, staging, {"train_ids": train_ids, "names": names})
        written = sorted(set(written))
        clashes = [name for name in written if (target / name).exists()]
        if clashes and not overwrite:
            raise InputError(target / clashes[0], f"already exists ({len(clashes)} in all); "
                                                  "pass --overwrite to replace them")
        for name in written:
            if (target / name).is_dir():
                shutil.rmtree(target / name)
            os.replace(staging / name, target / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(target, ignore_errors=True)
        raise
    shutil.rmtree(staging)
    return {"clips": len(clips), "frames": sum(len(clip.stems) for clip in clips), "written": written, "format": to}
