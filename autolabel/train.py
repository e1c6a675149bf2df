"""Train the refiner without dense ground truth: cycle consistency on the user's keyframes.

For a labeled frame t, its label L_t is carried to t+k and back to t (or to t-k
and back) with exactly the machinery propagation uses (`warp.carry` along DIS
flow, forward-backward trust, decay, the keyframe image carried along for the
photometric error). The round trip damages the label the way real propagation
does, and L_t is the target. Where two labeled frames are within reach, the
label of one is also carried straight to the other (a real propagation with a
real target). Arrivals at the same frame are fused pairwise like the pipeline
fuses its two keyframes, so the refiner sees fused and one-sided inputs, of
every distance.

Only the labels handed in are used. Frames are worked on at a reduced size
(long side `--train-size`, 432 by default) with flow computed once per clip.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from . import fuse as fusion
from .flow import FlowEstimator
from .refine import DEFAULT_CONFIG, build, load_net, pick_device, save_weights
from .warp import carry, consistency

CYCLE_STEPS = (1, 2, 3, 5, 7, 10, 15)   # k of the round trips t -> t+-k -> t
DIRECT_REACH = 30                       # labeled frames this close are propagated to each other
DECAY = 0.97


@dataclass
class ArrivedSide:
    """A label propagation arriving at a labeled frame, stored compactly."""
    probs: np.ndarray        # HxWxC uint8 (x255)
    reliability: np.ndarray  # HxW float16
    photo_error: np.ndarray  # HxW float16
    distance: int

    def side(self) -> fusion.Side:
        return fusion.Side(self.probs.astype(np.float32) / 255, self.reliability.astype(np.float32),
                           self.distance, self.photo_error.astype(np.float32))


@dataclass
class TrainClip:
    name: str
    frames: list            # HxWx3 uint8 at training size
    labels: dict            # index -> HxW int64 channel ids (only the labels handed in)
    n_channels: int
    pull_forward: list = field(default_factory=list)   # t: (flow t+1->t, trust) to carry t -> t+1
    pull_backward: list = field(default_factory=list)  # t: (flow t->t+1, trust) to carry t+1 -> t


def resize_clip(frames, labels: dict, size: int):
    h, w = frames[0].shape[:2]
    scale = min(1.0, size / max(h, w))
    if scale == 1.0:
        return list(frames), dict(labels)
    dsize = (max(8, round(w * scale)), max(8, round(h * scale)))
    frames = [cv2.resize(f, dsize, interpolation=cv2.INTER_AREA) for f in frames]
    labels = {i: cv2.resize(l.astype(np.int32), dsize, interpolation=cv2.INTER_NEAREST).astype(np.int64)
              for i, l in labels.items()}
    return frames, labels


def prepare(name: str, frames, labels: dict, n_channels: int, size: int, flow_preset: str = "medium") -> TrainClip:
    """Downscale and compute both-direction flow + trust for every consecutive pair, once."""
    frames, labels = resize_clip(frames, labels, size)
    clip = TrainClip(name, frames, labels, n_channels)
    estimator = FlowEstimator("dis", flow_preset, 1.0)
    h, w = frames[0].shape[:2]
    grays = [estimator.gray(f) for f in frames]
    for t in range(len(frames) - 1):
        fwd, bwd = estimator.pair(grays[t], grays[t + 1], w, h)   # t->t+1, t+1->t
        clip.pull_forward.append((bwd, consistency(bwd, fwd)))
        clip.pull_backward.append((fwd, consistency(fwd, bwd)))
    return clip


def carry_along(clip: TrainClip, start: int, path: list[int]) -> ArrivedSide:
    """Carry the label of `start` through the frames of `path` (each a neighbour of the previous)."""
    label = clip.labels[start]
    probs = np.eye(clip.n_channels, dtype=np.float32)[label]
    reliability = np.ones(label.shape, np.float32)
    image = clip.frames[start].astype(np.float32) / 255
    here = start
    for there in path:
        flow, trust = clip.pull_forward[here] if there == here + 1 else clip.pull_backward[there]
        probs, reliability, image = carry(probs, reliability, flow, trust, DECAY, image)
        here = there
    photo_error = np.abs(image - clip.frames[here].astype(np.float32) / 255).mean(axis=2)
    return ArrivedSide(np.rint(probs * 255).astype(np.uint8), reliability.astype(np.float16),
                       photo_error.astype(np.float16), len(path))


def arrivals(clip: TrainClip, steps=CYCLE_STEPS, reach: int = DIRECT_REACH) -> list[tuple[int, list[ArrivedSide]]]:
    """(labeled frame, propagations arriving there) for every labeled frame of the clip."""
    n = len(clip.frames)
    out = []
    for t in sorted(clip.labels):
        sides = []
        for k in steps:
            if t + k < n:
                sides.append(carry_along(clip, t, list(range(t + 1, t + k + 1)) + list(range(t + k - 1, t - 1, -1))))
            if t - k >= 0:
                sides.append(carry_along(clip, t, list(range(t - 1, t - k - 1, -1)) + list(range(t - k + 1, t + 1))))
        for s in sorted(clip.labels):
            if s != t and abs(s - t) <= reach:
                step = 1 if t > s else -1
                sides.append(carry_along(clip, s, list(range(s + step, t + step, step))))
        out.append((t, sides))
    return out


class SampleBank:
    """All (target label, arrivals) groups; draws fused or one-sided random crops."""

    def __init__(self, clips: list[TrainClip], groups: list[list[tuple[int, list[ArrivedSide]]]]):
        self.items = [(ci, t, sides) for ci, clip_groups in enumerate(groups) for t, sides in clip_groups if sides]
        self.clips = clips

    def __len__(self):
        return len(self.items)

    def draw(self, rng: np.random.Generator, crop: int):
        ci, t, sides = self.items[rng.integers(len(self.items))]
        clip = self.clips[ci]
        h, w = clip.frames[t].shape[:2]
        ch, cw = min(crop, h), min(crop, w)
        y, x = rng.integers(h - ch + 1), rng.integers(w - cw + 1)
        cut = (slice(y, y + ch), slice(x, x + cw))
        picked = [sides[i] for i in rng.choice(len(sides), size=min(len(sides), 1 + (rng.random() < 0.7)),
                                                replace=False)]
        cropped = [fusion.Side(s.probs[cut].astype(np.float32) / 255, s.reliability[cut].astype(np.float32),
                               s.distance, s.photo_error[cut].astype(np.float32)) for s in picked]
        probs, reliability = fusion.fuse(*cropped)
        photo_error = fusion.fuse_photo_error(*cropped)
        probs = probs / np.maximum(probs.sum(axis=2, keepdims=True), 1e-6)
        frame = clip.frames[t][cut]
        target = clip.labels[t][cut]
        if rng.random() < 0.5:   # horizontal flip
            probs, reliability, photo_error = probs[:, ::-1], reliability[:, ::-1], photo_error[:, ::-1]
            frame, target = frame[:, ::-1], target[:, ::-1]
        distance = min(s.distance for s in picked)
        return frame, probs, reliability, photo_error, distance, target, clip


def to_batch(samples, device):
    """Samples of one channel count -> tensors (padded channels are never used: one sample per call)."""
    frame, probs, rel, pe, dist, target, _ = samples
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    return (t(frame).permute(2, 0, 1)[None].float().contiguous().to(device) / 255,
            t(probs).permute(2, 0, 1)[None].float().contiguous().to(device),
            t(rel)[None, None].float().to(device), t(pe)[None, None].float().to(device),
            torch.tensor([float(dist)], device=device), t(target)[None].long().to(device))


def loss_of(net, batch, scale: float, balance: float = 0.0):
    """(training loss, refined NLL, unrefined NLL). `balance` > 0 weights each pixel by
    (share of its class in the crop) ** -balance, so small objects are not traded for background."""
    frame, probs, rel, pe, dist, target = batch
    out, confidence = net(frame, probs, rel, pe, dist, scale=scale)
    pixel_nll = F.nll_loss(torch.log(out.clamp_min(1e-6)), target, reduction="none")
    nll = pixel_nll.mean()
    if balance > 0:
        share = torch.bincount(target.flatten(), minlength=probs.shape[1]).float() / target.numel()
        weight = share[target].clamp_min(1e-4) ** -balance
        train_nll = (pixel_nll * weight).sum() / weight.sum()
    else:
        train_nll = nll
    correct = (out.argmax(1) == target).float()
    conf_loss = F.binary_cross_entropy(confidence[:, 0].clamp(1e-6, 1 - 1e-6), correct)
    base = F.nll_loss(torch.log(probs.clamp_min(1e-6)), target)
    return train_nll + 0.1 * conf_loss, nll.detach(), base.detach()


# ---------------------------------------------------------------- loading clips

def load_labeled_clip(video: Path, keyframes: Path, every: int | None = None):
    """(name, frames, {index: channel ids}, n_channels) from a frames folder/video and a label folder."""
    from .frames import FrameSource
    from .keyframes import find_keyframes, load_keyframes

    source = FrameSource(video)
    paths = find_keyframes(keyframes, source.stems)
    if every:
        paths = {i: p for i, p in paths.items() if i % every == 0}
    keys = load_keyframes(paths, (source.width, source.height))
    frames = [source.read(i) for i in range(len(source))]
    labels = {i: keys.classes.channels(keys.label(i)) for i in keys.indices}
    source.close()
    return video.parent.name if video.name == "frames" else video.stem, frames, labels, len(keys.classes)


def synthetic_clips(count: int, seed: int, n_frames: int = 40, height: int = 144, width: int = 256):
    from .synth import make_clip
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        n_objects = int(rng.integers(1, 8))
        clip = make_clip(n_frames, height, width, n_objects, seed=int(rng.integers(1 << 30)),
                         max_speed=float(rng.uniform(1.5, 5.0)))
        ids = np.unique(np.concatenate([np.unique(l) for l in clip.labels]))
        lut = np.zeros(256, np.int64)
        lut[ids] = np.arange(len(ids))
        labels = {t: lut[l] for t, l in enumerate(clip.labels) if t % 5 == 0}
        out.append((f"synthetic-{i}", clip.frames, labels, len(ids)))
    return out


def gather_clips(videos, keyframes, clips_dir, every, synthetic, seed):
    specs = []
    if len(videos) != len(keyframes):
        raise ValueError("give one --keyframes folder per --video")
    specs += [(v, k) for v, k in zip(videos, keyframes)]
    if clips_dir is not None:
        for root in sorted(p for p in Path(clips_dir).iterdir() if (p / "frames").is_dir() and (p / "labels").is_dir()):
            specs.append((root / "frames", root / "labels"))
    loaded = [load_labeled_clip(v, k, every) for v, k in specs]
    loaded += synthetic_clips(synthetic, seed) if synthetic else []
    return loaded


# ---------------------------------------------------------------- training loop

def build_bank(clips: list[tuple], train_size: int = 432) -> SampleBank:
    """Flow once per clip, then every propagation that arrives at a labeled frame."""
    prepared = [prepare(name, frames, labels, n_channels, train_size) for name, frames, labels, n_channels in clips]
    groups = [arrivals(c) for c in prepared]
    for clip in prepared:   # flows are no longer needed
        clip.pull_forward, clip.pull_backward = [], []
    return SampleBank(prepared, groups)


def work_scale(config: dict, clip: TrainClip) -> float:
    """The refiner sees whole frames at test time: its trunk runs at long side work_size."""
    return min(1.0, config["work_size"] / max(clip.frames[0].shape[:2]))


@torch.no_grad()
def mean_cycle_loss(net, bank: SampleBank, n: int = 32, crop: int = 160, seed: int = 12345, device="cpu"):
    """(refined, unrefined) mean NLL over n fixed random draws: the held-fixed yardstick of training."""
    was = net.training
    net.eval()
    totals = np.zeros(2)
    for i in range(n):
        sample = bank.draw(np.random.default_rng([seed, i]), crop)
        _, nll, base = loss_of(net, to_batch(sample, device), work_scale(net_config(net), sample[-1]))
        totals += (nll.item(), base.item())
    net.train(was)
    return tuple(totals / n)


def net_config(net) -> dict:
    return {"work_size": net.work_size}

def train(clips: list[tuple], out: Path, *, init: Path | None = None, steps: int = 3000, lr: float = 2e-3,
          crop: int = 160, train_size: int = 432, seed: int = 0, device: str = "auto",
          checkpoint_every: int = 100, resume: bool = True, threads: int | None = None, log=print,
          config: dict | None = None, balance: float = 0.0, stop_after: int | None = None,
          on_step=None) -> dict:
    """Train and write `out` (weights) and `out`.ckpt (resumable state); returns a summary."""
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    dev = pick_device(device)
    out = Path(out)
    ckpt_path = out.with_name(out.name + ".ckpt")

    started = time.time()
    bank = build_bank(clips, train_size)
    log(f"{len(bank.clips)} clips, {len(bank)} labeled frames, "
        f"{sum(len(s) for _, _, s in bank.items)} propagations in {time.time() - started:.0f}s")
    if not len(bank):
        raise ValueError("no training samples: need labeled frames in clips of at least 2 frames")

    if init is not None:
        net, cfg = load_net(init)
    else:
        cfg = {**DEFAULT_CONFIG, **(config or {})}
        net = build(cfg)
    net.to(dev).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    step = 0
    history: list[tuple[int, float, float]] = []
    if resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        net.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = int(state["step"])
        history = [tuple(h) for h in state.get("history", [])]
        log(f"resumed from {ckpt_path} at step {step}")

    def checkpoint():
        tmp = ckpt_path.with_name(ckpt_path.name + ".tmp")
        torch.save({"state_dict": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "step": step, "history": history, "config": cfg}, tmp)
        tmp.replace(ckpt_path)
        save_weights(net, cfg, out, {"steps": step})

    window = []
    t0 = time.time()
    while step < steps and (stop_after is None or step < stop_after):
        rng = np.random.default_rng([seed, step])       # sample order depends only on (seed, step)
        sample = bank.draw(rng, crop)
        scale = work_scale(cfg, sample[-1])
        batch = to_batch(sample, dev)
        loss, nll, base = loss_of(net, batch, scale, balance)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        window.append((nll.item(), base.item()))
        if on_step is not None:
            on_step(step, steps)
        if step % checkpoint_every == 0 or step == steps:
            mean_nll, mean_base = np.mean(window, axis=0)
            history.append((step, float(mean_nll), float(mean_base)))
            window = []
            checkpoint()
            log(f"step {step}/{steps}  cycle loss {mean_nll:.4f} (unrefined {mean_base:.4f})  "
                f"{(time.time() - t0) / max(step, 1):.2f}s/step")
    return {"steps": step, "history": history, "seconds": time.time() - started}
