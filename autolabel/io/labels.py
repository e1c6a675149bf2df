"""Label formats in and out: palette PNGs, grayscale id PNGs, binary 0/255 masks, RGB colour codes.

Inside the pipeline a label is an HxW integer array of *ids*: the palette index,
the grey value, 0/255 for binary masks, or the row of the colour table for RGB
labels. Writing turns ids back into the format they came in.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError, writing

KINDS = ("palette", "ids", "binary", "rgb")


@dataclass(frozen=True)
class LabelFormat:
    kind: str                                   # one of KINDS
    ignore_index: int | None = None             # id that means "unlabeled"
    palette: tuple[int, ...] | None = None      # palette kind: 768 ints, kept on write
    colors: tuple[tuple[int, int, int], ...] = field(default=())  # rgb kind: id -> colour
    sixteen_bit: bool = False                   # ids kind stored as 16-bit PNG
    stored_rgb: bool = False                    # binary or ids stored as grey RGB pixels: written back as RGB

    @property
    def is_object_format(self) -> bool:
        """Object ids (DAVIS) are scored by J; semantic ids by mIoU."""
        return self.kind in ("palette", "binary")

    def describe(self) -> str:
        text = {"palette": "palette PNG (object ids)", "ids": "grayscale id PNG",
                "binary": "binary mask (0 background, 255 object)", "rgb": "RGB colour-coded PNG"}[self.kind]
        if self.kind == "rgb":
            text += f", {len(self.colors)} colours"
        if self.stored_rgb:
            text += ", stored as grey RGB"
        if self.ignore_index is not None:
            text += f", ignore id {self.ignore_index}"
        return text


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except (OSError, ValueError, SyntaxError) as error:
        raise InputError(path, f"cannot read label PNG ({error})") from None
    # A lossy image renamed .png would be read as ids of its compression noise
    if path.suffix.lower() == ".png" and image.format != "PNG":
        raise InputError(path, f"named .png but holds {image.format} data: a label must be a real PNG "
                               f"(lossless), not a renamed {image.format}")
    return image


# For messages: what a file is (_file_kind), and what each --label-format reads.
FILE_KINDS = {"palette": "a palette PNG", "gray": "a grayscale PNG", "rgb": "an RGB colour-coded PNG"}
READS = {"palette": "palette PNGs", "rgb": "RGB PNGs", "ids": "grayscale PNGs", "binary": "grayscale PNGs"}


def _is_gray_rgb(array: np.ndarray) -> bool:
    return bool((array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all())


def _file_kind(image: Image.Image, path: Path) -> str:
    """The kind one file looks like on its own; binary vs ids is settled over all files."""
    if image.mode == "P":
        return "palette"
    if image.mode in ("L", "1", "I", "I;16", "I;16B", "I;16L"):
        return "gray"
    if image.mode in ("RGB", "RGBA"):
        return "gray" if _is_gray_rgb(np.asarray(image.convert("RGB"))) else "rgb"
    raise InputError(path, f"unsupported label image mode {image.mode!r}")


def _raw(image: Image.Image, kind: str) -> np.ndarray:
    if kind == "palette":
        return np.asarray(image)
    if kind == "rgb":
        return np.asarray(image.convert("RGB"))
    if image.mode == "1":
        return np.asarray(image.convert("L"))
    if image.mode in ("RGB", "RGBA"):
        return np.asarray(image.convert("RGB"))[..., 0]
    return np.asarray(image)


def read_color_table(path: str | Path) -> tuple[tuple[int, int, int], ...]:
    """CSV rows `id,r,g,b[,name]` (a header row first is allowed); ids must be 0..n-1. A bad row is
    named by its line."""
    path = Path(path)
    try:
        with open(path, newline="") as handle:
            lines = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(path, f"cannot read colour table ({error})") from None
    rows, header_allowed = {}, True
    for number, row in enumerate(lines, 1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if header_allowed and not cells[0].lstrip("-").isdigit():
            header_allowed = False
            continue
        header_allowed = False
        rows.update(_color_row(path, number, cells))
    if not rows:
        raise InputError(path, "colour table holds no id,r,g,b rows")
    missing = sorted(set(range(max(rows) + 1)) - set(rows))
    if missing:
        raise InputError(path, f"colour table ids must be 0, 1, 2, … without gaps (no row for id {missing[0]})")
    return tuple(rows[i] for i in range(len(rows)))


def _color_row(path: Path, number: int, cells: list[str]) -> dict:
    """{id: (r, g, b)} of one row of a colour table, or InputError naming the line and what is wrong."""
    def bad(problem: str) -> InputError:
        return InputError(path, f"line {number} ({','.join(cells)}): {problem}; rows are id,r,g,b[,name]")

    if len(cells) < 4:
        raise bad(f"{len(cells)} values")
    numbers = []
    for what, cell in zip(("id", "r", "g", "b"), cells):
        try:
            numbers.append(int(cell))
        except ValueError:
            raise bad(f"{what} {cell!r} is not a whole number") from None
    index, *rgb = numbers
    if index < 0:
        raise bad(f"id {index} is negative")
    if not all(0 <= value <= 255 for value in rgb):
        raise bad("r, g and b must be 0 to 255")
    return {index: tuple(rgb)}


# A colour-coded label whose colours are mostly found only on boundaries was smoothed (resized
# bilinearly, drawn anti-aliased): the blends of two classes' colours are not classes. Real label
# sets with hundreds of ids (panoptic, instances) give every colour an inside, so they pass.
ANTIALIASED_MIN_COLOURS = 64
ANTIALIASED_EDGE_SHARE = 0.5


def _packed(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 bytes -> HxW int32 0xRRGGBB, one number per colour."""
    return (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]


def _unpacked(packed) -> list[tuple[int, int, int]]:
    return [(int(c) >> 16, (int(c) >> 8) & 255, int(c) & 255) for c in packed]


def _refuse_antialiased(path: Path, packed: np.ndarray) -> None:
    colours = np.unique(packed)
    if len(colours) < ANTIALIASED_MIN_COLOURS:
        return
    edge = np.zeros(packed.shape, bool)  # pixels next to a pixel of another colour
    across, down = packed[:, 1:] != packed[:, :-1], packed[1:] != packed[:-1]
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    edge[1:] |= down
    edge[:-1] |= down
    edge_only = len(colours) - len(np.unique(packed[~edge]))
    if edge_only > ANTIALIASED_EDGE_SHARE * len(colours):
        raise InputError(path, f"RGB colour-coded label with {len(colours)} colours, {edge_only} of them only along "
                               "edges: almost certainly anti-aliased (smoothed when resized or drawn), and blended "
                               "colours are not classes. Save the labels with nearest-neighbour resizing, or give "
                               "--color-table id,r,g,b with the classes' colours")


def _check_in_table(path: Path, rgb: np.ndarray, packed: np.ndarray, table, table_path) -> None:
    """Name the keyframe and the first pixel (in reading order) whose colour the table lacks."""
    known = np.array(sorted(int(c) for c in _packed(np.asarray(table, dtype=np.uint8))), dtype=np.int32)
    unknown = ~np.isin(packed, known)
    if unknown.any():
        y, x = np.argwhere(unknown)[0]
        colours = len(np.unique(packed[unknown]))
        raise InputError(path, f"colour {tuple(rgb[y, x].tolist())} at x={x}, y={y} is not in the colour table "
                               f"{Path(table_path).name} ({int(unknown.sum())} pixels of {colours} such colours)")


def detect_format(paths: list[Path], *, kind: str | None = None, ignore_index: int | None = 255,
                  color_table: str | Path | None = None) -> LabelFormat:
    """Look at every keyframe label (one at a time) and settle on one format.

    `kind` overrides detection ("palette", "ids", "binary", "rgb"). `ignore_index`
    applies to multi-class ids; binary masks never have one (255 is the object).
    """
    if kind is not None and kind not in KINDS:
        raise InputError(kind, f"unknown label format; choose one of {', '.join(KINDS)}")
    kinds, values, colors, palette, sixteen_bit, modes = {}, set(), set(), None, False, set()
    table = read_color_table(color_table) if color_table and kind in (None, "rgb") else None
    for path in paths:
        image = _open(path)
        file_kind = _file_kind(image, path)
        if kind == "rgb" and image.mode in ("RGB", "RGBA"):
            file_kind = "rgb"   # grey colours are colours too when the user says so
        if kind is not None and file_kind != {"palette": "palette", "rgb": "rgb"}.get(kind, "gray"):
            what = "an RGB PNG of greys" if image.mode in ("RGB", "RGBA") else FILE_KINDS[file_kind]
            raise InputError(path, f"label is {what} ({image.mode!r} mode), but --label-format "
                                   f"{kind} reads {READS[kind]}; leave the option out to detect the format")
        kinds.setdefault(file_kind, path)
        modes.add(image.mode)
        raw = _raw(image, file_kind)
        if file_kind == "rgb":
            packed = _packed(raw)
            if table is not None:
                _check_in_table(path, raw, packed, table, color_table)
            else:
                _refuse_antialiased(path, packed)
            colors.update(_unpacked(np.unique(packed)))
        else:
            values.update(np.unique(raw).tolist())
            sixteen_bit |= raw.dtype != np.uint8
        if file_kind == "palette" and palette is None:
            palette = tuple(image.getpalette() or ())
    if len(kinds) > 1 and kind is None:
        (kind_a, path_a), (kind_b, path_b) = list(kinds.items())[:2]
        raise InputError(path_b, f"label is {kind_b} but {path_a.name} is {kind_a}; "
                         "all keyframes must share one format")
    found = next(iter(kinds))
    if kind is None:
        kind = {"palette": "palette", "rgb": "rgb"}.get(found)
        if kind is None:  # grayscale: a 0/255 mask is binary, anything else is ids
            kind = "binary" if values <= {0, 255} and 255 in values else "ids"
    if kind == "rgb":
        return LabelFormat("rgb", ignore_index=ignore_index, colors=table or tuple(sorted(colors)))
    stored_rgb = bool(modes) and modes <= {"RGB", "RGBA"} and not sixteen_bit  # keep the format that came in
    if kind == "binary":
        return LabelFormat("binary", stored_rgb=stored_rgb)
    if kind == "palette":
        return LabelFormat("palette", ignore_index=ignore_index, palette=palette)
    return LabelFormat("ids", ignore_index=ignore_index, sixteen_bit=sixteen_bit, stored_rgb=stored_rgb)


def read_label(path: Path, fmt: LabelFormat) -> np.ndarray:
    """HxW ids of one label file in format `fmt`."""
    image = _open(path)
    if fmt.kind == "rgb":
        rgb = np.asarray(image.convert("RGB"))
        packed = _packed(rgb)
        table = np.array([(r << 16) | (g << 8) | b for r, g, b in fmt.colors], dtype=np.int32)
        order = np.argsort(table)
        position = np.clip(np.searchsorted(table[order], packed), 0, len(table) - 1)
        ids = order[position]
        bad = table[ids] != packed
        if bad.any():
            y, x = np.argwhere(bad)[0]
            raise InputError(path, f"colour {tuple(rgb[y, x].tolist())} at x={x}, y={y} is not in the colour table")
        return ids.astype(np.int32)
    kind = "palette" if fmt.kind == "palette" else _file_kind(image, path)
    if kind == "rgb" or (fmt.kind == "palette") != (image.mode == "P"):
        raise InputError(path, f"label is {image.mode!r} mode, other keyframes are {fmt.describe()}")
    ids = _raw(image, kind).astype(np.int32)
    if fmt.kind == "binary" and not np.isin(ids, (0, 255)).all():
        raise InputError(path, "binary mask holds values other than 0 and 255")
    return ids


def davis_palette() -> list[int]:
    """The PASCAL VOC / DAVIS label palette as a flat list of 768 ints (CVAT colours labels by it too)."""
    palette = []
    for index in range(256):
        rgb = [0, 0, 0]
        bits = index
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((bits >> channel) & 1) << (7 - bit)
            bits >>= 3
        palette.extend(rgb)
    return palette


def encode_label(ids: np.ndarray, fmt: LabelFormat) -> Image.Image:
    if fmt.kind == "rgb":
        return Image.fromarray(np.asarray(fmt.colors, dtype=np.uint8)[ids], mode="RGB")
    if fmt.kind == "ids" and fmt.sixteen_bit:
        return Image.fromarray(ids.astype(np.uint16))
    if fmt.stored_rgb:
        return Image.fromarray(np.repeat(ids.astype(np.uint8)[..., None], 3, axis=2), mode="RGB")
    image = Image.fromarray(ids.astype(np.uint8), mode="L")
    if fmt.kind == "palette" and fmt.palette:
        image.putpalette(list(fmt.palette))  # makes it a "P" image with the user's colours
    return image


def save_png(image: Image.Image, path: Path) -> None:
    """Write atomically: a reader never sees half a PNG, a crash leaves no partial file."""
    temporary = path.with_name(f".{path.name}.partial")
    try:
        with writing(path):
            image.save(temporary, format="PNG", compress_level=1)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def write_label(path: Path, ids: np.ndarray, fmt: LabelFormat) -> None:
    save_png(encode_label(ids, fmt), path)


def write_confidence(path: Path, confidence: np.ndarray) -> None:
    """8-bit grey, 255 x the probability that the written label is right."""
    save_png(Image.fromarray(np.rint(confidence * 255).astype(np.uint8), mode="L"), path)
