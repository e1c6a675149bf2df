"""Class names for label ids: Cityscapes labelIds (and which 19 the benchmark evaluates), CamVid, or a CSV.

The Cityscapes table is the one in cityscapesScripts' labels.py (tests/test_protocols.py checks it
against the installed package); copied so that autolabel does not need that package at run time.
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


CITYSCAPES_LABELS = tuple(CityscapesLabel(*row) for row in (
    (0, "unlabeled", 255, True), (1, "ego vehicle", 255, True), (2, "rectification border", 255, True),
    (3, "out of roi", 255, True), (4, "static", 255, True), (5, "dynamic", 255, True), (6, "ground", 255, True),
    (7, "road", 0, False), (8, "sidewalk", 1, False), (9, "parking", 255, True), (10, "rail track", 255, True),
    (11, "building", 2, False), (12, "wall", 3, False), (13, "fence", 4, False), (14, "guard rail", 255, True),
    (15, "bridge", 255, True), (16, "tunnel", 255, True), (17, "pole", 5, False), (18, "polegroup", 255, True),
    (19, "traffic light", 6, False), (20, "traffic sign", 7, False), (21, "vegetation", 8, False),
    (22, "terrain", 9, False), (23, "sky", 10, False), (24, "person", 11, False), (25, "rider", 12, False),
    (26, "car", 13, False), (27, "truck", 14, False), (28, "bus", 15, False), (29, "caravan", 255, True),
    (30, "trailer", 255, True), (31, "train", 16, False), (32, "motorcycle", 17, False),
    (33, "bicycle", 18, False),
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
    """CSV rows `id,name` (a header row is allowed), or `id,r,g,b,name` like a colour table."""
    path = Path(path)
    names: dict[int, str] = {}
    try:
        with open(path, newline="") as handle:
            for row in csv.reader(handle):
                if row and row[0].strip().isdigit() and len(row) >= 2:
                    names[int(row[0])] = row[-1].strip()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(path, f"cannot read class names ({error})") from None
    if not names:
        raise InputError(path, "no 'id,name' rows")
    return names


def class_names(source: str | Path | None) -> dict[int, str]:
    """id -> name for `--names`: 'cityscapes' (labelIds), 'camvid' (11 classes), or a CSV file."""
    if source is None:
        return {}
    if str(source) == "cityscapes":
        return {label.id: label.name for label in CITYSCAPES_LABELS}
    if str(source) == "camvid":
        return dict(enumerate(CAMVID_NAMES))
    return read_names(source)
