"""`autolabel train`: the typer command over autolabel.refiner (learned) and refiner.classic_train."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError
from ..progress import Reporter, console, duration
from .main import app
from .options import DeviceOption, fail


# What each mode of `train` reads; any other option given is refused.
MODE_OPTIONS = {
    "DATASET (the class prior)": {"--steps", "--clip", "--hold-out", "--every", "--ignore-index", "--layout", "--init",
                                  "--from-scratch", "--seed", "--device"},
    "--boundary": {"--steps", "--clip", "--every", "--ignore-index", "--seed"},
    "--fit-trust": {"--every", "--hold-out", "--init", "--device", "--adapt-steps", "--drop-head"},
    "--classic": {"--every", "--flow-cache"},
}


@app.command()
def train(
    dataset: list[Path] = typer.Argument(..., metavar="DATASET",
                                         help="A dataset in any of batch's layouts (clip folders with frames/ and "
                                              "labels/, DAVIS, Cityscapes, a manifest), sparse labeled frames "
                                              "included. With --classic: clips or folders of clips."),
    out: Path = typer.Option(Path("refiner.pt"), "--out", "-o", help="Weights to write (use them with "
                             "`propagate --refiner` and `batch --refiner`)."),
    steps: int = typer.Option(3000, "--steps", min=1, help="Training steps (8 crops of 192 px each)."),
    clips: list[str] = typer.Option([], "--clip", metavar="NAME", help="Train on this clip only (repeat for more); default all."),
    hold_out: list[str] = typer.Option([], "--hold-out", metavar="NAME", help="Never train on this clip; score the result on "
                                       "its labeled frames at the end (repeat for more)."),
    every: Optional[int] = typer.Option(None, "--every", min=1, help="Use only labels of frames whose index is a "
                                        "multiple of this (10: what a user would have, when label folders also "
                                        "hold evaluation labels)."),
    ignore_index: int = typer.Option(255, "--ignore-index", help="Id meaning 'unlabeled': never learned."),
    layout: str = typer.Option("auto", "--layout", metavar="auto|generic|davis|cityscapes|manifest",
                                help="Dataset layout (see `autolabel batch --help`)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from this refiner's network (default: the "
                                        "shipped models/refiner.pt)."),
    from_scratch: bool = typer.Option(False, "--from-scratch", help="Start from a randomly initialised network."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random source: same data, seed and device, "
                             "same weights."),
    device: str = DeviceOption,
    fit_trust: bool = typer.Option(False, "--fit-trust", help="Fit how far to trust the network against the "
                                    "warp, and the confidence's calibration, on densely labeled clips (DATASET: "
                                    "clips or folders of clips; --init: the network; labels every --every frames, "
                                    "10 by default); the network itself is kept."),
    adapt_steps: Optional[int] = typer.Option(None, "--adapt-steps", min=0, help="With --fit-trust: per-clip "
                                              "learning steps on the CPU, fitted for and written as the default "
                                              "(default: 50)."),
    drop_head: bool = typer.Option(False, "--drop-head", help="With --fit-trust: keep only the network's trunk, "
                                   "so that every clip starts a head of its own (a refiner for any label set, "
                                   "like the shipped one)."),
    boundary: bool = typer.Option(False, "--boundary", help="Pretrain the boundary network instead (the default "
                                  "refiner's; models/MODEL_CARD.md): deformed labels of DATASET's labeled frames, "
                                  "refined by the classic refiner, against the true labels. Uses --steps, --clip, "
                                  "--every, --ignore-index, --seed."),
    classic: bool = typer.Option(False, "--classic", help="Fit the classic refiner's strengths instead "
                                 "(JSON weights; DATASET: densely labeled clips, --every 10 by default)."),
    flow_cache: Optional[Path] = typer.Option(None, "--flow-cache", help="With --classic: keep optical flow here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Teach the refiner a dataset's classes from all of its labeled frames.

    The network learns what each class looks like (the semantic prior); propagating a clip of
    that dataset then starts its per-clip learning from it. Progress shows while it runs; a
    checkpoint beside OUT lets the same command resume after a kill. Example:

      autolabel train camvid/ -o camvid.pt --ignore-index 11 --hold-out Seq05VD
    """
    given = {name for name, value, default in (
        ("--steps", steps, 3000), ("--clip", clips, []), ("--hold-out", hold_out, []), ("--every", every, None),
        ("--ignore-index", ignore_index, 255), ("--layout", layout, "auto"), ("--init", init, None),
        ("--from-scratch", from_scratch, False), ("--seed", seed, 0), ("--device", device, "auto"),
        ("--adapt-steps", adapt_steps, None), ("--drop-head", drop_head, False), ("--flow-cache", flow_cache, None))
        if value != default}
    modes = [flag for flag, on in (("--classic", classic), ("--boundary", boundary), ("--fit-trust", fit_trust)) if on]
    if len(modes) > 1:
        fail(InputError(" ".join(modes), "pick one of them"))
    mode = modes[0] if modes else "DATASET (the class prior)"
    unused = sorted(given - MODE_OPTIONS[mode])
    if unused:   # an option that does nothing is refused, not ignored
        fail(InputError(", ".join(unused), f"does nothing when training {mode}; see `autolabel train --help`"))
    try:
        check_weights_out(out)
    except InputError as error:
        fail(error)
    if out.exists() and not overwrite:  # as every other command: earlier results stay unless asked
        fail(InputError(out, "already exists; pass --overwrite to replace it"))
    if classic:
        return _train_classic(dataset, out, every or 10, flow_cache)
    if boundary:
        return _train_boundary(dataset, out, steps, clips, every, ignore_index, seed)
    from ..refiner.prior.train import train_dataset
    from ..refiner.device import resolve_device

    if fit_trust:
        return _fit_trust(dataset, out, every or 10, hold_out, init, device, adapt_steps, drop_head)

    if len(dataset) != 1:
        fail(InputError(" ".join(map(str, dataset)), "give one DATASET (several clips: put them in one folder)"))
    try:
        torch_device = resolve_device(device)
        with Reporter("steps") as reporter:
            def progress(step: int, loss: float) -> None:
                reporter.frames(step, steps)
            summary = train_dataset(dataset[0], out, steps=steps, every=every, layout=layout,
                                    ignore_index=ignore_index, clips=clips or None, hold_out=hold_out or None,
                                    init=init, from_scratch=from_scratch, device=torch_device, seed=seed,
                                    progress=progress, log=reporter.say)
    except InputError as error:
        fail(error)
    console.print(f"wrote {out}: {summary['frames']} labeled frames, {summary['classes']} classes, "
                  f"{summary['steps']} steps in {duration(summary['seconds'])} on {torch_device}", highlight=False)
    if "held_out" in summary:
        held = summary["held_out"]
        console.print(f"held out {', '.join(held['clips'])} ({held['frames']} labeled frames), mIoU per frame: "
                      f"network {held['network']:.1f}, colour-and-band table {held['colour_table']:.1f}",
                      highlight=False)
        typer.echo(json.dumps(summary))


def check_weights_out(out: Path) -> None:
    """Before any work (training takes up to an hour): OUT must be a file name in a folder we can write."""
    if out.is_dir():
        raise InputError(out, "is a folder; give the weights' file name")
    folder = out.parent
    if not folder.exists():
        raise InputError(out, f"the folder {folder} does not exist")
    if not folder.is_dir():
        raise InputError(out, f"{folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(out, f"cannot write to the folder {folder}")


def _train_boundary(dataset: list[Path], out: Path, steps: int, clips: list[str], every: Optional[int],
                    ignore_index: int, seed: int) -> None:
    from ..refiner.boundary.train import pretrain

    if len(dataset) != 1:
        fail(InputError(" ".join(map(str, dataset)), "give one DATASET (several clips: put them in one folder)"))
    try:
        with Reporter("steps") as reporter:
            def progress(stage: str, done: int, total: int) -> None:
                if stage == "steps":
                    reporter.frames(done, total)
            weights = pretrain(dataset[0], out, steps=steps, every=every, ignore_index=ignore_index,
                               clip_names=clips or None, seed=seed, on_progress=progress)
    except InputError as error:
        fail(error)
    trained = weights.trained
    console.print(f"wrote {out}: {trained['labeled_frames']} labeled frames, {trained['items']} boundary crops, "
                  f"{steps} steps in {duration(trained['seconds'])}", highlight=False)


def _train_classic(clips: list[Path], out: Path, every: int, flow_cache: Optional[Path]) -> None:
    from ..datasets.flowcache import FlowCache
    from ..evaluation.bench import clip_paths, expand_clips
    from ..refiner.classic_train import train as train_refiner

    try:
        pairs = [clip_paths(clip) for clip in expand_clips(clips)]
        with Reporter("training") as reporter:
            summary = train_refiner(pairs, out, every, flow_cache=FlowCache(flow_cache) if flow_cache else None,
                                    log=reporter.say)
    except InputError as error:
        fail(error)
    defaults = ", ".join(f"up to {size} classes: {setting}" for size, setting in summary["defaults"].items())
    console.print(f"wrote {out} from {summary['samples']} propagations in {summary['seconds']:.0f}s; defaults "
                  f"{defaults}", highlight=False)


def _fit_trust(clips: list[Path], out: Path, every: int, hold_out: list[str], init: Optional[Path], device: str,
                adapt_steps: Optional[int], drop_head: bool) -> None:
    from ..evaluation.bench import clip_paths, expand_clips
    from ..refiner.prior.trust import fit_trust
    from ..refiner.device import resolve_device
    from ..refiner.prior.weights import ADAPT_STEPS, load_weights

    try:
        torch_device = resolve_device(device)
        pairs = [clip_paths(clip) for clip in expand_clips(clips) if clip.name not in hold_out]
        weights = load_weights(init)
        weights.adapt_steps = {**ADAPT_STEPS, **({} if adapt_steps is None else {"cpu": adapt_steps})}
        if drop_head:
            weights.head = weights.class_ids = weights.ignore_index = None
        with Reporter("fitting") as reporter:
            summary = fit_trust(pairs, weights, out, every=every, device=torch_device,
                                 steps=weights.adapt_steps["cpu"], log=reporter.say)
    except InputError as error:
        fail(error)
    console.print(f"wrote {out} from {summary['targets']} labeled frames between keyframes in "
                  f"{duration(summary['seconds'])}; network weight by label-set size: {summary['alpha']}",
                  highlight=False)
