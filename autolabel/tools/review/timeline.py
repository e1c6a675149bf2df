"""The timeline: mean confidence (and score) per frame, keyframes marked; the dips say where to look."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .draw import font

CONFIDENCE_COLOR = (31, 119, 180)
SCORE_COLOR = (230, 120, 0)
KEYFRAME_COLOR = (0, 150, 70)
WORST_COLOR = (200, 0, 0)


def timeline(title: str, confidence: np.ndarray, keyframes: list[int], worst: list[int],
             score: np.ndarray | None = None, score_name: str = "score") -> Image.Image:
    """confidence and score (NaN where there is none) in [0, 1], one per frame."""
    n = len(confidence)
    left, right, top, bottom = 56, 20, 56, 44
    plot_w = int(np.clip(n * 8, 800, 2400))
    plot_h = 240
    image = Image.new("RGB", (left + plot_w + right, top + plot_h + bottom), "white")
    draw = ImageDraw.Draw(image)

    def x_of(t):
        return left + (t + 0.5) * plot_w / n

    def y_of(v):
        return top + (1 - v) * plot_h

    draw.text((left, 8), title, fill="black", font=font(16))
    legend = [("mean confidence", CONFIDENCE_COLOR)] + ([(score_name, SCORE_COLOR)] if score is not None else []) \
        + [("keyframe", KEYFRAME_COLOR), ("on the contact sheet", WORST_COLOR)]
    x = left
    for text, color in legend:
        draw.rectangle((x, 32, x + 14, 44), fill=color)
        draw.text((x + 18, 30), text, fill="black", font=font(13))
        x += 40 + draw.textlength(text, font=font(13))
    for v in (0, 0.25, 0.5, 0.75, 1):
        draw.line((left, y_of(v), left + plot_w, y_of(v)), fill=(225, 225, 225))
        draw.text((left - 34, y_of(v) - 7), f"{v:.2f}", fill="black", font=font(12))
    step = max(1, int(np.ceil(n / (plot_w / 60) / 5)) * 5) if n > 20 else 1
    for t in range(0, n, step):
        draw.line((x_of(t), top + plot_h, x_of(t), top + plot_h + 4), fill="black")
        draw.text((x_of(t) - 8, top + plot_h + 6), str(t), fill="black", font=font(12))
    draw.text((left + plot_w // 2 - 20, top + plot_h + 24), "frame", fill="black", font=font(13))
    for k in keyframes:
        draw.line((x_of(k), top, x_of(k), top + plot_h), fill=KEYFRAME_COLOR, width=2)
    for values, color in ((confidence, CONFIDENCE_COLOR), (score, SCORE_COLOR)):
        if values is None:
            continue
        points = [(x_of(t), y_of(v)) for t, v in enumerate(values) if np.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        for px, py in points if n <= 200 else []:
            draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=color)
    for t in worst:
        v = confidence[t] if score is None or not np.isfinite(score[t]) else min(confidence[t], score[t])
        draw.ellipse((x_of(t) - 5, y_of(v) - 5, x_of(t) + 5, y_of(v) + 5), outline=WORST_COLOR, width=2)
        draw.text((x_of(t) - 6, y_of(v) + 7), str(t), fill=WORST_COLOR, font=font(12))
    draw.rectangle((left, top, left + plot_w, top + plot_h), outline="black")
    return image
