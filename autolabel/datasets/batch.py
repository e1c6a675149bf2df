"""Running `autolabel batch`'s clips: one clip (`run_job`), and many in this process, in a
process pool or on Ray (`run_batch`); shards, and the report file.

Whether a clip is complete, and its fingerprint, are in fingerprint.py; the typer
command is in autolabel/cli/batch.py.
"""
from __future__ import annotations

import ctypes
import dataclasses
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable

from ..core.flow import cores
from ..errors import InputError, describe, writing
from ..io.output import run_clip
from .fingerprint import BatchOptions, complete_manifest, fingerprint, fingerprint_document, keyframe_paths, seal
from .flowcache import FlowCache
from .layouts import ClipJob, LabelNames

REPORT = "batch-report.jsonl"
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


# ------------------------------------------------------------------ one clip


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


def scratch_prefix() -> str:
    """Scratch folders are named by host and process, so a later run can tell whose they are."""
    return f"autolabel-batch-{socket.gethostname()}-{os.getpid()}-"


def remove_stale_scratch() -> None:
    """Remove the scratch folders of this host's batch processes that are gone (killed by SIGKILL,
    so their own cleanup never ran); a folder whose process still runs, or of another host, stays."""
    this_host = re.compile(re.escape(f"autolabel-batch-{socket.gethostname()}-") + r"(\d+)-[a-z0-9_]+")
    for folder in Path(tempfile.gettempdir()).glob("autolabel-batch-*"):
        owner = this_host.fullmatch(folder.name)
        if owner and not _process_exists(int(owner[1])):
            shutil.rmtree(folder, ignore_errors=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def propagate_clip(job: ClipJob, out: Path, options: BatchOptions) -> dict:
    remove_stale_scratch()
    with tempfile.TemporaryDirectory(prefix=scratch_prefix()) as scratch:
        video = job.video if job.frame_files is None else frames_view(job.frame_files, Path(scratch) / "frames")
        keyframes = keyframe_paths(job, options.keyframe_every)
        cache = FlowCache(options.flow_cache) if options.flow_cache is not None else None
        refiner = None
        if options.refine:
            from ..refiner.load import load_refiner  # here: geometry alone never imports the refiner

            refiner = load_refiner(options.refiner, options.adapt, options.device, options.adapt_steps)
        return run_clip(video, keyframes, out, settings=options.settings, label_format=options.label_format,
                        ignore_index=options.ignore_index, color_table=options.color_table, flow_cache=cache,
                        refiner=refiner, command=options.command,
                        overwrite=options.overwrite or options.resume, threads=options.threads,
                        update=options.resume)  # a clip whose keyframes changed: only what they touch is redone


def run_job(job: ClipJob, out_root: Path, options: BatchOptions) -> dict:
    """Run (or skip) one clip and return its report line; never raises, so one bad clip never stops a batch."""
    started = time.perf_counter()
    out = out_root / job.out_subdir
    try:
        document = fingerprint_document(job, options)
        stamp = fingerprint(job, options)
        manifest = complete_manifest(out, stamp) if options.resume else None
        if manifest is not None:
            return report_line(job, "skipped", manifest, 0.0)
        manifest = propagate_clip(job, out, options)
        if job.label_names is not None:
            publish_label_names(out, job.label_names)
        return report_line(job, "ok", seal(out, manifest, job, stamp, document), time.perf_counter() - started)
    except Exception as error:  # noqa: BLE001 - any failure is this clip's, reported with it
        return failed_line(job, error, time.perf_counter() - started)


def report_line(job: ClipJob, status: str, manifest: dict, seconds: float) -> dict:
    frames = manifest["frames"]
    mean = sum(frame["mean_confidence"] for frame in frames) / len(frames)
    return {"clip": job.name, "status": status, "frames": len(frames), "seconds": round(seconds, 2),
            "mean_confidence": round(mean, 4), "error": None}


def failed_line(job: ClipJob, error: Exception | str, seconds: float = 0.0) -> dict:
    message = error if isinstance(error, str) else describe(error)  # the line a command would print
    return {"clip": job.name, "status": "failed", "frames": None, "seconds": round(seconds, 2),
            "mean_confidence": None, "error": message}


# ------------------------------------------------------------------ backends


def run_in_process(jobs: list[ClipJob], out_root: Path, options: BatchOptions, on_done) -> None:
    for job in jobs:
        on_done(run_job(job, out_root, options))


def _start_worker(batch_pid: int) -> None:
    """On Linux, die with the batch: a worker orphaned by `kill -9 <batch>` must not go on writing a
    clip that the resumed batch redoes at the same time."""
    signal.signal(signal.SIGINT, _interrupt_worker)
    signal.signal(signal.SIGTERM, _interrupt_worker)  # a whole process group terminated (a CI job cancelled)
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != batch_pid:  # the batch died before prctl took effect
            os._exit(1)


_running_clip = False  # in a worker process: whether run_job is running now
_interrupted = False   # in a worker process: Ctrl-C came


def _interrupt_worker(signum, frame) -> None:
    """Ctrl-C in a worker: a running clip unwinds (run_clip removes what it staged), and no other
    clip starts. The worker itself stays until the pool shuts down: one that exits breaks the pool,
    which then kills the others in the middle of cleaning up."""
    global _interrupted
    first = not _interrupted
    _interrupted = True
    if _running_clip and first:  # a second Ctrl-C (the batch forwards one) must not cut the unwinding short
        raise KeyboardInterrupt


def _run_job_in_worker(job: ClipJob, out_root: Path, options: BatchOptions) -> dict:
    global _running_clip
    if _interrupted:
        return failed_line(job, "interrupted")
    _running_clip = True
    try:
        return run_job(job, out_root, options)
    except KeyboardInterrupt:
        return failed_line(job, "interrupted")
    finally:
        _running_clip = False


def run_in_processes(jobs: list[ClipJob], out_root: Path, options: BatchOptions, workers: int, on_done) -> None:
    # spawn, not fork: forking a process that already runs OpenCV/torch threads can deadlock the child.
    context = multiprocessing.get_context("spawn")
    # Split the cores among the workers instead of each taking every core.
    options = dataclasses.replace(options, threads=options.threads or max(1, cores() // workers))
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(os.getpid(),)) as pool:
        # Workers start (on submit) ignoring Ctrl-C until their initializer installs _interrupt_worker.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            futures = {pool.submit(_run_job_in_worker, job, out_root, options): job for job in jobs}
        finally:
            signal.signal(signal.SIGINT, previous)
        try:
            for future in as_completed(futures):
                try:
                    line = future.result()
                except BrokenProcessPool:
                    line = failed_line(futures[future], "a worker process died (killed, or out of memory?)")
                on_done(line)
        except KeyboardInterrupt:  # stop now: no queued clip starts, running ones unwind
            for worker in multiprocessing.active_children():
                os.kill(worker.pid, signal.SIGINT)  # a terminal's Ctrl-C reached them already; `kill -INT` did not
            pool.shutdown(wait=True, cancel_futures=True)  # waits for the running clips to unwind
            raise


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
        remote_job = ray.remote(num_cpus=1, num_gpus=ray_gpus_per_task(options, ray.cluster_resources()))(run_job)
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


def ray_gpus_per_task(options: BatchOptions, resources: dict) -> float:
    """A clip's task asks Ray for one GPU when its refiner's networks would run on CUDA: `--device cuda…`,
    or `auto` on a cluster that has GPUs. Geometry alone and the classic refiner never use one."""
    from ..refiner.load import is_classic

    if not options.refine or is_classic(options.refiner) or options.device == "cpu":
        return 0
    return 1 if options.device.startswith("cuda") or resources.get("GPU", 0) > 0 else 0


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


def write_report(path: Path, lines: list[dict]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with writing(path):
        temporary.write_text("".join(json.dumps(line) + "\n" for line in sorted(lines, key=lambda line: line["clip"])))
    os.replace(temporary, path)


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
