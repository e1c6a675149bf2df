"""One frame's pictures, arrays in and out: labels over the frame, confidence as heat, where it is wrong."""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageDraw

from .fonts import font, printable
from .palette import ClassColors

# Below this a pixel is hatched and counts as doubtful. Not 0.5: with two classes (binary masks)
# the winning probability is never below 0.5, and a 0.6 there is a coin flip.
LOW_CONFIDENCE = 0.75
MISSED = (255, 0, 255)     # magenta: the ground truth's object or class the labels missed (on the dimmed frame)
EXTRA = (255, 190, 0)      # amber: an object labeled where the ground truth has background
BOX = (0, 255, 255)        # cyan frame around the worst region
REGION = 1 / 6             # side of the worst-region box, as a share of the frame's longer side


def resize(image: np.ndarray, width: int, nearest: bool = False) -> np.ndarray:
    """To `width` px wide, keeping the aspect ratio (nearest neighbour for ids)."""
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    if image.shape[1] == width:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def outlines(label: np.ndarray) -> np.ndarray:
    """HxW bool: pixels on a border between two ids."""
    edge = np.zeros(label.shape, bool)
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    return edge


def hatch(image: np.ndarray, mask: np.ndarray, spacing: int = 8) -> np.ndarray:
    """Black and white diagonal stripes over `mask`: visible on every class colour."""
    ys, xs = np.indices(mask.shape)
    phase = (xs + ys) % spacing
    image[mask & (phase < 2)] = 255
    image[mask & (phase >= spacing // 2) & (phase < spacing // 2 + 2)] = 0
    return image


def blend(frame: np.ndarray, label: np.ndarray, colors: ClassColors, confidence: np.ndarray | None = None,
          alpha: float = 0.55) -> np.ndarray:
    """Labels in their colours over the frame, outlines in white, low-confidence pixels hatched."""
    paint, painted = colors.paint(label)
    out = frame.astype(np.float32)
    out[painted] = out[painted] * (1 - alpha) + paint[painted] * alpha
    out = out.astype(np.uint8)
    out[outlines(label)] = 255
    if confidence is not None:
        hatch(out, confidence < LOW_CONFIDENCE)
    return out


def label_column(frame: np.ndarray, label: np.ndarray, colors: ClassColors, confidence: np.ndarray) -> np.ndarray:
    """The contact sheet's labels: in the legend's own colours (not blended with the frame, which has
    its own column), outlines in white, doubtful pixels hatched."""
    return blend(frame, label, colors, confidence, alpha=1.0)


def heat(confidence: np.ndarray) -> np.ndarray:
    """Confidence as colour: sure is dark, doubtful glows (inferno, reversed)."""
    levels = np.rint((1.0 - np.clip(confidence, 0, 1)) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def wrong_pixels(label: np.ndarray, truth: np.ndarray, object_format: bool,
                 ignore_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(missed, extra) HxW bool. Objects: missed = an object pixel of the ground truth labeled otherwise,
    extra = background labeled as an object. Classes: every wrong pixel misses its true class."""
    wrong = label != truth
    if ignore_index is not None:
        wrong &= truth != ignore_index
    if not object_format:
        return wrong, np.zeros_like(wrong)
    extra = wrong & (truth == 0)
    return wrong & ~extra, extra


def errors(frame: np.ndarray, missed: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """The frame in dim grey (so no colour of its own competes), missed pixels magenta, extra ones amber."""
    out = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) // 3, cv2.COLOR_GRAY2RGB)
    out[missed] = MISSED
    out[extra] = EXTRA
    return out


def worst_region(weight: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the square, REGION of the frame's longer side wide, holding the most `weight`
    (wrong pixels, or doubt = 1 - confidence); None when there is none."""
    if not weight.any():
        return None
    height, width = weight.shape
    side = max(8, round(max(height, width) * REGION))
    density = cv2.blur(weight.astype(np.float32), (side, side), borderType=cv2.BORDER_CONSTANT)
    y, x = np.unravel_index(int(density.argmax()), density.shape)
    x0 = int(np.clip(x - side // 2, 0, max(0, width - side)))
    y0 = int(np.clip(y - side // 2, 0, max(0, height - side)))
    return x0, y0, min(width, x0 + side) - 1, min(height, y0 + side) - 1


def box(image: np.ndarray, region: tuple[int, int, int, int] | None) -> np.ndarray:
    if region is None:
        return image
    out = image.copy()
    thickness = max(2, round(max(image.shape[:2]) / 240))
    x0, y0, x1, y1 = region
    cv2.rectangle(out, (x0, y0), (x1, y1), (0, 0, 0), thickness + 2)
    cv2.rectangle(out, (x0, y0), (x1, y1), BOX, thickness)
    return out


def corner_text(image: np.ndarray, lines: list[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
    """Lines of text on a dark box in the top-left corner."""
    size = max(12, round(image.shape[1] / 50))
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil, "RGBA")
    lines = [(printable(text), color) for text, color in lines]
    widths = [draw.textlength(text, font=font(size)) for text, _ in lines]
    draw.rectangle((0, 0, max(widths) + 2 * size // 2, len(lines) * (size + 4) + size // 2), fill=(0, 0, 0, 170))
    for k, (text, color) in enumerate(lines):
        draw.text((size // 2, size // 4 + k * (size + 4)), text, fill=color, font=font(size))
    return np.asarray(pil)
