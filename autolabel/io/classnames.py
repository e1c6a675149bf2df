"""Class names for label ids: Cityscapes labelIds (and which 19 the benchmark evaluates), CamVid, or a CSV.

The Cityscapes table is the one in cityscapesScripts' labels.py, colours included (tests/test_protocols.py
checks it against the installed package); copied so that autolabel does not need that package at run time.
A names CSV has rows `id,name` or, like a `--color-table`, `id,r,g,b,name`; a header row is allowed.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import NamedTuple

from ..errors import InputError


class CityscapesLabel(NamedTuple):
    id: int
    name: str
    train_id: int          # 255: not trained on, not evaluated
    ignore_in_eval: bool
    color: tuple[int, int, int]


CITYSCAPES_LABELS = tuple(CityscapesLabel(*row) for row in (
    (0, "unlabeled", 255, True, (0, 0, 0)), (1, "ego vehicle", 255, True, (0, 0, 0)),
    (2, "rectification border", 255, True, (0, 0, 0)), (3, "out of roi", 255, True, (0, 0, 0)),
    (4, "static", 255, True, (0, 0, 0)), (5, "dynamic", 255, True, (111, 74, 0)),
    (6, "ground", 255, True, (81, 0, 81)), (7, "road", 0, False, (128, 64, 128)),
    (8, "sidewalk", 1, False, (244, 35, 232)), (9, "parking", 255, True, (250, 170, 160)),
    (10, "rail track", 255, True, (230, 150, 140)), (11, "building", 2, False, (70, 70, 70)),
    (12, "wall", 3, False, (102, 102, 156)), (13, "fence", 4, False, (190, 153, 153)),
    (14, "guard rail", 255, True, (180, 165, 180)), (15, "bridge", 255, True, (150, 100, 100)),
    (16, "tunnel", 255, True, (150, 120, 90)), (17, "pole", 5, False, (153, 153, 153)),
    (18, "polegroup", 255, True, (153, 153, 153)), (19, "traffic light", 6, False, (250, 170, 30)),
    (20, "traffic sign", 7, False, (220, 220, 0)), (21, "vegetation", 8, False, (107, 142, 35)),
    (22, "terrain", 9, False, (152, 251, 152)), (23, "sky", 10, False, (70, 130, 180)),
    (24, "person", 11, False, (220, 20, 60)), (25, "rider", 12, False, (255, 0, 0)),
    (26, "car", 13, False, (0, 0, 142)), (27, "truck", 14, False, (0, 0, 70)),
    (28, "bus", 15, False, (0, 60, 100)), (29, "caravan", 255, True, (0, 0, 90)),
    (30, "trailer", 255, True, (0, 0, 110)), (31, "train", 16, False, (0, 80, 100)),
    (32, "motorcycle", 17, False, (0, 0, 230)), (33, "bicycle", 18, False, (119, 11, 32)),
))
CITYSCAPES_EVALUATED = tuple(label.id for label in CITYSCAPES_LABELS if not label.ignore_in_eval)  # the 19
CITYSCAPES_TRAIN_IDS = {label.id: label.train_id for label in CITYSCAPES_LABELS}

# CamVid as most benchmarks use it (SegNet's 11 classes, 11 = void)
CAMVID_NAMES = ("sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car",
                "pedestrian", "bicyclist", "void")

# <city>_<sequence>_<frame>[_suffix]: one frame of Cityscapes, whatever the file (leftImg8bit, gtFine_labelIds, …)
CITYSCAPES_STEM = re.compile(r"(?P<frame>[A-Za-z][A-Za-z-]*_\d{6}_\d{6})(_.*)?")


def looks_like_cityscapes(stems) -> bool:
    return any(CITYSCAPES_STEM.fullmatch(stem) for stem in stems)


def read_names(path: str | Path) -> dict[int, str]:
    """id -> name from a CSV of `id,name` or `id,r,g,b,name` rows (a header row is skipped)."""
    path = Path(path)
    names: dict[int, str] = {}
    try:
        with open(path, newline="") as handle:
            for row in csv.reader(handle):
                cells = [cell.strip() for cell in row]
                if not cells or not cells[0].lstrip("-").isdigit():
                    continue  # header or blank
                if len(cells) not in (2, 5) or not cells[-1]:
                    raise InputError(path, f"row {row!r}: expected 'id,name' or 'id,r,g,b,name'")
                names[int(cells[0])] = cells[-1]
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(path, f"cannot read class names ({error})") from None
    if not names:
        raise InputError(path, "holds no 'id,name' rows")
    return names


# The built-in name sets every `--names` option takes (evaluate, review, export), besides a CSV file.
BUILTIN_NAMES = {
    "cityscapes": {label.id: label.name for label in CITYSCAPES_LABELS},   # labelIds
    "camvid": dict(enumerate(CAMVID_NAMES)),                               # 11 classes, 11 = void
}
NAMES_METAVAR = "|".join(BUILTIN_NAMES) + "|CSV"
NAMES_HELP = ("Class names: " + ", ".join(BUILTIN_NAMES) + " (built in), or a CSV of 'id,name' (or "
              "'id,r,g,b,name') rows.")
NAMES_FILES = ("names.csv", "classes.csv")  # picked up beside the keyframes on their own


def class_names(source: str | Path | None) -> dict[int, str]:
    """id -> name for `--names`: a built-in set (BUILTIN_NAMES) or a CSV file."""
    if source is None:
        return {}
    if str(source) in BUILTIN_NAMES:
        return dict(BUILTIN_NAMES[str(source)])
    return read_names(source)


def names_beside(keyframes: str | Path | None) -> Path | None:
    """A names file in the keyframes' folder or its parent, if there is one."""
    if keyframes is None:
        return None
    for folder in (Path(keyframes), Path(keyframes).parent):
        for name in NAMES_FILES:
            if (folder / name).is_file():
                return folder / name
    return None
