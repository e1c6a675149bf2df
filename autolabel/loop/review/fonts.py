"""Text in review's pictures: a system font that has accents (DejaVu Sans, found with fc-match or
in the usual folders; nothing is downloaded), else Pillow's own. Characters the font cannot draw
(a CJK title with DejaVu) become '?' instead of empty boxes, and `missing()` says which, so
review can tell the user."""
from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FAMILIES = ("DejaVu Sans", "Noto Sans", "Liberation Sans")
COMMON_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/TTF/DejaVuSans.ttf", "/Library/Fonts/Arial Unicode.ttf",
                "/System/Library/Fonts/Supplemental/Arial Unicode.ttf", "C:/Windows/Fonts/arial.ttf")
NOT_A_CHARACTER = "\U0010fffd"  # a private-use code point: no font draws it, so it shows the "missing" glyph
_missing: set[str] = set()


@lru_cache(maxsize=1)
def font_file() -> str | None:
    """The first of FAMILIES fc-match finds (exactly that family, not its substitute), else a usual path."""
    if shutil.which("fc-match"):
        for family in FAMILIES:
            try:
                found = subprocess.run(["fc-match", "-f", "%{family}\n%{file}", family], capture_output=True,
                                       text=True, timeout=10).stdout.split("\n")
            except (OSError, subprocess.SubprocessError):
                break
            if len(found) == 2 and family in found[0].split(",") and Path(found[1]).is_file():
                return found[1]
    return next((path for path in COMMON_FILES if Path(path).is_file()), None)


@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = font_file()
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


def _ink(character: str) -> bytes:
    image = Image.new("L", (48, 48))
    ImageDraw.Draw(image).text((4, 4), character, fill=255, font=font(32))
    return np.asarray(image).tobytes()


@lru_cache(maxsize=4096)
def drawable(character: str) -> bool:
    if character.isspace() or character.isascii():
        return True
    return _ink(character) != _ink(NOT_A_CHARACTER)


def printable(text: str) -> str:
    """`text` with the characters the font lacks replaced by '?' (and remembered for `missing`)."""
    out = []
    for character in text:
        if drawable(character):
            out.append(character)
        else:
            _missing.add(character)
            out.append("?")
    return "".join(out)


def missing() -> list[str]:
    """The characters `printable` replaced so far, then forgets them."""
    found = sorted(_missing)
    _missing.clear()
    return found
