"""What each class looks like in this clip: the semantic cue of Warp-Refine.

Where the flow loses track (drift, disocclusion, fast thin parts), the warped
label is wrong and only the frame itself can say what is there. The keyframes
say what each class looks like in this very clip: a histogram of colour x image
band per class (sky is up, road is down), so P(class | colour, band) is a table
lookup per pixel. It is built from counts, so one keyframe can be taken back out
(to score the cue on that keyframe without having seen it) by subtraction.
"""
from __future__ import annotations

import numpy as np

LEVELS = 16      # per colour channel: 4 bits
BANDS = 4        # horizontal bands of the image
SMOOTHING = 1.0  # pseudo-counts of the class prior per bin: unseen colours say nothing


def bins(frame: np.ndarray) -> np.ndarray:
    """HxW int32 bin of each pixel of an RGB uint8 frame."""
    colour = (frame >> 4).astype(np.int32)
    band = (np.arange(frame.shape[0], dtype=np.int32) * BANDS // frame.shape[0])[:, None]
    return ((colour[..., 0] * LEVELS + colour[..., 1]) * LEVELS + colour[..., 2]) * BANDS + band


def counts(frame: np.ndarray, channels: np.ndarray, n_channels: int) -> np.ndarray:
    """Pixel counts [bin, channel] of one labeled frame."""
    n_bins = LEVELS ** 3 * BANDS
    joint = bins(frame).ravel().astype(np.int64) * n_channels + channels.ravel()
    return np.bincount(joint, minlength=n_bins * n_channels).reshape(n_bins, n_channels)


def posterior_table(class_counts: np.ndarray) -> np.ndarray:
    """[bin, channel] float32 P(channel | bin) from counts, smoothed towards the class prior."""
    total = class_counts.sum(axis=0).astype(np.float64)
    prior = (total + 1) / (total.sum() + len(total))
    table = class_counts + SMOOTHING * prior
    return (table / table.sum(axis=1, keepdims=True)).astype(np.float32)


class Appearance:
    """P(channel | colour, band) for a clip, from its keyframes."""

    def __init__(self, n_channels: int):
        self.n_channels = n_channels
        self.counts = np.zeros((LEVELS ** 3 * BANDS, n_channels), np.int64)
        self.table = posterior_table(self.counts)

    def add(self, frame: np.ndarray, channels: np.ndarray) -> None:
        self.counts += counts(frame, channels, self.n_channels)
        self.table = posterior_table(self.counts)

    def without(self, frame: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """The table as if this labeled frame had not been added (it must have been)."""
        return posterior_table(self.counts - counts(frame, channels, self.n_channels))

    def __call__(self, frame: np.ndarray, table: np.ndarray | None = None) -> np.ndarray:
        """HxWxC float32 P(channel | pixel)."""
        return (self.table if table is None else table)[bins(frame)]
