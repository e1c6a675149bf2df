"""Pictures that say more than a number: a contact sheet of frames, labels and confidence."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .synth import davis_palette

_PALETTE = np.array(davis_palette(), dtype=np.uint8).reshape(256, 3)


def colorize(ids: np.ndarray) -> np.ndarray:
    """Distinct colours per id (DAVIS palette over the ids' rank), background-ish ids dark."""
    values, rank = np.unique(ids, return_inverse=True)
    return _PALETTE[(rank.reshape(ids.shape) % 255) + (0 if values[0] == 0 else 1)]


def overlay(frame: np.ndarray, ids: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    return (frame * (1 - alpha) + colorize(ids) * alpha).astype(np.uint8)


def heat(confidence: np.ndarray) -> np.ndarray:
    """Confidence as colour: red where the label is doubtful, green where it is sure."""
    c = np.clip(confidence, 0, 1)[..., None]
    return (np.array([220, 40, 40]) * (1 - c) + np.array([40, 200, 90]) * c).astype(np.uint8)


def contact_sheet(rows: list[tuple[str, list[np.ndarray]]], path: Path, width: int = 240) -> Path:
    """One row per frame: a caption and images side by side, each scaled to `width` px."""
    scaled_rows = []
    for caption, images in rows:
        cells = []
        for image in images:
            pil = Image.fromarray(image)
            cells.append(pil.resize((width, max(1, round(pil.height * width / pil.width))), Image.NEAREST))
        scaled_rows.append((caption, cells))
    cell_h = max(c.height for _, cells in scaled_rows for c in cells)
    columns = max(len(cells) for _, cells in scaled_rows)
    sheet = Image.new("RGB", (columns * (width + 4) + 4, len(rows) * (cell_h + 18) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (caption, cells) in enumerate(scaled_rows):
        y = 4 + r * (cell_h + 18)
        draw.text((4, y), caption, fill="black")
        for c, cell in enumerate(cells):
            sheet.paste(cell, (4 + c * (width + 4), y + 14))
    sheet.save(path)
    return path
