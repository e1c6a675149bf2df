"""Colours for label ids that a person can tell apart, whatever the label format.

- labels that carry colours (palette PNGs, RGB colour codes) keep the dataset's own;
- Cityscapes labelIds get Cityscapes' colours;
- anything else (grayscale id maps that look black on disk, binary masks) gets a fixed
  maximum-contrast palette (Kelly's colours), assigned by the id's rank among the clip's
  ids, so the same id has the same colour in every frame.
The background of object labels (id 0 in binary and palette labels, black in RGB labels) and
the ignore id are left uncoloured: the frame shows through.
"""
from __future__ import annotations

import colorsys

import numpy as np

from .classes import CITYSCAPES

# Kelly (1965), 22 colours of maximum contrast, without white and black.
KELLY = ["#F3C300", "#875692", "#F38400", "#A1CAF1", "#BE0032", "#C2B280", "#008856", "#E68FAC", "#0067A5",
         "#F99379", "#604E97", "#F6A600", "#B3446C", "#DCD300", "#882D17", "#8DB600", "#654522", "#E25822",
         "#2B3D26", "#848482"]


def fixed_colors(count: int) -> np.ndarray:
    """`count` distinct colours: Kelly's first, then evenly spread hues in alternating lightness."""
    colors = [tuple(int(h[i:i + 2], 16) for i in (1, 3, 5)) for h in KELLY[:count]]
    golden = 0.618033988749895
    for k in range(count - len(colors)):
        rgb = colorsys.hls_to_rgb((k * golden) % 1.0, 0.45 if k % 2 else 0.65, 0.85)
        colors.append(tuple(int(255 * c) for c in rgb))
    return np.array(colors, np.uint8).reshape(-1, 3)


class ClassColors:
    """id -> colour (and whether the id is painted at all) for one clip's labels."""

    def __init__(self, ids, colors: np.ndarray, painted: np.ndarray):
        self.ids = np.asarray(ids, np.int64)          # sorted
        self.colors = np.asarray(colors, np.uint8)    # (k, 3)
        self.painted = np.asarray(painted, bool)      # (k,)

    @classmethod
    def for_labels(cls, fmt, ids, cityscapes: bool = False) -> "ClassColors":
        """`fmt`: the labels' LabelFormat; `ids`: every id the clip's labels use."""
        ids = np.array(sorted({int(i) for i in ids}), np.int64)
        unpainted = {fmt.ignore_index} if fmt.ignore_index is not None else set()
        if fmt.kind in ("binary", "palette"):
            unpainted.add(0)
        if fmt.kind == "palette" and fmt.palette:
            table = np.array(list(fmt.palette) + [0] * (768 - len(fmt.palette)), np.uint8).reshape(256, 3)
            colors = table[np.clip(ids, 0, 255)]
        elif fmt.kind == "rgb":
            colors = np.asarray(fmt.colors, np.uint8)[ids]
            unpainted |= {int(i) for i, color in zip(ids, colors) if not color.any()}
        elif cityscapes:
            colors = np.array([CITYSCAPES.get(int(i), ("", (0, 0, 0)))[1] for i in ids], np.uint8).reshape(-1, 3)
        else:
            colors = np.zeros((len(ids), 3), np.uint8)
            order = [k for k, i in enumerate(ids) if int(i) not in unpainted]
            colors[order] = fixed_colors(len(order))
        return cls(ids, colors, [int(i) not in unpainted for i in ids])

    def index(self, label: np.ndarray) -> np.ndarray:
        """Row of each pixel's id in this table (ids outside it map to the nearest row)."""
        return np.clip(np.searchsorted(self.ids, label), 0, len(self.ids) - 1)

    def paint(self, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(HxWx3 colours, HxW mask of painted pixels)."""
        rows = self.index(label)
        return self.colors[rows], self.painted[rows]
