"""`autolabel import`: corrected frames back in, as keyframe labels in the clip's own format and ids.

Two sources:

- a CVAT "Segmentation mask 1.1" zip, as CVAT exports a task after a person corrected what
  `export --to cvat` gave it: `labelmap.txt` names each label and its colour, and
  `SegmentationClass/<stem>.png` colours every pixel by its label. A label's name maps back to
  the clip's id through the names `export` gave the manifest's class ids (cvat.cvat_labels);
  `background` becomes the ignore id (object masks: 0, their background). The zip holds every
  frame of the task, so only the frames whose labels differ from the propagation in OUT are
  taken: those a person changed.
- a folder of label PNGs in the clip's own format, named by frame stem: every file is taken.

Everything is read and checked before anything is written; the labels are staged in
KEYFRAMES/.autolabel-import and renamed into place. A frame that KEYFRAMES already labels is
replaced only with `overwrite`.
"""
from __future__ import annotations

import io
import os
import shutil
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from ..errors import InputError
from ..io.keyframes import find_keyframes
from ..io.labels import LabelFormat, read_label, write_label
from ..io.results import ClipResult, find_results
from .cvat import cvat_labels, label_numbers

STAGING = ".autolabel-import"
MASKS = "SegmentationClass/"


def read_labelmap(text: str, where: str) -> dict[tuple[int, int, int], str]:
    """`name:r,g,b:parts:actions` lines -> {colour: name}."""
    colours: dict[tuple[int, int, int], str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        try:
            colour = tuple(int(value) for value in rest.split(":")[0].split(","))
        except ValueError:
            colour = ()
        if len(colour) != 3:
            raise InputError(where, f"cannot read the line {line.strip()!r} (expected name:r,g,b::)")
        if colour in colours:
            raise InputError(where, f"labels {colours[colour]!r} and {name!r} share the colour {colour}")
        colours[colour] = name  # type: ignore[index]
    if not colours:
        raise InputError(where, "holds no labels")
    return colours


def _ids_of_names(clip: ClipResult, fmt: LabelFormat, where: str, names_used: list[str]) -> dict[str, int]:
    """Label name -> the clip's id; every name must be one `export` gives this clip."""
    names, number_of = cvat_labels(clip, fmt)
    id_of_number = {number: class_id for class_id, number in number_of.items() if number > 0}
    background = 0 if fmt.is_object_format else fmt.ignore_index
    ids = {name: id_of_number[number] for number, name in enumerate(names) if number > 0}
    unknown = [name for name in names_used if name not in ids and name != "background"]
    if unknown:
        raise InputError(where, f"label {unknown[0]!r} is not a class of this clip (its labels: "
                                f"{', '.join(names)})")
    if "background" in names_used:
        if background is None or (fmt.kind == "rgb" and background >= len(fmt.colors)):
            raise InputError(where, "has 'background' (unlabeled) pixels but the clip has no ignore id to write them as")
        ids["background"] = background
    return ids


def _cvat_frames(zip_path: Path, clip: ClipResult, fmt: LabelFormat) -> dict[str, np.ndarray]:
    """{stem: ids} of every frame in a CVAT Segmentation mask 1.1 zip, checked."""
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as error:
        raise InputError(zip_path, f"cannot read the zip ({error})") from None
    with archive:
        names = archive.namelist()
        labelmap_name = next((n for n in names if PurePosixPath(n).name == "labelmap.txt"), None)
        if labelmap_name is None:
            raise InputError(zip_path, "holds no labelmap.txt: not a CVAT 'Segmentation mask 1.1' export")
        where = f"{zip_path}:{labelmap_name}"
        colours = read_labelmap(archive.read(labelmap_name).decode("utf-8", "replace"), where)
        id_of_name = _ids_of_names(clip, fmt, where, list(colours.values()))
        packed = np.array([(r << 16) | (g << 8) | b for r, g, b in colours], np.int64)
        order = np.argsort(packed)
        ids_of_colour = np.array([id_of_name[name] for name in colours.values()], np.int64)
        masks = sorted(n for n in names if MASKS in n and n.lower().endswith(".png"))
        if not masks:
            raise InputError(zip_path, f"holds no {MASKS}*.png masks")
        stems = set(clip.stems)
        width, height = clip.manifest["size"]
        frames: dict[str, np.ndarray] = {}
        for name in masks:
            where = f"{zip_path}:{name}"
            stem = PurePosixPath(name).stem
            if stem not in stems:
                raise InputError(where, f"frame {stem!r} is not in the clip ({clip.stems[0]} … {clip.stems[-1]})")
            if stem in frames:
                raise InputError(where, f"a second mask for frame {stem!r}")
            try:
                image = Image.open(io.BytesIO(archive.read(name)))
                rgb = np.asarray(image.convert("RGB"))
            except (OSError, ValueError, zipfile.BadZipFile) as error:
                raise InputError(where, f"cannot read the mask ({error})") from None
            if rgb.shape[:2] != (height, width):
                raise InputError(where, f"mask is {rgb.shape[1]}x{rgb.shape[0]} but the clip's frames are "
                                        f"{width}x{height}")
            pixel = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
            position = order[np.clip(np.searchsorted(packed[order], pixel), 0, len(packed) - 1)]
            bad = packed[position] != pixel
            if bad.any():
                y, x = np.argwhere(bad)[0]
                raise InputError(where, f"colour {tuple(int(v) for v in rgb[y, x])} at x={x}, y={y} is no label "
                                        "of labelmap.txt")
            frames[stem] = ids_of_colour[position].astype(np.int32)
    return frames


def _changed(clip: ClipResult, fmt: LabelFormat, frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The frames whose labels differ from what `export --to cvat` would show of OUT (unlabeled
    and background look alike there, so they are compared as CVAT shows them)."""
    _, number_of = cvat_labels(clip, fmt)
    changed = {}
    for stem, ids in frames.items():
        path = clip.label_path(stem)
        if not path.is_file():
            raise InputError(path, "missing: the manifest lists this frame")
        if not np.array_equal(label_numbers(ids, number_of), label_numbers(read_label(path, fmt), number_of)):
            changed[stem] = ids
    return changed


def _folder_frames(folder: Path, clip: ClipResult, fmt: LabelFormat) -> dict[str, np.ndarray]:
    width, height = clip.manifest["size"]
    frames = {}
    for index, path in sorted(find_keyframes(folder, clip.stems).items()):
        ids = read_label(path, fmt)
        if ids.shape != (height, width):
            raise InputError(path, f"label is {ids.shape[1]}x{ids.shape[0]} but the clip's frames are {width}x{height}")
        frames[clip.stems[index]] = ids
    return frames


def import_labels(source: str | Path, out: str | Path, keyframes: str | Path, *, overwrite: bool = False) -> dict:
    """Write the corrected frames of `source` (CVAT zip or PNG folder) into the `keyframes` folder of the clip
    whose propagation is `out`. Returns {"written": [file names], "frames": [stems], "unchanged": n}."""
    source, keyframes = Path(source), Path(keyframes)
    clips = find_results(out)
    if len(clips) != 1:
        raise InputError(out, f"holds {len(clips)} clips; give one clip's folder (OUT/<clip>)")
    clip = clips[0]
    fmt = clip.label_format()
    if source.is_file() and source.suffix.lower() == ".zip":
        frames = _cvat_frames(source, clip, fmt)
        corrected = _changed(clip, fmt, frames)
    elif source.is_dir():
        frames = corrected = _folder_frames(source, clip, fmt)
    else:
        raise InputError(source, "no such file or folder" if not source.exists()
                         else "is neither a CVAT zip nor a folder of label PNGs")
    if keyframes.exists() and not keyframes.is_dir():
        raise InputError(keyframes, "exists and is not a folder")
    existing: dict[int, Path] = {}
    if keyframes.is_dir() and any(p.suffix.lower() == ".png" and not p.name.startswith(".")
                                  for p in keyframes.iterdir()):
        existing = find_keyframes(keyframes, clip.stems)
    index_of = {stem: i for i, stem in enumerate(clip.stems)}
    names = {stem: existing[index_of[stem]].name if index_of[stem] in existing else f"{stem}.png"
             for stem in corrected}
    replaced = [names[stem] for stem in corrected if index_of[stem] in existing]
    if replaced and not overwrite:
        raise InputError(keyframes / replaced[0], f"already labels this frame ({len(replaced)} in all); "
                                                  "pass --overwrite to replace them")
    created = not keyframes.exists()
    staging = keyframes / STAGING
    try:
        if staging.exists():
            shutil.rmtree(staging)  # ours, left by a killed import
        staging.mkdir(parents=True)
        for stem, ids in corrected.items():
            write_label(staging / names[stem], ids, fmt)
        for stem in corrected:
            os.replace(staging / names[stem], keyframes / names[stem])
    except BaseException:
        if created:
            shutil.rmtree(keyframes, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"written": sorted(names.values()), "frames": sorted(corrected, key=index_of.get),
            "unchanged": len(frames) - len(corrected), "replaced": len(replaced)}
