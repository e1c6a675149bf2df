"""`autolabel batch`: the typer command over autolabel.datasets (clip finding, running, resume)."""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..datasets.batch import REPORT, parse_shard, run_batch, shard_of, write_report
from ..datasets.fingerprint import (BatchOptions, clip_state, complete_manifest, fingerprint, holds_results,
                                    keyframe_paths)
from ..datasets.layouts import LAYOUTS, ClipJob, find_clips, no_clips_message
from ..errors import InputError
from ..io.labels import read_color_table
from ..io.output import check_writable
from ..progress import Reporter, console, counted, tables
from .main import app
from .options import (AdaptOption, AdaptStepsOption, ColorTableOption, DeviceOption, FlowBackendName, FlowOption,
                     FlowPreset, Fusion, FusionOption, IgnoreIndexOption, LabelFormatOption, LabelKind, PresetOption,
                     RefineOption, RefinerOption, ScaleOption, command_line, fail, interrupted, make_refiner,
                     make_settings, refiner_spec)


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
    table = Table(title=f"autolabel batch --dry-run: {counted(len(jobs), 'clip')}")
    for column in ("clip", "frames", "keyframes", "out", "action"):
        table.add_column(column, justify="right" if column == "keyframes" else "left")
    for job in jobs:
        out = out_root / job.out_subdir
        frames = f"{counted(len(job.frame_files), 'frame')} in {job.video}" if job.frame_files is not None else str(job.video)
        try:
            count = str(len(keyframe_paths(job, options.keyframe_every)))
            complete = options.resume and complete_manifest(out, fingerprint(job, options)) is not None
            action = "skip (complete)" if complete else "redo" if holds_results(out) else "run"
        except (InputError, OSError, ValueError) as error:
            count, action = "?", f"[red]fails: {escape(str(error))}[/]"
        table.add_row(escape(job.name), escape(frames), count, escape(str(out)), action)
    return table


LayoutName = Enum("LayoutName", {name: name for name in ("auto", *LAYOUTS)}, type=str)


class Backend(str, Enum):
    local = "local"
    ray = "ray"


def batch_command(
    dataset: Path = typer.Argument(..., help="Dataset folder, or a manifest file (CSV with header "
                                             "video,keyframes,out, or JSON lines with those keys)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: OUT/<clip>/labels, confidence, manifest.json, "
                                                      "and OUT/batch-report.jsonl."),
    layout: LayoutName = typer.Option(LayoutName.auto, "--layout", metavar="<layout>",  # too long to show whole
                                      help="Dataset layout, one of: auto (detect it); generic: <clip>/frames (or "
                                           "<clip>/video.mp4) + <clip>/labels; davis: JPEGImages/480p + "
                                           "Annotations/480p; cityscapes: leftImg8bit_sequence + gtFine; "
                                           "manifest: a CSV/JSON-lines file."),
    keyframe_every: Optional[int] = typer.Option(None, "--keyframe-every", min=1,
                                                 help="Use only labels at frame indices divisible by K as "
                                                      "keyframes (for densely labeled datasets)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1,
                             help="Clips run at once on this machine (with --backend ray and no cluster: "
                                  "the CPUs of the local Ray instance)."),
    shard: Optional[str] = typer.Option(None, "--shard", metavar="<I/N>",
                                        help="I/N: run only shard I (0-based) of N, the clips I, I+N, I+2N, … "
                                             "in sorted order; for job arrays over many machines."),
    backend: Backend = typer.Option(Backend.local, "--backend",
                                    help="local: processes on this machine; ray: one task per clip on a Ray "
                                         "cluster (needs the ray package)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", metavar="<address>",
                                              help="Ray cluster to join (default: $RAY_ADDRESS, else a local "
                                                   "instance)."),
    resume: bool = typer.Option(False, "--resume",
                                help="Skip clips whose results are complete and were made from the same inputs "
                                     "and settings; redo the rest (a clip whose keyframes changed as `propagate "
                                     "--update` does: only the segments they touch)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo clips that already have results in OUT."),
    flow_cache: Optional[Path] = typer.Option(None, "--flow-cache",
                                              help="Folder that keeps computed optical flow for reruns "
                                                   "(safe to share between jobs and machines)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would run, write nothing."),
    check: bool = typer.Option(False, "--check",
                               help="Write nothing; exit 0 when every clip's results in OUT are complete and made "
                                    "from its current inputs and these settings (what --resume would skip), "
                                    "else 1, listing the stale clips. For CI jobs that regenerate labels."),
    as_json: bool = typer.Option(False, "--json", help="With --check: one JSON line per clip."),
    flow: FlowBackendName = FlowOption,
    flow_preset: FlowPreset = PresetOption,
    flow_scale: float = ScaleOption,
    fusion: Fusion = FusionOption,
    label_format: Optional[LabelKind] = LabelFormatOption,
    ignore_index: int = IgnoreIndexOption,
    color_table: Optional[Path] = ColorTableOption,
    refine: bool = RefineOption,
    refiner_path: str = RefinerOption,
    adapt: bool = AdaptOption,
    adapt_steps: Optional[int] = AdaptStepsOption,
    device: str = DeviceOption,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, show_default="every core / --jobs",
                                          help="CPU threads for each clip (flow both ways at once from 2); "
                                               "results do not depend on it."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output or table."),
) -> None:
    """Propagate labels through every clip of a dataset, in parallel, resumable.

    Writes OUT/<clip>/ for every clip and OUT/batch-report.jsonl (one line per clip).
    Exit code 0 when every clip succeeded, 1 when some failed, 2 for bad usage.
    """
    dataset, out = dataset.absolute(), out.absolute()  # Ray workers run in other folders, maybe on other machines
    options = BatchOptions(make_settings(flow, flow_preset, flow_scale, fusion),
                           label_format.value if label_format else None, ignore_index, keyframe_every,
                           flow_cache.absolute() if flow_cache else None, overwrite, resume,
                           refine=refine, refiner=refiner_spec(refiner_path), adapt=adapt, device=device,
                           adapt_steps=adapt_steps,
                           command=command_line(), threads=threads,
                           color_table=color_table.absolute() if color_table else None)
    try:
        make_refiner(refine, refiner_path, adapt, device, adapt_steps)  # bad weights or device: before any work
        if color_table is not None:
            read_color_table(color_table)  # a missing or bad table: before any work, not once per clip
        shard_index = parse_shard(shard) if shard else None
        selected = select_clips(dataset, layout.value, shard_index)
        if as_json and not check:
            raise InputError("--json", "only applies to --check")
        if check:
            check_clips(selected, out, options, as_json)
        check_out(out, selected, may_replace=resume or overwrite)
    except InputError as error:
        fail(error)
    if dry_run:
        tables.print(dry_run_table(selected, out, options))
        return
    report = out / (REPORT if shard_index is None else f"batch-report-{shard_index[0]}-of-{shard_index[1]}.jsonl")
    try:
        lines = run_selected(selected, out, options, backend.value, jobs, ray_address, quiet)
    except KeyboardInterrupt:
        interrupted("clips finished before are kept (--resume skips them); the clip in progress is discarded")
    write_report(report, lines)
    if not quiet:
        tables.print(results_table(lines))
    counts = {status: sum(line["status"] == status for line in lines) for status in ("ok", "skipped", "failed")}
    console.print(f"{counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed; report: {report}",
                  highlight=False, markup=False)
    if counts["failed"]:
        raise typer.Exit(1)


def check_clips(jobs: list[ClipJob], out: Path, options: BatchOptions, as_json: bool) -> None:
    """`--check`: report every clip's state and exit 0 when all are current, else 1."""
    states = [clip_state(job, out, options) for job in jobs]
    if as_json:
        for state in states:
            typer.echo(json.dumps(state))
    else:
        table = Table(title=f"autolabel batch --check: {out}")
        for column in ("clip", "state", "reason"):
            table.add_column(column)
        colour = {"current": "green", "stale": "red", "missing": "red"}
        for state in states:
            table.add_row(escape(state["clip"]), f"[{colour[state['state']]}]{state['state']}[/]",
                          escape(state["reason"] or ""))
        tables.print(table)
    by_state = {name: [state["clip"] for state in states if state["state"] == name]
                for name in ("current", "stale", "missing")}
    if not as_json:
        listed = "; ".join(f"{name}: {', '.join(by_state[name])}" for name in ("stale", "missing") if by_state[name])
        console.print(", ".join(f"{len(clips)} {name}" for name, clips in by_state.items())
                      + (f" ({listed})" if listed else ""), highlight=False, markup=False)
    raise typer.Exit(1 if by_state["stale"] or by_state["missing"] else 0)


def select_clips(dataset: Path, layout: str, shard: tuple[int, int] | None) -> list[ClipJob]:
    jobs = find_clips(dataset, layout)
    if not jobs:
        raise InputError(dataset, no_clips_message(layout))
    return shard_of(jobs, *shard) if shard else jobs


def check_out(out: Path, jobs: list[ClipJob], may_replace: bool) -> None:
    """Refuse, before any work, to write into a file or over earlier results nobody asked to replace."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a folder")
    check_writable(out)
    done_before = [] if may_replace else [job.name for job in jobs if holds_results(out / job.out_subdir)]
    if done_before:
        raise InputError(out, f"already holds results of {counted(len(done_before), 'clip')} ({', '.join(done_before[:3])}"
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


app.command("batch")(batch_command)
