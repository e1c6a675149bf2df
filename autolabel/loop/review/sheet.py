"""The contact sheet: the frames to look at first, each as frame | labels | confidence, with a legend."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .draw import BOX, LOW_CONFIDENCE, hatch, heat
from .fonts import font, printable

CELL = 360       # px width of one picture
GAP = 8
TEXT = 16        # font size of captions


def _legend_items(colors, names: dict[int, str] | None, used: set[int]) -> list[tuple[tuple, str]]:
    items = []
    for i, color, painted in zip(colors.ids, colors.colors, colors.painted):
        if painted and int(i) in used:
            name = (names or {}).get(int(i))
            items.append((tuple(int(c) for c in color), printable(f"{int(i)} {name}" if name else f"id {int(i)}")))
    return items


def _legend(width: int, colors, names, used: set[int], error_items: list[tuple[tuple, str]]) -> Image.Image:
    """Class swatches with names (the colours of the labels column), then what hatching, the box, the
    heat colours and (with ground truth) the error colours mean."""
    items = _legend_items(colors, names, used)
    swatch, pad = TEXT, 10
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    item_w = max([probe.textlength(text, font=font(TEXT)) for _, text in items] + [60]) + swatch + 3 * pad
    per_row = max(1, int((width - pad) // item_w))
    rows = -(-len(items) // per_row)
    bar_h = 4 * TEXT + 24 + (TEXT + 10 if error_items else 0)
    legend = Image.new("RGB", (width, (rows + 1) * (swatch + pad) + bar_h + 2 * pad), "white")
    draw = ImageDraw.Draw(legend)
    draw.text((pad, pad), "classes:", fill="black", font=font(TEXT))
    for k, (color, text) in enumerate(items):
        x, y = pad + (k % per_row) * item_w, pad + (k // per_row + 1) * (swatch + pad)
        draw.rectangle((x, y, x + swatch, y + swatch), fill=color, outline="black")
        draw.text((x + swatch + pad // 2, y), text, fill="black", font=font(TEXT))
    y = pad + (rows + 1) * (swatch + pad) + pad
    # confidence colour bar, as the heat column draws it
    bar_w = min(400, width // 3)
    ramp = heat(np.tile(np.linspace(0, 1, bar_w, dtype=np.float32), (TEXT, 1)))
    draw.text((pad, y), "confidence:", fill="black", font=font(TEXT))
    x = pad + int(draw.textlength("confidence: ", font=font(TEXT)))
    legend.paste(Image.fromarray(ramp), (x, y))
    draw.text((x, y + TEXT + 2), "0", fill="black", font=font(TEXT - 2))
    draw.text((x + bar_w // 2 - 10, y + TEXT + 2), "0.5", fill="black", font=font(TEXT - 2))
    draw.text((x + bar_w - 8, y + TEXT + 2), "1", fill="black", font=font(TEXT - 2))
    y += bar_h // 2 + pad
    legend.paste(Image.fromarray(hatch(np.full((swatch, swatch, 3), 128, np.uint8), np.ones((swatch, swatch), bool))),
                 (pad, y))
    text = f"hatched: confidence below {LOW_CONFIDENCE}"
    draw.text((pad + swatch + pad // 2, y), text, fill="black", font=font(TEXT))
    x = 2 * pad + swatch + int(draw.textlength(text, font=font(TEXT))) + 3 * pad
    draw.rectangle((x, y, x + swatch, y + swatch), outline=BOX, width=3)
    draw.text((x + swatch + pad // 2, y), "box: where it is most doubtful (with ground truth: most wrong)",
              fill="black", font=font(TEXT))
    if error_items:
        y += swatch + pad
        draw.text((pad, y), "errors:", fill="black", font=font(TEXT))
        x = pad + int(draw.textlength("errors: ", font=font(TEXT)))
        for color, text in error_items:
            draw.rectangle((x, y, x + swatch, y + swatch), fill=color, outline="black")
            draw.text((x + swatch + pad // 2, y), text, fill="black", font=font(TEXT))
            x += swatch + pad + int(draw.textlength(text, font=font(TEXT))) + 3 * pad
    return legend


def _wrap(text: str, face, width: int) -> list[str]:
    """`text` in lines no wider than `width` px, broken at spaces (a single word wider stays whole)."""
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines = [""]
    for word in text.split(" "):
        joined = f"{lines[-1]} {word}" if lines[-1] else word
        if lines[-1] and probe.textlength(joined, font=face) > width:
            lines.append(word)
        else:
            lines[-1] = joined
    return lines


def contact_sheet(title: str, sections: list[tuple[str, list[tuple[str, list[np.ndarray]]]]],
                  headers: list[str], colors, names, used: set[int],
                  error_items: list[tuple[tuple, str]] = ()) -> Image.Image:
    """`sections`: (heading, rows), each row (caption, pictures already at CELL px wide); `error_items`:
    (colour, meaning) of the errors column's colours."""
    columns = max(len(images) for _, rows in sections for _, images in rows)
    width = GAP + columns * (CELL + GAP)
    parts: list[Image.Image] = []

    def text_strip(text: str, size: int, height: int, color="black") -> Image.Image:
        # A line wider than the sheet (a heading of a sheet without the errors column) wraps onto more
        # lines instead of being cut off; a line that fits is drawn as before.
        lines = _wrap(printable(text), font(size), width - 2 * GAP)
        strip = Image.new("RGB", (width, height + (len(lines) - 1) * (size + 4)), "white")
        for k, line in enumerate(lines):
            ImageDraw.Draw(strip).text((GAP, (height - size) // 2 + k * (size + 4)), line, fill=color, font=font(size))
        return strip

    parts.append(text_strip(title, TEXT + 4, TEXT + 16))
    header = Image.new("RGB", (width, TEXT + 8), "white")
    for c, text in enumerate(headers):
        ImageDraw.Draw(header).text((GAP + c * (CELL + GAP), 4), text, fill=(90, 90, 90), font=font(TEXT))
    for heading, rows in sections:
        parts.append(text_strip(heading, TEXT + 2, TEXT + 14, color=(160, 0, 0)))
        parts.append(header)
        for caption, images in rows:
            parts.append(text_strip(caption, TEXT, TEXT + 8))
            cell_h = max(image.shape[0] for image in images)
            row = Image.new("RGB", (width, cell_h + GAP), "white")
            for c, image in enumerate(images):
                row.paste(Image.fromarray(image), (GAP + c * (CELL + GAP), 0))
            parts.append(row)
    parts.append(_legend(width, colors, names, used, list(error_items)))
    sheet = Image.new("RGB", (width, sum(p.height for p in parts)), "white")
    y = 0
    for part in parts:
        sheet.paste(part, (0, y))
        y += part.height
    return sheet
