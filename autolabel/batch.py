"""`autolabel batch`: every clip of a dataset through `run_clip`, on one machine or many.

A clip's results are complete only when its manifest carries the fingerprint of the
inputs and settings that made them. `run_clip` writes the manifest last; the batch then
rewrites it atomically with the fingerprint added. `--resume` skips exactly the clips
whose manifest carries the fingerprint the clip has now and redoes the rest (run_clip
stages its work and swaps it in), so a batch killed at any moment and resumed ends with
the outputs of an uninterrupted run.

The fingerprint covers every input file's name, size and mtime_ns rather than its
content: resuming then costs one stat per file instead of reading the whole dataset
again, and any ordinary change to a file (rewrite, re-export, edit) changes its mtime.
A copy that drops mtimes only costs a redo, never a wrong skip.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable, Optional

import cv2
import typer
from rich.markup import escape
from rich.table import Table

from . import __version__
from .cli import (FlowBackendName, FlowOption, FlowPreset, Fusion, FusionOption, IgnoreIndexOption, LabelFormatOption,
                  LabelKind, PresetOption, ScaleOption, app, fail, make_settings)
from .errors import InputError
from .flowcache import FlowCache
from .frames import FrameSource, natural_key
from .keyframes import find_keyframes
from .layouts import LAYOUTS, ClipJob, LabelNames, find_clips
from .pipeline import Settings
from .progress import Reporter, console, tables
from .run import RESULT_NAMES, run_clip

REPORT = "batch-report.jsonl"
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


@dataclass(frozen=True)
class BatchOptions:
    """Everything a clip's run depends on besides its inputs; sent to every worker."""
    settings: Settings = field(default_factory=Settings)
    label_format: str | None = None
    ignore_index: int | None = 255
    keyframe_every: int | None = None    # use only labels at frame indices divisible by this
    flow_cache: Path | None = None
    overwrite: bool = False              # replace results already there
    resume: bool = False                 # skip complete clips, redo the rest


# ------------------------------------------------------------------ inputs and fingerprint


def frame_stems(job: ClipJob) -> list[str]:
    """The clip's frame stems in the order run_clip will index them."""
    if job.frame_files is not None:
        return sorted((path.stem for path in job.frame_files), key=natural_key)
    source = FrameSource(job.video)  # for a video file this decodes it once more, to count its frames
    source.close()
    return source.stems


def keyframe_paths(job: ClipJob, every: int | None) -> dict[int, Path]:
    """{frame index: label} of the keyframes the clip runs from, as run_clip takes them."""
    stems = frame_stems(job)
    if job.keyframe_files is None:
        paths = find_keyframes(job.keyframes, stems)
    else:
        index_of = {stem: index for index, stem in enumerate(stems)}
        paths = {index_of[stem]: label for stem, label in job.keyframe_files}
    if every is not None:
        paths = {index: label for index, label in paths.items() if index % every == 0}
    if not paths:
        raise InputError(job.keyframes, "no keyframe labels for this clip" if every is None
                         else f"no keyframe label at a frame index divisible by {every}")
    return paths


def input_files(job: ClipJob) -> tuple[list[Path], list[Path]]:
    """(frame files or the video file, candidate keyframe files): what the fingerprint covers."""
    if job.frame_files is not None:
        frames = list(job.frame_files)
    else:
        frames = [job.video] if job.video.is_file() else _files_in(job.video)
    keyframes = [label for _, label in job.keyframe_files] if job.keyframe_files is not None \
        else _files_in(job.keyframes)
    return frames, keyframes


def _files_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if path.is_file() and not path.name.startswith("."))


def fingerprint(job: ClipJob, options: BatchOptions) -> str:
    frames, keyframes = input_files(job)

    def described(path: Path) -> list:
        stat = path.stat()
        return [path.name, stat.st_size, stat.st_mtime_ns]

    document = {
        "version": __version__, "settings": options.settings.as_dict(),
        "label_format": options.label_format, "ignore_index": options.ignore_index,
        "keyframe_every": options.keyframe_every,
        "keyframe_stems": [stem for stem, _ in job.keyframe_files] if job.keyframe_files is not None else None,
        "frames": [described(path) for path in frames], "keyframes": [described(path) for path in keyframes],
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


# ------------------------------------------------------------------ one clip


def complete_manifest(out: Path, stamp: str) -> dict | None:
    """The clip's manifest when its results are complete and were made from these inputs and settings."""
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("fingerprint") == stamp else None


def seal(out: Path, manifest: dict, job: ClipJob, stamp: str) -> dict:
    """Rewrite the manifest with the fingerprint, atomically: from now on the clip counts as complete."""
    sealed = {**manifest, "clip": job.name, "video": str(job.video), "fingerprint": stamp}
    temporary = out / ".manifest.json.tmp"
    temporary.write_text(json.dumps(sealed, indent=1) + "\n")
    os.replace(temporary, out / "manifest.json")
    return sealed


def link_or_copy(source: Path, target: Path, link: Callable[[Path, Path], None]) -> None:
    try:
        link(source, target)
    except OSError:  # file systems without links
        shutil.copy2(source, target)


def frames_view(frame_files: tuple[Path, ...], folder: Path) -> Path:
    """A folder of links to just this clip's frames, for datasets that keep many clips in one folder."""
    folder.mkdir()
    for frame in frame_files:
        link_or_copy(frame.resolve(), folder / frame.name, os.symlink)
    return folder


def publish_label_names(out: Path, names: LabelNames) -> None:
    """OUT/<clip>/<names.folder>/: the labels again (hard links) under the dataset's own label names."""
    target = out / names.folder
    shutil.rmtree(target, ignore_errors=True)  # from an earlier run of this clip
    target.mkdir()
    for label in sorted((out / "labels").iterdir()):
        stem = label.stem.removesuffix(names.frame_suffix) + names.label_suffix
        link_or_copy(label, target / f"{stem}{label.suffix}", os.link)


def propagate_clip(job: ClipJob, out: Path, options: BatchOptions) -> dict:
    with tempfile.TemporaryDirectory(prefix="autolabel-batch-") as scratch:
        video = job.video if job.frame_files is None else frames_view(job.frame_files, Path(scratch) / "frames")
        keyframes = keyframe_paths(job, options.keyframe_every)
        cache = FlowCache(options.flow_cache) if options.flow_cache is not None else None
        return run_clip(video, keyframes, out, settings=options.settings, label_format=options.label_format,
                        ignore_index=options.ignore_index, flow_cache=cache,
                        overwrite=options.overwrite or options.resume)


def run_job(job: ClipJob, out_root: Path, options: BatchOptions) -> dict:
    """Run (or skip) one clip and return its report line; never raises, so one bad clip never stops a batch."""
    started = time.perf_counter()
    out = out_root / job.out_subdir
    try:
        stamp = fingerprint(job, options)
        manifest = complete_manifest(out, stamp) if options.resume else None
        if manifest is not None:
            return report_line(job, "skipped", manifest, 0.0)
        manifest = propagate_clip(job, out, options)
        if job.label_names is not None:
            publish_label_names(out, job.label_names)
        return report_line(job, "ok", seal(out, manifest, job, stamp), time.perf_counter() - started)
    except Exception as error:  # noqa: BLE001 - any failure is this clip's, reported with it
        return failed_line(job, error, time.perf_counter() - started)


def report_line(job: ClipJob, status: str, manifest: dict, seconds: float) -> dict:
    frames = manifest["frames"]
    mean = sum(frame["mean_confidence"] for frame in frames) / len(frames)
    return {"clip": job.name, "status": status, "frames": len(frames), "seconds": round(seconds, 2),
            "mean_confidence": round(mean, 4), "error": None}


def failed_line(job: ClipJob, error: Exception | str, seconds: float = 0.0) -> dict:
    message = str(error) if isinstance(error, (InputError, str)) else f"{type(error).__name__}: {error}"
    return {"clip": job.name, "status": "failed", "frames": None, "seconds": round(seconds, 2),
            "mean_confidence": None, "error": message}


# ------------------------------------------------------------------ backends


def run_in_process(jobs: list[ClipJob], out_root: Path, options: BatchOptions, on_done) -> None:
    for job in jobs:
        on_done(run_job(job, out_root, options))


def _start_worker(workers: int, batch_pid: int) -> None:
    """Split OpenCV's threads among the workers instead of each taking every core, and on Linux die
    with the batch: a worker orphaned by `kill -9 <batch>` must not go on writing a clip that the
    resumed batch redoes at the same time."""
    cv2.setNumThreads(max(1, (os.cpu_count() or 1) // workers))
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != batch_pid:  # the batch died before prctl took effect
            os._exit(1)


def run_in_processes(jobs: list[ClipJob], out_root: Path, options: BatchOptions, workers: int, on_done) -> None:
    # spawn, not fork: forking a process that already runs OpenCV/torch threads can deadlock the child.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(workers, os.getpid())) as pool:
        futures = {pool.submit(run_job, job, out_root, options): job for job in jobs}
        for future in as_completed(futures):
            try:
                line = future.result()
            except BrokenProcessPool:
                line = failed_line(futures[future], "a worker process died (killed, or out of memory?)")
            on_done(line)


def run_on_ray(jobs: list[ClipJob], out_root: Path, options: BatchOptions, address: str | None,
               local_cpus: int, on_done) -> None:
    """One Ray task per clip. Every node must see DATASET and OUT at the same paths and have autolabel installed."""
    try:
        import ray
    except ImportError:
        raise InputError("--backend ray", "ray is not installed (pip install ray)") from None
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=local_cpus, include_dashboard=False)
    try:
        remote_job = ray.remote(num_cpus=1)(run_job)
        pending = {remote_job.remote(job, out_root, options): job for job in jobs}
        while pending:
            [done], _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done)
            try:
                line = ray.get(done)
            except ray.exceptions.RayError as error:  # the task's worker or node died
                line = failed_line(job, f"ray: {error}")
            on_done(line)
    finally:
        ray.shutdown()


# ------------------------------------------------------------------ the whole batch


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' with 0 <= I < N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError("--shard", f"{text!r} is not I/N (e.g. 0/4)") from None
    if not 0 <= index < count:
        raise InputError("--shard", f"{text!r}: need 0 <= I < N")
    return index, count


def shard_of(jobs: list[ClipJob], index: int, count: int) -> list[ClipJob]:
    """Every count-th clip by sorted name, from the index-th: shards are disjoint, cover all clips, and
    hold equal numbers of clips (±1) no matter which machine computes them."""
    return sorted(jobs, key=lambda job: job.name)[index::count]


def holds_results(out: Path) -> bool:
    return any((out / name).exists() for name in RESULT_NAMES)


def write_report(path: Path, lines: list[dict]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("".join(json.dumps(line) + "\n" for line in sorted(lines, key=lambda line: line["clip"])))
    os.replace(temporary, path)


def results_table(lines: list[dict]) -> Table:
    table = Table(title="autolabel batch")
    for column in ("clip", "status", "frames", "seconds", "mean confidence", "error"):
        table.add_column(column, justify="right" if column in ("frames", "seconds", "mean confidence") else "left")
    colour = {"ok": "green", "skipped": "cyan", "failed": "red"}
    for line in sorted(lines, key=lambda line: line["clip"]):
        table.add_row(escape(line["clip"]), f"[{colour[line['status']]}]{line['status']}[/]",
                      str(line["frames"] or ""), f"{line['seconds']:.1f}",
                      "" if line["mean_confidence"] is None else f"{line['mean_confidence']:.3f}",
                      escape(line["error"] or ""))
    return table


def dry_run_table(jobs: list[ClipJob], out_root: Path, options: BatchOptions) -> Table:
    table = Table(title=f"autolabel batch --dry-run: {len(jobs)} clips")
    for column in ("clip", "frames", "keyframes", "out", "action"):
        table.add_column(column, justify="right" if column == "keyframes" else "left")
    for job in jobs:
        out = out_root / job.out_subdir
        frames = f"{len(job.frame_files)} frames in {job.video}" if job.frame_files is not None else str(job.video)
        try:
            count = str(len(keyframe_paths(job, options.keyframe_every)))
            complete = options.resume and complete_manifest(out, fingerprint(job, options)) is not None
            action = "skip (complete)" if complete else "redo" if holds_results(out) else "run"
        except (InputError, OSError, ValueError) as error:
            count, action = "?", f"[red]fails: {escape(str(error))}[/]"
        table.add_row(escape(job.name), escape(frames), count, escape(str(out)), action)
    return table


def run_batch(jobs: list[ClipJob], out_root: Path, options: BatchOptions, *, backend: str = "local",
              workers: int = 1, ray_address: str | None = None,
              on_done: Callable[[dict], None] = lambda line: None) -> list[dict]:
    """Run every job; returns one report line per clip, in the order they finished."""
    out_root.mkdir(parents=True, exist_ok=True)
    lines: list[dict] = []

    def done(line: dict) -> None:
        lines.append(line)
        on_done(line)

    if backend == "ray":
        run_on_ray(jobs, out_root, options, ray_address, workers, done)
    elif workers > 1 and len(jobs) > 1:
        run_in_processes(jobs, out_root, options, min(workers, len(jobs)), done)
    else:
        run_in_process(jobs, out_root, options, done)
    return lines


# ------------------------------------------------------------------ the command


LayoutName = Enum("LayoutName", {name: name for name in ("auto", *LAYOUTS)}, type=str)


class Backend(str, Enum):
    local = "local"
    ray = "ray"


def batch_command(
    dataset: Path = typer.Argument(..., help="Dataset folder, or a manifest file (CSV with header "
                                             "video,keyframes,out, or JSON lines with those keys)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: OUT/<clip>/labels, confidence, manifest.json, "
                                                      "and OUT/batch-report.jsonl."),
    layout: LayoutName = typer.Option(LayoutName.auto, "--layout",
                                      help="Dataset layout (default: detected). generic: <clip>/frames (or "
                                           "<clip>/video.mp4) + <clip>/labels; davis: JPEGImages/480p + "
                                           "Annotations/480p; cityscapes: leftImg8bit_sequence + gtFine; "
                                           "manifest: a CSV/JSON-lines file."),
    keyframe_every: Optional[int] = typer.Option(None, "--keyframe-every", min=1,
                                                 help="Use only labels at frame indices divisible by K as "
                                                      "keyframes (for densely labeled datasets)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1,
                             help="Clips run at once on this machine (with --backend ray and no cluster: "
                                  "the CPUs of the local Ray instance)."),
    shard: Optional[str] = typer.Option(None, "--shard",
                                        help="I/N: run only shard I (0-based) of N, the clips I, I+N, I+2N, … "
                                             "in sorted order; for job arrays over many machines."),
    backend: Backend = typer.Option(Backend.local, "--backend",
                                    help="local: processes on this machine; ray: one task per clip on a Ray "
                                         "cluster (needs the ray package)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address",
                                              help="Ray cluster to join (default: $RAY_ADDRESS, else a local "
                                                   "instance)."),
    resume: bool = typer.Option(False, "--resume",
                                help="Skip clips whose results are complete and were made from the same inputs "
                                     "and settings; redo the rest."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo clips that already have results in OUT."),
    flow_cache: Optional[Path] = typer.Option(None, "--flow-cache",
                                              help="Folder that keeps computed optical flow for reruns "
                                                   "(safe to share between jobs and machines)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would run, write nothing."),
    flow: FlowBackendName = FlowOption,
    flow_preset: FlowPreset = PresetOption,
    flow_scale: float = ScaleOption,
    fusion: Fusion = FusionOption,
    label_format: Optional[LabelKind] = LabelFormatOption,
    ignore_index: int = IgnoreIndexOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output or table."),
) -> None:
    """Propagate labels through every clip of a dataset, in parallel, resumable.

    Writes OUT/<clip>/ for every clip and OUT/batch-report.jsonl (one line per clip).
    Exit code 0 when every clip succeeded, 1 when some failed, 2 for bad usage.
    """
    dataset, out = dataset.absolute(), out.absolute()  # Ray workers run in other folders, maybe on other machines
    options = BatchOptions(make_settings(flow, flow_preset, flow_scale, fusion),
                           label_format.value if label_format else None, ignore_index, keyframe_every,
                           flow_cache.absolute() if flow_cache else None, overwrite, resume)
    try:
        shard_index = parse_shard(shard) if shard else None
        selected = select_clips(dataset, layout.value, shard_index)
        check_out(out, selected, may_replace=resume or overwrite)
    except InputError as error:
        fail(error)
    if dry_run:
        tables.print(dry_run_table(selected, out, options))
        return
    report = out / (REPORT if shard_index is None else f"batch-report-{shard_index[0]}-of-{shard_index[1]}.jsonl")
    lines = run_selected(selected, out, options, backend.value, jobs, ray_address, quiet)
    write_report(report, lines)
    if not quiet:
        tables.print(results_table(lines))
    counts = {status: sum(line["status"] == status for line in lines) for status in ("ok", "skipped", "failed")}
    console.print(f"{counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed; report: {report}",
                  highlight=False, markup=False)
    if counts["failed"]:
        raise typer.Exit(1)


def select_clips(dataset: Path, layout: str, shard: tuple[int, int] | None) -> list[ClipJob]:
    jobs = find_clips(dataset, layout)
    if not jobs:
        raise InputError(dataset, f"no clips found (layout {layout}); see --layout")
    return shard_of(jobs, *shard) if shard else jobs


def check_out(out: Path, jobs: list[ClipJob], may_replace: bool) -> None:
    """Refuse, before any work, to write into a file or over earlier results nobody asked to replace."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a folder")
    done_before = [] if may_replace else [job.name for job in jobs if holds_results(out / job.out_subdir)]
    if done_before:
        raise InputError(out, f"already holds results of {len(done_before)} clips ({', '.join(done_before[:3])}"
                              f"{', …' if len(done_before) > 3 else ''}); pass --resume to skip complete ones "
                              "or --overwrite to redo them")


def run_selected(jobs: list[ClipJob], out: Path, options: BatchOptions, backend: str, workers: int,
                 ray_address: str | None, quiet: bool) -> list[dict]:
    with Reporter("clips", quiet) as reporter:
        finished = 0

        def tick(line: dict) -> None:
            nonlocal finished
            finished += 1
            if line["status"] == "failed":
                console.print(f"failed: {line['clip']}: {line['error']}", highlight=False, markup=False)
            reporter.frames(finished, len(jobs))

        try:
            return run_batch(jobs, out, options, backend=backend, workers=workers, ray_address=ray_address,
                             on_done=tick)
        except InputError as error:  # the backend itself is unusable (ray missing)
            fail(error)


# Registered here rather than in cli.py: this module imports cli's options, so cli can only
# import it at its end, and this way `import autolabel.batch` works first too (worker processes, tests).
app.command("batch")(batch_command)
