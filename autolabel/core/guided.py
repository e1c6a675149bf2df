"""Edge-aware smoothing of label probabilities, guided by the frame (He et al., guided filter).

Each class's probability becomes, locally, an affine function of the frame's
colour, so a label boundary that the warp left a few pixels off snaps to the
nearest colour edge. The coefficients are fitted on a frame `subsample` times
smaller and applied at full resolution ("fast guided filter", He & Sun 2015),
and only where the label can change: at the pixels the caller asks for.
"""
from __future__ import annotations

import cv2
import numpy as np

from .warp import by_channels


def _box(image: np.ndarray, radius: int) -> np.ndarray:
    side = 2 * radius + 1
    return by_channels(lambda part: cv2.boxFilter(part, -1, (side, side), borderType=cv2.BORDER_REFLECT), image)


def sample(small: np.ndarray, rows: np.ndarray, cols: np.ndarray, full: tuple[int, int]) -> np.ndarray:
    """NxC values of an hxwxC image resized to `full` (width, height), bilinearly, at the full-size
    pixels (rows, cols) alone: what cv2.resize would give there."""
    height, width = small.shape[:2]
    map_x = ((cols + 0.5) * (width / full[0]) - 0.5).astype(np.float32)
    map_y = ((rows + 0.5) * (height / full[1]) - 0.5).astype(np.float32)
    # remap wants images under 32767 rows: lay the points out as rows of 4096
    padded = -len(map_x) % 4096
    map_x, map_y = (np.pad(m, (0, padded)).reshape(-1, 4096) for m in (map_x, map_y))
    values = by_channels(lambda part: cv2.remap(part, map_x, map_y, cv2.INTER_LINEAR,
                                                borderMode=cv2.BORDER_REPLICATE), small)
    return values.reshape(-1, small.shape[2])[:len(rows)]


class GuidedFilter:
    """A colour guided filter fitted to one frame (at a small size), applied to probability maps."""

    def __init__(self, frame: np.ndarray, radius: int, eps: float, subsample: int = 2):
        height, width = frame.shape[:2]
        self.full = (width, height)
        self.small = (max(1, width // subsample), max(1, height // subsample))
        self.radius = max(1, radius // subsample)
        self.guide = frame.astype(np.float32) * np.float32(1 / 255)
        guide = cv2.resize(self.guide, self.small, interpolation=cv2.INTER_AREA)
        self.guide_small = guide
        self.mean = _box(guide, self.radius)
        r, g, b = (guide[..., i] for i in range(3))
        mr, mg, mb = (self.mean[..., i] for i in range(3))
        var = lambda x, y, mx, my: _box(x * y, self.radius) - mx * my  # noqa: E731
        rr, rg, rb = var(r, r, mr, mr) + eps, var(r, g, mr, mg), var(r, b, mr, mb)
        gg, gb, bb = var(g, g, mg, mg) + eps, var(g, b, mg, mb), var(b, b, mb, mb) + eps
        # Inverse of the symmetric 3x3 covariance, by cofactors, per pixel.
        inv = np.stack([gg * bb - gb * gb, gb * rb - rg * bb, rg * gb - gg * rb,
                        rr * bb - rb * rb, rb * rg - rr * gb, rr * gg - rg * rg], axis=-1)
        det = rr * inv[..., 0] + rg * inv[..., 1] + rb * inv[..., 2]
        inv /= det[..., None]
        i = inv
        self.inverse = np.stack([i[..., 0], i[..., 1], i[..., 2], i[..., 1], i[..., 3], i[..., 4],
                                 i[..., 2], i[..., 4], i[..., 5]], axis=-1).reshape(*det.shape, 3, 3)

    def coefficient_maps(self, probs_small: np.ndarray) -> np.ndarray:
        """hxwx(C-1)x4 box-averaged coefficients (a_r, a_g, a_b, b) of all channels but the last: the
        filter is linear and keeps constants, so the filtered channels still sum to 1 and the last
        is 1 minus the others. (Per colour component, on whole hxwx(C-1) arrays: numpy is slow at
        3-long axes.)"""
        h, w = probs_small.shape[:2]
        probs = np.ascontiguousarray(probs_small[..., :-1])
        n = probs.shape[2]
        mean_p = _box(probs, self.radius).reshape(h, w, n)
        cov = [_box(probs * self.guide_small[..., k:k + 1], self.radius).reshape(h, w, n)
               - self.mean[..., k:k + 1] * mean_p for k in range(3)]
        coefficients = np.empty((h, w, n, 4), np.float32)
        b = mean_p
        for i in range(3):
            a = self.inverse[..., i, 0:1] * cov[0]
            a += self.inverse[..., i, 1:2] * cov[1]
            a += self.inverse[..., i, 2:3] * cov[2]
            coefficients[..., i] = a
            b = b - a * self.mean[..., i:i + 1]
        coefficients[..., 3] = b
        return _box(coefficients.reshape(h, w, n * 4), self.radius).reshape(h, w, n, 4)

    def filter_small(self, coefficient_maps: np.ndarray) -> np.ndarray:
        """The filter's output at its small size: hxwxC."""
        first = coefficient_maps[..., 3].copy()
        for i in range(3):
            first += coefficient_maps[..., i] * self.guide_small[..., i:i + 1]
        return np.concatenate([first, 1 - first.sum(axis=2, keepdims=True)], axis=2)

    def at(self, coefficient_maps: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The filter's output at full-size pixels (N rows, N cols): NxC, the coefficients
        interpolated there as for a full-size output and applied to the full-size frame."""
        h, w, n, _ = coefficient_maps.shape
        coeff = sample(coefficient_maps.reshape(h, w, n * 4), rows, cols, self.full).reshape(-1, n, 4)
        guide = self.guide[rows, cols]
        first = coeff[..., 3].copy()
        for i in range(3):
            first += coeff[..., i] * guide[:, i:i + 1]
        return np.concatenate([first, 1 - first.sum(axis=1, keepdims=True)], axis=1)
