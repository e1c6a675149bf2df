"""Class names and the dataset's own colours: Cityscapes labelIds, a names CSV, or a file beside the keyframes.

The Cityscapes names and colours are classnames.py's table, and a names CSV is read by its `read_names`.
Beside the keyframes (in their folder or its parent), `names.csv` or `classes.csv` is picked up on its own.
"""
from __future__ import annotations

from ...io.classnames import CITYSCAPES_LABELS, names_beside, read_names  # noqa: F401  review's names readers too

# Cityscapes labelIds: id -> (name, colour)
CITYSCAPES = {label.id: (label.name, label.color) for label in CITYSCAPES_LABELS}
# Ids that, all present in a grayscale id map with nothing above 33, say "Cityscapes labelIds".
CITYSCAPES_SIGNATURE = {7, 11, 21, 23, 26}  # road, building, vegetation, sky, car


def looks_like_cityscapes(kind: str, ids, ignore_index: int | None) -> bool:
    """Grayscale ids within 0..33 that include road, building, vegetation, sky and car."""
    seen = {int(i) for i in ids} - {ignore_index}
    return kind == "ids" and bool(seen) and max(seen) <= 33 and CITYSCAPES_SIGNATURE <= seen
