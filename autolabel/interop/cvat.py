"""One clip as a zip in CVAT's "Segmentation mask 1.1" import format, so that a person can correct it in CVAT.

The layout is CVAT's (docs.cvat.ai, dataset_management/formats/format-smask; CVAT imports it with
Datumaro's `voc` importer):

    <clip>.zip
      labelmap.txt                    # name:r,g,b:: per label, in label order; label 0 is background
      ImageSets/Segmentation/default.txt   # the frame stems, one a line (CVAT matches them to the task's frames)
      SegmentationClass/<stem>.png    # the label of every pixel, as its label's colour
      SegmentationObject/<stem>.png   # the instances: one per label present in the frame (CVAT merges
                                      # a class's pixels the same way when it exports this format)

Labels are: background (unlabeled pixels; for object masks also object id 0), then one label per
class id of the clip (the manifest's class_ids), named after it. Colours follow the PASCAL VOC
algorithm by label number, CVAT's own default, so they are distinct even where a dataset's own
colours are not (Cityscapes draws several classes black). Both PNGs are palette images.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from ..io.labels import LabelFormat, davis_palette
from ..io.classnames import CITYSCAPES_LABELS, class_names, looks_like_cityscapes
from ..io.results import ClipResult

ZIP_DATE = (1980, 1, 1, 0, 0, 0)   # fixed, so that the same labels give the same bytes


def cvat_labels(clip: ClipResult, fmt: LabelFormat, names: str | None = None) -> tuple[list[str], dict[int, int]]:
    """(label names in label order, our id -> label number). Class names: `names` (as --names takes
    them), else the names file the manifest recorded, else Cityscapes' for Cityscapes frames. For
    classes, the ignore id (CamVid's void) is a label of its own, so that it survives a correction in
    CVAT; for objects it is background, as the DAVIS evaluation counts it."""
    class_ids = [int(i) for i in clip.manifest.get("class_ids", [])]
    if fmt.is_object_format:
        objects = [i for i in class_ids if i != 0]
        labels = ["background"] + [f"object {1 if fmt.kind == 'binary' else i}" for i in objects]
        return labels, {0: 0} | {object_id: number for number, object_id in enumerate(objects, 1)}
    recorded = clip.manifest.get("names")
    if names is None and recorded and Path(recorded).is_file():
        names = recorded
    known = class_names(names) if names is not None else \
        {label.id: label.name for label in CITYSCAPES_LABELS} if looks_like_cityscapes(clip.stems) else {}
    if fmt.ignore_index is not None and fmt.ignore_index not in class_ids:
        class_ids.append(fmt.ignore_index)
    labels = ["background"] + [known.get(i, f"unlabeled {i}" if i == fmt.ignore_index else f"class {i}")
                               for i in class_ids]
    return labels, {class_id: number for number, class_id in enumerate(class_ids, 1)}


def label_numbers(ids: np.ndarray, number_of: dict[int, int]) -> np.ndarray:
    """Our ids -> label numbers; ids without a label (unlabeled) -> 0, background."""
    lookup = np.zeros(max(max(number_of), int(ids.max(initial=0))) + 1, np.uint8)
    for class_id, number in number_of.items():
        lookup[class_id] = number
    return lookup[ids]


def _png(numbers: np.ndarray, palette: list[int]) -> bytes:
    image = Image.fromarray(numbers, mode="L")
    image.putpalette(palette)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def export_cvat(clip: ClipResult, staging: Path, options: dict) -> list[str]:
    fmt = clip.label_format()
    names, number_of = cvat_labels(clip, fmt, options.get("names"))
    if len(names) > 255:
        raise InputError(clip.folder, f"{len(names) - 1} classes; a Segmentation mask PNG holds at most 255")
    palette = davis_palette()
    colours = [tuple(palette[3 * n:3 * n + 3]) for n in range(len(names))]
    zip_name = clip.name.replace("/", "_") + ".zip"
    with zipfile.ZipFile(staging / zip_name, "w") as archive:
        _add(archive, "labelmap.txt", ("# label:color_rgb:parts:actions\n" + "".join(
            f"{name}:{r},{g},{b}::\n" for name, (r, g, b) in zip(names, colours))).encode())
        _add(archive, "ImageSets/Segmentation/default.txt", "".join(f"{stem}\n" for stem in clip.stems).encode())
        for stem, ids in clip.labels(fmt):
            numbers = label_numbers(ids, number_of)
            png = _png(numbers, palette)
            # one instance per label present: instance number = label number, with the same VOC colours
            _add(archive, f"SegmentationClass/{stem}.png", png)
            _add(archive, f"SegmentationObject/{stem}.png", png)
    return [zip_name]
