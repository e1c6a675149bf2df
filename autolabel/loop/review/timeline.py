"""The timeline: the expected score (and the true score) per frame, keyframes marked; the dips say
where to look.

Each series gets its own panel and its own vertical range: a score that lives between 0.9 and 1
would lose every dip on a 0-1 axis.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .fonts import font, printable

SERIES_COLORS = ((31, 119, 180), (230, 120, 0))
KEYFRAME_COLOR = (0, 150, 70)
WORST_COLOR = (200, 0, 0)
PANEL_H = 170
LEFT, RIGHT, TOP, GAP, BOTTOM = 60, 20, 40, 40, 48


def _range(values: np.ndarray) -> tuple[float, float]:
    """[low, high] in steps of 0.05 around the finite values with a step to spare below (room for
    the circled frames' numbers), never narrower than 0.1."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    high = min(1.0, np.ceil(finite.max() * 20) / 20)
    low = max(0.0, min(np.floor(finite.min() * 20) / 20 - 0.05, high - 0.1))
    return float(low), float(high)


def timeline(title: str, keyframes: list[int], series: list[tuple[str, np.ndarray, list[int]]]) -> Image.Image:
    """`series`: (name, one value per frame in [0, 1] or NaN, frames to circle) per panel."""
    n = len(series[0][1])
    plot_w = int(np.clip(n * 8, 800, 2400))
    height = TOP + len(series) * (PANEL_H + GAP + 18) + BOTTOM - GAP
    image = Image.new("RGB", (LEFT + plot_w + RIGHT, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((LEFT, 8), printable(title), fill="black", font=font(16))

    def x_of(t):
        return LEFT + (t + 0.5) * plot_w / n

    step = 1 if n <= 20 else max(5, int(np.ceil(n / (plot_w / 60) / 5)) * 5)
    for p, (name, values, circled) in enumerate(series):
        top = TOP + p * (PANEL_H + GAP) + 18
        color = SERIES_COLORS[p % len(SERIES_COLORS)]
        low, high = _range(values)

        def y_of(v):
            return top + (high - v) / (high - low) * PANEL_H

        draw.text((LEFT, top - 18), f"{name}  (circled: the frames on the contact sheet; green: keyframes)",
                  fill=color, font=font(13))
        grid = 0.05 if high - low <= 0.3 else 0.1 if high - low <= 0.6 else 0.25
        for v in np.arange(low, high + 1e-9, grid):
            draw.line((LEFT, y_of(v), LEFT + plot_w, y_of(v)), fill=(225, 225, 225))
            draw.text((LEFT - 40, y_of(v) - 7), f"{v:.2f}", fill="black", font=font(12))
        for k in keyframes:
            draw.line((x_of(k), top, x_of(k), top + PANEL_H), fill=KEYFRAME_COLOR, width=2)
        points = [(x_of(t), y_of(v)) for t, v in enumerate(values) if np.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        for px, py in points if n <= 200 else []:
            draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=color)
        for t in circled:
            px, py = x_of(t), y_of(values[t])
            draw.ellipse((px - 6, py - 6, px + 6, py + 6), outline=WORST_COLOR, width=2)
            draw.text((px - 6, py + 8 if py + 22 < top + PANEL_H else py - 22), str(t), fill=WORST_COLOR,
                      font=font(12))
        draw.rectangle((LEFT, top, LEFT + plot_w, top + PANEL_H), outline="black")
        for t in range(0, n, step):
            draw.line((x_of(t), top + PANEL_H, x_of(t), top + PANEL_H + 4), fill="black")
            draw.text((x_of(t) - 8, top + PANEL_H + 5), str(t), fill="black", font=font(12))
    draw.text((LEFT + plot_w // 2 - 20, height - 18), "frame", fill="black", font=font(13))
    return image
