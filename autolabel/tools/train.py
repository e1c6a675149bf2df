"""Train the refiner by cycle consistency: the loss, loading clips, and the training loop.

The samples (labels carried around round trips and fused) come from cycles.py.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core.refine import DEFAULT_CONFIG, build, load_net, pick_device, save_weights
from .cycles import SampleBank, TrainClip, build_bank

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
    from ..io.frames import FrameSource
    from ..io.keyframes import find_keyframes, load_keyframes

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
