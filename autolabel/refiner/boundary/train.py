"""Pretrain the boundary network on a sparsely labeled dataset (`autolabel train DATASET --boundary`).

A sparse dataset has no video between its labels, so a random smooth deformation of each
label, with holes, stands in for the warp: the deformed label is what a propagation would
carry there (soft at its edges, unreliable in the holes), the classic refiner repairs it as it
would in a run (its colour cue learned from the clip's other labeled frames), and the true
label is the target. Each labeled frame gives one sample of its own label set and one of a
single class against the rest (objects, as DAVIS clips have). The network learns to correct
the classic output near boundaries, whatever the classes: one file serves every label set.

The deformations are seeded by the frame's position, so a rerun draws the same samples;
training checkpoints beside the output and a rerun of the same command resumes.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from ...core.refine import load_refiner as load_classic
from ...datasets.layouts import find_clips, no_clips_message
from ...errors import InputError
from ...io.labels import detect_format, read_label
from ..prior.train import clip_frames
from .stage import THREADS, BoundaryRefiner
from .weights import BoundaryWeights
from .model import BoundaryNet

APPEARANCE_FRAMES = 12        # labeled frames of a clip that teach the classic refiner its colours
DISTANCES = (5, 10, 20)       # frames from the keyframe a sample stands for (the network's u)


def deformed(label: np.ndarray, n_channels: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(H x W x n float32 soft labels, H x W reliability): `label` moved by a smooth random field of
    a few pixels, with holes where a wrong, farther-moved label shows and the warp is unsure."""
    height, width = label.shape

    def field(amplitude: float, cells: int) -> tuple[np.ndarray, np.ndarray]:
        coarse = rng.normal(0, amplitude, (2, cells, cells)).astype(np.float32)
        dx, dy = (cv2.resize(c, (width, height), interpolation=cv2.INTER_CUBIC) for c in coarse)
        xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        return xs + dx, ys + dy

    moved = cv2.remap(label.astype(np.uint8), *field(rng.uniform(1, 5), 6), cv2.INTER_NEAREST,
                      borderMode=cv2.BORDER_REPLICATE)
    far = cv2.remap(label.astype(np.uint8), *field(rng.uniform(8, 20), 4), cv2.INTER_NEAREST,
                    borderMode=cv2.BORDER_REPLICATE)
    holes = np.zeros((height, width), np.uint8)
    for _ in range(rng.integers(0, 4)):
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        axes = (int(rng.integers(8, max(9, width // 8))), int(rng.integers(8, max(9, height // 8))))
        cv2.ellipse(holes, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    moved = np.where(holes > 0, far, moved)
    probs = np.eye(n_channels, dtype=np.float32)[moved]
    probs = cv2.GaussianBlur(probs, (0, 0), rng.uniform(0.5, 1.5)).reshape(height, width, n_channels)
    probs /= probs.sum(axis=2, keepdims=True)
    reliability = np.where(holes > 0, rng.uniform(0.05, 0.3), rng.uniform(0.5, 1.0)).astype(np.float32)
    return probs, reliability


def collect(dataset: Path, every: int | None, ignore_index: int | None, refiner: BoundaryRefiner,
            clip_names: list[str] | None = None, on_sample: Callable[[], None] = lambda: None) -> int:
    """Add every labeled frame's samples to `refiner.items`; returns how many frames were read."""
    jobs = [job for job in find_clips(dataset) if not clip_names or job.name in clip_names]
    if not jobs:
        raise InputError(dataset, no_clips_message("auto"))
    frames_read = 0
    for position, job in enumerate(jobs):
        labeled = list(clip_frames(job, every))
        fmt = detect_format([path for _, path in labeled], ignore_index=ignore_index)
        labels = [read_label(path, fmt) for _, path in labeled]
        ids = np.unique(np.concatenate([np.unique(label) for label in labels]))
        for index, ((frame, _), label) in enumerate(zip(labeled, labels)):
            rng = np.random.default_rng([position, index])
            channels = np.searchsorted(ids, label)
            ignore = int(np.searchsorted(ids, fmt.ignore_index)) if fmt.ignore_index in ids else None
            one = int(rng.choice([c for c in np.unique(channels) if c != ignore]))
            # the frame's own classes, then one of them against the rest (an object clip's label set)
            for as_sample, n, sample_ignore in ((lambda c: c, len(ids), ignore),
                                                (lambda c: (c == one).astype(np.int64), 2, None)):
                others = [(f, as_sample(np.searchsorted(ids, lab)))
                          for (f, _), lab in _spread(labeled, labels, index, APPEARANCE_FRAMES)]
                refiner.base.start_clip(iter(others), n)
                target = as_sample(channels)
                probs, reliability = deformed(target, n, rng)
                distance = int(rng.choice(DISTANCES))
                base, confidence = refiner.base.refine(frame, probs, reliability, distance)
                refiner.keep(frame, base, confidence, probs, reliability, target, distance, ignore=sample_ignore)
                on_sample()
            frames_read += 1
    return frames_read


def _spread(labeled, labels, skip: int, count: int):
    """Up to `count` labeled frames other than `skip`, evenly spaced."""
    others = [i for i in range(len(labeled)) if i != skip]
    picked = np.linspace(0, len(others) - 1, min(count, len(others))).round().astype(int) if others else []
    return [(labeled[others[i]], labels[others[i]]) for i in picked]


def pretrain(dataset: Path, out: Path, *, steps: int = 3000, every: int | None = None, ignore_index: int | None = 255,
             clip_names: list[str] | None = None, seed: int = 0, checkpoint_every: int = 250,
             on_progress: Callable[[str, int, int], None] = lambda stage, done, total: None) -> BoundaryWeights:
    """Collect deformation samples of `dataset` and train the boundary network `steps` steps into `out`."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    net = BoundaryNet()
    weights = BoundaryWeights(net.state_dict())
    refiner = BoundaryRefiner(load_classic(None), weights, torch.device("cpu"), steps=0, seed=seed)
    refiner.start_clip(iter(()), 2)
    refiner.max_items = None
    started = time.time()
    frames = collect(dataset, every, ignore_index, refiner, clip_names,
                     on_sample=lambda: on_progress("samples", len(refiner.items), 0))
    checkpoint = out.with_name(f".{out.name}.checkpoint")
    done = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=True)
        refiner.net.load_state_dict(state["net"])
        refiner.optimizer.load_state_dict(state["optimizer"])
        refiner.generator.set_state(state["generator"])
        done = int(state["done"])
    while done < steps:
        run = min(checkpoint_every, steps - done)
        refiner.train_steps(run)
        done += run
        torch.save({"net": refiner.net.state_dict(), "optimizer": refiner.optimizer.state_dict(),
                    "generator": refiner.generator.get_state(), "done": done}, checkpoint)
        on_progress("steps", done, steps)
    weights = BoundaryWeights({k: v.clone() for k, v in refiner.net.state_dict().items()}, trained={
        "data": str(dataset), "clips": clip_names, "labeled_frames": frames, "items": len(refiner.items),
        "steps": steps, "seed": seed, "seconds": round(time.time() - started),
        "how": "deformed labels refined by the classic refiner; targets are the true labels"})
    weights.save(out)
    checkpoint.unlink()
    return weights
