"""Textures and shapes of the synthetic scenes: coloured fractal noise and filled outlines."""
from __future__ import annotations

import math

import cv2
import numpy as np


# ---------------------------------------------------------------- textures


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], feature_px: float
) -> np.ndarray:
    """Zero-mean, unit-std noise whose blobs are about `feature_px` wide."""
    coarse_shape = (
        max(2, math.ceil(shape[0] / feature_px) + 2),
        max(2, math.ceil(shape[1] / feature_px) + 2),
    )
    coarse = rng.standard_normal(coarse_shape, dtype=np.float32)
    field = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def _fractal_noise(
    rng: np.random.Generator, shape: tuple[int, int], feature_px: float
) -> np.ndarray:
    """A few octaves of smooth noise plus fine grain, so DIS has detail at every scale."""
    field = np.zeros(shape, np.float32)
    for octave in range(4):
        field += 0.6**octave * _smooth_noise(rng, shape, max(2.0, feature_px / 2**octave))
    grain = cv2.GaussianBlur(rng.standard_normal(shape, dtype=np.float32), (0, 0), 0.8)
    field += 0.8 * grain
    return (field - field.mean()) / (field.std() + 1e-6)


def _distinct_colours(rng: np.random.Generator, count: int) -> np.ndarray:
    """Base RGB colours with evenly spread hues (shuffled) so layers differ in colour."""
    hues = (rng.uniform(0, 180) + np.arange(count) * 180 / count) % 180
    hsv = np.stack(
        [
            rng.permutation(hues),
            rng.uniform(110, 230, count),  # saturation
            rng.uniform(110, 220, count),  # value
        ],
        axis=1,
    )
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0].astype(np.float32)


def _texture(
    rng: np.random.Generator, shape: tuple[int, int], colour: np.ndarray, feature_px: float
) -> np.ndarray:
    """Colour texture: base colour modulated by fractal luminance and smooth chroma drift."""
    luminance = _fractal_noise(rng, shape, feature_px)
    chroma = np.stack([_smooth_noise(rng, shape, 2 * feature_px) for _ in range(3)], axis=-1)
    rgb = colour * (1.0 + 0.35 * luminance[..., None]) + 18.0 * chroma
    return np.clip(rgb, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ shapes


def _shape_mask(rng: np.random.Generator, side: int, radius: float) -> np.ndarray:
    """A filled ellipse, convex polygon or star-shaped (concave) polygon, centred in the square."""
    mask = np.zeros((side, side), np.uint8)
    centre = (side - 1) / 2
    kind = rng.integers(3)
    if kind == 0:
        axes = radius * rng.uniform(0.55, 1.0, 2)
        angle = rng.uniform(0, 180)
        cv2.ellipse(mask, ((centre, centre), tuple(2 * axes), angle), 1, thickness=-1)
        return mask
    n_vertices = int(rng.integers(5, 11))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n_vertices))
    if kind == 1:
        radii = radius * rng.uniform(0.8, 1.0, n_vertices)
    else:
        radii = radius * rng.uniform(0.35, 1.0, n_vertices)
    points = centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    if kind == 1:
        points = cv2.convexHull(points.astype(np.float32))[:, 0]
    subpixel_bits = 4
    fixed_point = np.round(points * 2**subpixel_bits).astype(np.int32)
    cv2.fillPoly(mask, [fixed_point], 1, shift=subpixel_bits)
    return mask
