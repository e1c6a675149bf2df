"""Class names and the dataset's own colours: Cityscapes labelIds, a names CSV, or a file beside the keyframes.

A names CSV has rows `id,name` or, like a `--color-table`, `id,r,g,b,name`; a header row is
allowed. Beside the keyframes (in their folder or its parent), `names.csv` or `classes.csv`
is picked up on its own.
"""
from __future__ import annotations

import csv
from pathlib import Path

from ...errors import InputError

NAMES_FILES = ("names.csv", "classes.csv")

# Cityscapes labelIds (cityscapesScripts, helpers/labels.py): id -> (name, colour).
CITYSCAPES = {
    0: ("unlabeled", (0, 0, 0)), 1: ("ego vehicle", (0, 0, 0)), 2: ("rectification border", (0, 0, 0)),
    3: ("out of roi", (0, 0, 0)), 4: ("static", (0, 0, 0)), 5: ("dynamic", (111, 74, 0)),
    6: ("ground", (81, 0, 81)), 7: ("road", (128, 64, 128)), 8: ("sidewalk", (244, 35, 232)),
    9: ("parking", (250, 170, 160)), 10: ("rail track", (230, 150, 140)), 11: ("building", (70, 70, 70)),
    12: ("wall", (102, 102, 156)), 13: ("fence", (190, 153, 153)), 14: ("guard rail", (180, 165, 180)),
    15: ("bridge", (150, 100, 100)), 16: ("tunnel", (150, 120, 90)), 17: ("pole", (153, 153, 153)),
    18: ("polegroup", (153, 153, 153)), 19: ("traffic light", (250, 170, 30)), 20: ("traffic sign", (220, 220, 0)),
    21: ("vegetation", (107, 142, 35)), 22: ("terrain", (152, 251, 152)), 23: ("sky", (70, 130, 180)),
    24: ("person", (220, 20, 60)), 25: ("rider", (255, 0, 0)), 26: ("car", (0, 0, 142)),
    27: ("truck", (0, 0, 70)), 28: ("bus", (0, 60, 100)), 29: ("caravan", (0, 0, 90)),
    30: ("trailer", (0, 0, 110)), 31: ("train", (0, 80, 100)), 32: ("motorcycle", (0, 0, 230)),
    33: ("bicycle", (119, 11, 32)),
}
# Ids that, all present in a grayscale id map with nothing above 33, say "Cityscapes labelIds".
CITYSCAPES_SIGNATURE = {7, 11, 21, 23, 26}  # road, building, vegetation, sky, car


def looks_like_cityscapes(kind: str, ids, ignore_index: int | None) -> bool:
    """Grayscale ids within 0..33 that include road, building, vegetation, sky and car."""
    seen = {int(i) for i in ids} - {ignore_index}
    return kind == "ids" and bool(seen) and max(seen) <= 33 and CITYSCAPES_SIGNATURE <= seen


def read_names(path: str | Path) -> dict[int, str]:
    """id -> name from a CSV of `id,name` or `id,r,g,b,name` rows."""
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


def names_beside(keyframes: str | Path | None) -> Path | None:
    """A names file in the keyframes' folder or its parent, if there is one."""
    if keyframes is None:
        return None
    for folder in (Path(keyframes), Path(keyframes).parent):
        for name in NAMES_FILES:
            if (folder / name).is_file():
                return folder / name
    return None
