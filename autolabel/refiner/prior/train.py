"""`autolabel train DATASET`: learn a dataset's classes from all of its keyframes (the semantic prior).

Reads a dataset in any of `batch`'s layouts, including one of sparse labeled frames with no
video between them (camvid-sparse). Every labeled frame is shrunk once to the network's
working size; the network (trunk from `init`, a head over the dataset's class ids) is trained
on augmented crops of them. Progress goes to a callback (the CLI shows a bar); a checkpoint beside the output is written
every `checkpoint_every` steps and a rerun of the same command resumes from it, drawing the
same crops an uninterrupted run would have. `hold_out` clips are never trained on: the prior is
scored on every labeled frame of theirs, beside the colour-and-band table (the classic
refiner's appearance cue) built from the same training frames.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...core.appearance import Appearance
from ...datasets.fingerprint import frame_stems, keyframe_paths
from ...datasets.layouts import ClipJob, find_clips, no_clips_message
from ...errors import InputError
from ...io.frames import FrameSource, read_image
from ...io.labels import detect_format, read_label
from .fit import THREADS, Fitter, Schedule, predict
from .model import RefinerNet, work_size
from .samples import IGNORE, LabeledFrames, frame_miou
from .weights import Weights, load_weights



def clip_frames(job: ClipJob, every: int | None):
    """(frame, label path) of every labeled frame of a clip whose index is a multiple of `every`."""
    paths = keyframe_paths(job, every)
    if job.frame_files is not None:
        by_stem = {path.stem: path for path in job.frame_files}
        stems = frame_stems(job)
        for index, label in sorted(paths.items()):
            yield read_image(by_stem[stems[index]]), label
        return
    source = FrameSource(job.video)
    try:
        for index, label in sorted(paths.items()):
            yield source.read(index), label
    finally:
        source.close()


def read_dataset(jobs: list[ClipJob], every: int | None, ignore_index: int | None, work_pixels: int,
                 class_ids: list[int] | None = None) -> tuple[LabeledFrames, list[int], object]:
    """Every labeled frame of `jobs`, shrunk, with labels as indices into `class_ids` (found here
    when None: every id seen, ignore aside). Ids outside `class_ids` and ignore teach nothing."""
    by_clip = {job.name: list(keyframe_paths(job, every).values()) for job in jobs}
    # Binary masks and id maps read together would make a binary mask's object "ignore": refuse the mix.
    kinds = {name: detect_format(paths, ignore_index=ignore_index).kind for name, paths in by_clip.items() if paths}
    if len(set(kinds.values())) > 1:
        (first, first_kind), (other, other_kind) = next(iter(kinds.items())), next(
            (name, kind) for name, kind in kinds.items() if kind != next(iter(kinds.values())))
        raise InputError(other, f"its labels are {other_kind}, but {first}'s are {first_kind}: a class prior "
                         "learns one label set (train on one kind, or select clips with --clip)")
    label_paths = [path for paths in by_clip.values() for path in paths]
    fmt = detect_format(label_paths, ignore_index=ignore_index)
    frames = LabeledFrames()
    raw = []
    for job in jobs:
        for frame, path in clip_frames(job, every):
            ids = read_label(path, fmt)
            if ids.shape != frame.shape[:2]:
                raise InputError(path, f"label is {ids.shape[1]}x{ids.shape[0]} but its frame is "
                                 f"{frame.shape[1]}x{frame.shape[0]}")
            raw.append((frame, ids))
    if class_ids is None:
        seen = set().union(*(np.unique(ids).tolist() for _, ids in raw))
        class_ids = sorted(seen - {fmt.ignore_index})
    if len(class_ids) >= IGNORE:
        raise InputError(jobs[0].keyframes, f"{len(class_ids)} classes; the class prior takes at most {IGNORE - 1}")
    lookup = np.full(max(max(class_ids), *(int(ids.max()) for _, ids in raw)) + 1, IGNORE, np.uint8)
    lookup[class_ids] = np.arange(len(class_ids))
    for frame, ids in raw:
        frames.add(frame, lookup[ids], work_size(frame.shape[1], frame.shape[0], work_pixels))
    return frames, class_ids, fmt


def train_dataset(dataset: str | Path, out: str | Path, *, steps: int = 3000, every: int | None = None,
                  layout: str = "auto", ignore_index: int | None = 255, clips: list[str] | None = None,
                  hold_out: list[str] | None = None, init: str | Path | None = None, from_scratch: bool = False,
                  device: torch.device = torch.device("cpu"), seed: int = 0, checkpoint_every: int = 100,
                  batch: int = 8, crop: int = 192,
                  progress: Callable | None = None, log: Callable[[str], None] = print) -> dict:
    """Train a refiner on a dataset's keyframes and write it to `out`. Returns a summary."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    out = Path(out)
    jobs = find_clips(dataset, layout)
    if not jobs:
        raise InputError(dataset, no_clips_message(layout))
    names = {job.name for job in jobs}
    for name in (clips or []) + (hold_out or []):
        if name not in names:
            raise InputError(dataset, f"no clip named {name!r} (clips: {', '.join(sorted(names))})")
    held = [job for job in jobs if job.name in (hold_out or [])]
    training = [job for job in jobs if (not clips or job.name in clips) and job not in held]
    if not training:
        raise InputError(dataset, "no clips left to train on")
    base = Weights(trunk=RefinerNet(1).trunk.state_dict()) if from_scratch else load_weights(init)
    frames, class_ids, fmt = read_dataset(training, every, ignore_index, base.work_pixels)
    log(f"{len(frames)} labeled frames of {len(training)} clips, {len(class_ids)} classes "
        f"(ids {', '.join(map(str, class_ids))}), working size {frames.frames[0].shape[1]}x{frames.frames[0].shape[0]}")
    net = RefinerNet(len(class_ids)) if from_scratch else base.network(len(class_ids))
    schedule = Schedule(steps=steps, batch=batch, crop=crop, seed=seed)
    fitter = Fitter(net, frames, len(class_ids), schedule, device)
    checkpoint = out.with_name(f".{out.name}.checkpoint")
    config = {"dataset": str(Path(dataset).resolve()), "clips": sorted(j.name for j in training), "steps": steps,
              "every": every, "seed": seed, "batch": batch, "crop": crop,
              "init": None if from_scratch else str(base.path), "class_ids": class_ids}
    seconds_before = 0.0
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if state["config"] == config:
            fitter.load_state(state["fitter"])
            seconds_before = float(state["seconds"])
            log(f"resuming from {checkpoint.name} at step {fitter.step}")
    started = time.perf_counter()

    def on_step(step: int, loss: float) -> None:
        if progress is not None:
            progress(step, loss)
        if step % checkpoint_every == 0 and step < steps:
            staging = checkpoint.with_suffix(".tmp")
            torch.save({"config": config, "fitter": fitter.state(),
                        "seconds": seconds_before + time.perf_counter() - started}, staging)
            staging.replace(checkpoint)

    fitter.run(on_step=on_step)
    seconds = seconds_before + time.perf_counter() - started
    net = fitter.model.cpu()
    weights = Weights(trunk=net.trunk.state_dict(), head=net.head.state_dict(), class_ids=class_ids,
                      ignore_index=fmt.ignore_index, work_pixels=base.work_pixels, fusion=base.fusion,
                      adapt_steps=base.adapt_steps,
                      trained={"dataset": config["dataset"], "clips": config["clips"], "labeled_frames": len(frames),
                               "steps": steps, "seed": seed, "init": config["init"], "device": str(device),
                               "threads": THREADS, "seconds": round(seconds, 1),
                               "final_loss": round(float(np.mean(fitter.losses[-50:])), 4)})
    summary = {"frames": len(frames), "classes": len(class_ids), "seconds": seconds, "steps": steps}
    if held:
        summary["held_out"] = score_held_out(net, frames, held, every, class_ids, fmt.ignore_index, base.work_pixels,
                                             device)
        weights.trained["held_out"] = summary["held_out"]
    weights.save(out)
    checkpoint.unlink(missing_ok=True)
    return summary


def score_held_out(net, training: LabeledFrames, held: list[ClipJob], every, class_ids, ignore_index, work_pixels,
                   device) -> dict:
    """mIoU per frame (mean over frames) on held-out clips: the network alone, and the colour-and-band
    table (core.appearance) built from the same training frames, both at the working size."""
    appearance = Appearance(len(class_ids) + 1)   # + a channel for ignore, which the table also counts
    for frame, label in zip(training.frames, training.labels):
        appearance.add(frame, np.where(label == IGNORE, len(class_ids), label))
    table = appearance.table[:, :len(class_ids)]
    frames, _, _ = read_dataset(held, every, ignore_index, work_pixels, class_ids)
    scores = {"network": [], "colour_table": []}
    net = net.to(device)
    for frame, label in zip(frames.frames, frames.labels):
        network = predict(net, frame, device).argmax(0)
        colour = appearance(frame, table).argmax(2)
        for name, prediction in (("network", network), ("colour_table", colour)):
            scores[name].append(frame_miou(prediction, label, len(class_ids)))
    return {"clips": [job.name for job in held], "frames": len(frames.frames),
            **{name: round(100 * float(np.mean(values)), 2) for name, values in scores.items()}}

