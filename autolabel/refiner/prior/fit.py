"""The training loop shared by per-clip learning and `autolabel train`: augmented crops of labeled
frames, class-weighted cross-entropy, Adam with a cosine schedule.

Every random source is seeded (the crops' generator, torch's initialisation), so the same
frames, steps, seed, thread count and device give the same weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .model import RefinerNet, network_input
from .samples import IGNORE, LabeledFrames

THREADS = 2   # torch threads while training: fixed, because the count changes float sums and so the weights


@dataclass(frozen=True)
class Schedule:
    steps: int
    lr: float = 2e-3
    batch: int = 8
    crop: int = 160
    seed: int = 0


class Fitter:
    """One training run, resumable: `state()` is everything needed to continue it exactly."""

    def __init__(self, model: RefinerNet, frames: LabeledFrames, n_classes: int, schedule: Schedule,
                 device: torch.device):
        self.model, self.schedule, self.device = model.to(device), schedule, device
        self.frames = frames
        self.weights = torch.tensor(frames.class_weights(n_classes), dtype=torch.float32, device=device)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=schedule.lr)
        self.step = 0
        self.losses: list[float] = []

    def _lr(self) -> float:
        return self.schedule.lr * 0.5 * (1 + math.cos(math.pi * self.step / max(self.schedule.steps, 1)))

    def run(self, until: int | None = None, on_step: Callable[[int, float], None] | None = None) -> None:
        """Train up to step `until` (default: the end), calling on_step(step, loss) after each."""
        until = self.schedule.steps if until is None else min(until, self.schedule.steps)
        # The crop stream is re-created at the current step so that a resumed run draws what an
        # uninterrupted one would have.
        batches = self.frames.batches(self.schedule.crop, self.schedule.batch, self.schedule.seed)
        for _ in range(self.step):
            next(batches)
        self.model.train()
        while self.step < until:
            images, labels, x0, y0, span_x, span_y = next(batches)
            x = network_input(images, x0, y0, span_x, span_y).to(self.device)
            target = torch.from_numpy(labels.astype(np.int64)).to(self.device)
            target[target == IGNORE] = -100
            for group in self.optimizer.param_groups:
                group["lr"] = self._lr()
            loss = F.cross_entropy(self.model(x), target, weight=self.weights, ignore_index=-100)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
            self.losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(self.step, self.losses[-1])
        self.model.eval()

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
                "losses": self.losses}

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.losses = int(state["step"]), list(state["losses"])


def predict(model: RefinerNet, frame_small: np.ndarray, device: torch.device) -> np.ndarray:
    """Class log-probabilities (C x H x W float32) of one frame at the working size."""
    model.eval()
    with torch.no_grad():
        logits = model(network_input(frame_small[None]).to(device))
        return F.log_softmax(logits[0], 0).float().cpu().numpy()
