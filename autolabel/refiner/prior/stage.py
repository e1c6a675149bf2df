"""The learned refine stage: today's (classic) refiner, then a network that learned this clip.

At the start of a clip the network (the shipped trunk, or a dataset's from `autolabel train`)
is fine-tuned on the clip's keyframes for a budget of steps: it learns what each of this
clip's classes looks like. Each frame is first refined by the classic refiner (colour cue,
guided filter); then the network's class probabilities are fused in:

    p(c) ∝ p_classic(c) · p_net(c)^w,   w = alpha · u,   u = distance / spacing (capped at 1)

where p_classic puts the classic label's calibrated probability on its label and spreads the
rest, `distance` is the frame's distance to its nearest keyframe and `spacing` the distance
between its two keyframes: the warp's errors grow away from the keyframes, so the network's
say does too. With alpha = 0 this is exactly the classic output (the residual form). alpha
and the calibration of the classic confidence are fitted on training clips by propagating
their keyframes to labeled frames the keyframes skip (refiner/fusion.py); both are stored
per label-set size, as objects and street scenes ask for different trust.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from ...core.refine import Refiner
from ...errors import InputError
from .fit import THREADS, Fitter, Schedule, predict
from .model import work_size
from .samples import LabeledFrames
from .weights import Weights

MAX_KEYFRAMES = 64     # keyframes kept to learn from (evenly spaced), so memory stays bounded
# Fixed, because the thread count changes float sums and so the outputs. Learning runs before the
# flow starts (fit.THREADS); frames are refined while the flow's two threads run, and torch's
# OpenMP threads spinning beside them were 20x slower than one thread (measured on 2 cores).
REFINE_THREADS = 1
ONE_SIDED_UNIT = 30    # frames: u for the ends of a clip, which have one keyframe


class PriorRefiner:
    """Same interface as core.refine.Refiner: `start_clip`, `learn`, `refine`."""

    def __init__(self, weights: Weights, classic: Refiner, device: torch.device, adapt: bool = True,
                 steps: int | None = None, seed: int = 0):
        self.weights, self.classic, self.device, self.seed = weights, classic, device, seed
        self.adapt = adapt
        self.steps = steps if steps is not None else int(weights.adapt_steps["cuda" if device.type == "cuda" else "cpu"])
        self.path = weights.path
        self.name = f"prior:{weights.path.name if weights.path else 'weights'}+{classic.name}"
        self.net = None
        self.alpha = 0.0
        self.calibration: dict = {}

    # -- the clip ------------------------------------------------------------------------------

    def start_clip(self, keyframes, n_channels: int, channel_ids=None) -> None:
        """`keyframes`: (frame, channel indices) of every keyframe; `channel_ids`: the label id of each
        channel (to start the head from a dataset refiner's classes)."""
        known = set(self.weights.class_ids or ())
        if known and channel_ids is not None and not known & {int(i) for i in channel_ids}:
            raise InputError(self.path or "refiner weights", f"were trained on the ids {sorted(known)}; this clip's "
                             f"labels use {sorted(int(i) for i in channel_ids)}, none of them (another label set?)")
        torch.set_num_threads(THREADS)
        torch.manual_seed(self.seed)
        kept = LabeledFrames()
        stride = [1]

        def feed():
            for i, (frame, channels) in enumerate(keyframes):
                if i % stride[0] == 0:
                    kept.add(frame, channels, work_size(frame.shape[1], frame.shape[0], self.weights.work_pixels))
                    if len(kept) == 2 * MAX_KEYFRAMES:   # keep every other one: still evenly spaced
                        kept.frames, kept.labels, stride[0] = kept.frames[::2], kept.labels[::2], stride[0] * 2
                yield frame, channels

        self.classic.start_clip(feed(), n_channels)
        self.alpha = self.weights.alpha(n_channels)
        self.calibration = self.weights.calibration(n_channels)
        self.net = None
        if self.alpha <= 0:   # the fit gave the network no say for label sets of this size: skip the work
            return
        net = self.weights.network(n_channels)
        from_dataset = self._head_from_dataset(net, channel_ids)
        if self.adapt and self.steps > 0:
            # crops no larger than the frames: a small clip's steps cost what its pixels do
            crop = min(128, *(min(frame.shape[:2]) for frame in kept.frames))
            Fitter(net, kept, n_channels, Schedule(self.steps, batch=4, crop=crop, seed=self.seed), self.device).run()
        elif not from_dataset:   # a head that never saw a label says nothing
            self.alpha = 0.0
            return
        self.net = net.to(self.device).eval()
        torch.set_num_threads(REFINE_THREADS)

    def _head_from_dataset(self, net, channel_ids) -> bool:
        """Rows of the new head for ids the dataset refiner knows start as its rows. True if any did."""
        if self.weights.head is None or channel_ids is None or not self.weights.class_ids:
            return False
        known = {int(i): row for row, i in enumerate(self.weights.class_ids)}
        rows = [(channel, known[int(i)]) for channel, i in enumerate(channel_ids) if int(i) in known]
        with torch.no_grad():
            for channel, row in rows:
                net.head.weight[channel] = self.weights.head["weight"][row]
                net.head.bias[channel] = self.weights.head["bias"][row]
        return bool(rows)

    def learn(self, frame, probs, reliability, target, distance: int, present=None) -> None:
        self.classic.learn(frame, probs, reliability, target, distance, present)

    # -- a frame -------------------------------------------------------------------------------

    def network_log_probs(self, frame: np.ndarray, present=None) -> np.ndarray:
        """log p_net over the channels `present` (C x h x w at the working size)."""
        size = work_size(frame.shape[1], frame.shape[0], self.weights.work_pixels)
        log_probs = predict(self.net, cv2.resize(frame, size, interpolation=cv2.INTER_AREA), self.device)
        if present is not None:
            log_probs = log_probs[present]
            log_probs -= np.logaddexp.reduce(log_probs, axis=0, keepdims=True)
        return log_probs

    def refine(self, frame, probs, reliability, distance: int, present=None, one_sided: bool = False,
               spacing: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        channels, confidence = self.classic.refine(frame, probs, reliability, distance, present, one_sided)
        if self.net is None or self.alpha <= 0 or probs.shape[2] < 2:
            return channels, confidence
        u = distance_share(distance, spacing)
        calibrated = calibrate(confidence, u, self.calibration)
        return combine(channels, calibrated, self.network_log_probs(frame, present), self.alpha * u)


def distance_share(distance: int, spacing: int | None) -> float:
    """u: how far a frame is from its nearest keyframe, as a share of its keyframes' spacing (capped at 1)."""
    return min(distance / (spacing or ONE_SIDED_UNIT), 1.0)


def calibrate(confidence: np.ndarray, u: float, table: dict) -> np.ndarray:
    """The classic confidence mapped to how often such pixels were right on training clips, at this
    u (distance / spacing): a table of `edges` (confidence bins) x `u_edges` rows of `accuracy`."""
    if not table:
        return confidence
    edges, u_edges, accuracy = (np.asarray(table[k], np.float32) for k in ("edges", "u_edges", "accuracy"))
    row = accuracy[min(int(np.searchsorted(u_edges, u, side="right")) - 1, len(accuracy) - 1)]
    centres = (edges[:-1] + edges[1:]) / 2
    return np.interp(confidence, centres, row).astype(np.float32)


def combine(channels: np.ndarray, confidence: np.ndarray, log_net: np.ndarray, weight: float):
    """(channel, confidence) of p(c) ∝ p_classic(c) · p_net(c)^weight at full size.

    p_classic is `confidence` on `channels` and the rest shared evenly. The network's maps are
    at the working size and read at each pixel's nearest working pixel, so the cost is a few
    passes over the frame whatever the number of classes: the winner is either the classic label
    or the network's best other class."""
    n, h, w = log_net.shape
    height, width = channels.shape
    rows = (np.arange(height) * h // height)[:, None]
    cols = (np.arange(width) * w // width)[None, :]
    pixel = rows * w + cols                                   # each full-size pixel's working pixel
    scaled = (weight * log_net).reshape(n, -1)
    order = np.argsort(-scaled, axis=0, kind="stable")[:2]    # the network's best two classes
    first, second = order[0][pixel], order[1][pixel]
    best_other = np.where(first == channels, second, first)
    flat = scaled.T.ravel()
    at_label = flat[pixel * n + channels]
    at_other = flat[pixel * n + best_other]
    p = np.clip(confidence, 1e-4, 1 - 1e-4).astype(np.float32)
    log_label, log_rest = np.log(p), np.log((1 - p) / (n - 1))
    score_label, score_other = at_label + log_label, at_other + log_rest
    # sum over all classes of p_classic * p_net^weight: the label's term, and the others' through the
    # sum of p_net^weight over every class at the working pixel
    total_net = np.exp(scaled).sum(axis=0)[pixel]
    total = np.exp(score_label) + np.exp(log_rest) * np.maximum(total_net - np.exp(at_label), 0)
    switch = score_other > score_label
    fused = np.where(switch, best_other, channels).astype(channels.dtype)
    top = np.exp(np.where(switch, score_other, score_label)) / np.maximum(total, 1e-30)
    return fused, np.minimum(top, 1).astype(np.float32)
