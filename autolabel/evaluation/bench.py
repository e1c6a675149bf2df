"""`autolabel bench`: quality and speed of the whole pipeline on densely labeled clips.

Speed is what a user pays, as a ratio to a floor measured in the same run (this kind of
machine is shared and noisy; ratios hold up better than seconds):

* the floor is the fastest plain way to get the same flows: a loop that decodes each frame
  and computes both flows of each neighbouring pair, either one direction after the other
  (each on the flow backend's own threads) or the two at once on two threads, whichever is
  faster in this run;
* the total is the wall time of the `autolabel propagate` command, run as a subprocess:
  start-up and imports, reading, flow, warping, fusing, writing every PNG and the manifest.
  Its peak resident memory comes from the operating system (wait4).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..core.flow import BACKENDS, to_gray, use_threads
from ..core.pipeline import Settings
from ..errors import InputError
from ..io.frames import FrameSource
from ..io.keyframes import find_keyframes
from .evaluate import evaluate


def flow_alone_seconds(source: FrameSource, settings: Settings, threads: int = 1) -> tuple[float, float]:
    """Decode every frame and compute both flows of every neighbouring pair, nothing else: the
    two directions one after the other (threads=1, each on the backend's own threads) or at
    once on two threads (threads=2). OpenCV's own thread count is the caller's (`use_threads`).
    Returns (wall seconds, CPU seconds of this process)."""
    forward, backward = (BACKENDS[settings.flow](settings.flow_preset) for _ in range(2))
    with ThreadPoolExecutor(1) as helper:
        started, cpu_started = time.perf_counter(), time.process_time()
        previous = to_gray(source.read(0), settings.flow_scale)
        for index in range(1, len(source)):
            gray = to_gray(source.read(index), settings.flow_scale)
            if threads == 2:
                other = helper.submit(backward, gray, previous)
                forward(previous, gray)
                other.result()
            else:
                forward(previous, gray)
                backward(gray, previous)
            previous = gray
        return time.perf_counter() - started, time.process_time() - cpu_started


def flow_floor_seconds(source: FrameSource, settings: Settings, threads: int | None = None) -> dict[str, float]:
    """Both plain ways to get the flows with `threads` threads (None: every core), timed; the floor is
    the faster (which one wins depends on the machine and its load: on 2 shared cores we have seen
    either). With one thread there is one way: one direction after the other."""
    threads = use_threads(threads)
    runs = {"one_loop": flow_alone_seconds(source, settings, 1)}
    if threads > 1:
        runs["two_threads"] = flow_alone_seconds(source, settings, 2)
    fastest = min(runs, key=lambda way: runs[way][0])
    return {**{way: wall for way, (wall, _) in runs.items()}, "floor": runs[fastest][0],
            "floor_cpu": runs[fastest][1], "threads": threads}


def propagate_command(video: Path, keyframes: Path, out: Path, settings: Settings, refiner=None,
                      threads: int | None = None) -> list[str]:
    """The `autolabel propagate` command line for these settings (same Python, same autolabel)."""
    command = [sys.executable, "-m", "autolabel", "propagate", "--video", str(video), "--keyframes", str(keyframes),
               "--out", str(out), "--quiet", "--flow", settings.flow, "--flow-preset", settings.flow_preset,
               "--flow-scale", str(settings.flow_scale), "--fusion", settings.fusion]
    if threads is not None:
        command += ["--threads", str(threads)]
    if refiner is None:
        command += ["--no-refine"]
    else:
        command += ["--refiner", str(refiner.path)] + ([] if refiner.adapt else ["--no-adapt"])
        if hasattr(refiner, "device"):   # a refiner with networks
            command += ["--device", str(refiner.device), "--adapt-steps", str(refiner.steps)]
    return command


def run_measured(command: list[str]) -> tuple[float, float, float]:
    """(wall seconds, peak resident MB, CPU seconds) of a command; its output is shown only if it fails."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{output.decode(errors='replace')}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def _warm_file_cache(path: Path) -> None:
    for file in sorted(path.iterdir()) if path.is_dir() else [path]:
        file.read_bytes()


def clip_paths(clip: Path) -> tuple[Path, Path]:
    """(frames, labels) of a clip in the generic layout: <clip>/frames (or video.mp4) and <clip>/labels."""
    frames = clip / "frames"
    if not frames.exists():
        videos = sorted(clip.glob("video.*"))
        frames = videos[0] if videos else frames
    labels = clip / "labels"
    for path in (frames, labels):
        if not path.exists():
            raise InputError(path, "missing: a benchmark clip needs frames/ (or video.mp4) and labels/")
    return frames, labels


def bench_clip(clip: str | Path, keyframe_every: int = 10, settings: Settings = Settings(),
               refiner=None, threads: int | None = None) -> dict:
    """Propagate from every `keyframe_every`-th label of a densely labeled clip and score the rest,
    the command and the flow floor both on `threads` threads (None: every core)."""
    clip = Path(clip)
    frames, labels = clip_paths(clip)
    source = FrameSource(frames)
    all_labels = find_keyframes(labels, source.stems)
    _warm_file_cache(frames)  # so neither timed run pays for a cold disk
    floors = flow_floor_seconds(source, settings, threads)
    flow_seconds = floors["floor"]
    with tempfile.TemporaryDirectory(prefix="autolabel-bench-") as scratch:
        keyframes, out = Path(scratch) / "keyframes", Path(scratch) / "out"
        keyframes.mkdir()
        for index, path in all_labels.items():
            if index % keyframe_every == 0:
                (keyframes / path.name).symlink_to(path.resolve())
        total_seconds, peak_mb, cpu_seconds = run_measured(propagate_command(frames, keyframes, out, settings, refiner,
                                                                             threads))
        report = evaluate(out / "labels", labels, keyframes_dir=keyframes, confidence_dir=out / "confidence",
                          manifest_path=out / "manifest.json")
        stages = json.loads((out / "manifest.json").read_text())["timings"]
    return {
        "clip": clip.name, "frames": len(source), "size": f"{source.width}x{source.height}",
        "keyframe_every": keyframe_every, "metric": report["metric"], "score": report["score"],
        "boundary_f": report["boundary_f"], "ece": report["ece"],
        "errors_in_least_confident_5": report["errors_in_least_confident_5"],
        "refiner": getattr(refiner, "name", None), "device": str(getattr(refiner, "device", "cpu")),
        "flow_alone_s": round(flow_seconds, 2), "flow_one_loop_s": round(floors["one_loop"], 2),
        "flow_two_threads_s": round(floors["two_threads"], 2) if "two_threads" in floors else None,
        "threads": floors["threads"], "total_s": round(total_seconds, 2),
        "startup_s": round(total_seconds - stages["total"], 2),
        "ratio_to_flow": round(total_seconds / flow_seconds, 2),
        # CPU time depends less on what else the machine runs than wall time does.
        "cpu_s": round(cpu_seconds, 2), "flow_alone_cpu_s": round(floors["floor_cpu"], 2),
        "cpu_ratio_to_flow": round(cpu_seconds / floors["floor_cpu"], 2),
        "fps": round(len(source) / total_seconds, 2), "peak_memory_mb": round(peak_mb),
        "stages_s": stages, "by_distance": report["by_distance"],
    }


def expand_clips(paths: list[Path]) -> list[Path]:
    """Clips as given, or the clips inside a folder of clips, sorted by name."""
    clips = []
    for path in map(Path, paths):
        if (path / "labels").is_dir():
            clips.append(path)
        elif path.is_dir() and any((child / "labels").is_dir() for child in path.iterdir()):
            clips += sorted(child for child in path.iterdir() if (child / "labels").is_dir())
        else:
            raise InputError(path, "not a clip (<clip>/frames + <clip>/labels) or a folder of clips")
    return clips


def low_confidence_errors(result: dict) -> str:
    """A bench result's share of wrong pixels in the least-confident 5 %, in percent, or a dash."""
    share = result.get("errors_in_least_confident_5")
    return "—" if share is None else f"{100 * share:.1f}"


def results_table(results: list[dict], settings: Settings, refiner=None):
    from rich.table import Table

    table = Table(title=f"autolabel bench (flow {settings.flow}/{settings.flow_preset}, scale {settings.flow_scale}, "
                        f"fusion {settings.fusion}, refiner {getattr(refiner, 'name', 'none')}, keyframes every {results[0]['keyframe_every'] if results else '?'})")
    for column in ("clip", "size", "frames", "score", "boundary F", "ECE", "errors in least-confident 5 %",
                   "flow alone s", "command s", "command/flow", "fps", "peak RSS MB", "device"):
        table.add_column(column, justify="left" if column == "clip" else "right")
    for r in results:
        table.add_row(r["clip"], r["size"], str(r["frames"]), f"{r['metric']} {r['score']:.1f}",
                      f"{r['boundary_f']:.1f}", f"{r['ece']:.3f}", low_confidence_errors(r), f"{r['flow_alone_s']:.1f}",
                      f"{r['total_s']:.1f}", f"{r['ratio_to_flow']:.2f}", f"{r['fps']:.1f}", str(r["peak_memory_mb"]),
                      r["device"])
    if len(results) > 1:
        mean = lambda key: sum(r[key] for r in results if r[key] is not None) / max(1, sum(r[key] is not None for r in results))  # noqa: E731
        table.add_row("mean", "", "", f"{mean('score'):.1f}", f"{mean('boundary_f'):.1f}", f"{mean('ece'):.3f}",
                      f"{100 * mean('errors_in_least_confident_5'):.1f}", "", "", f"{mean('ratio_to_flow'):.2f}", "",
                      "", "", style="bold")
    return table


STAGES = ("read", "flow", "warp", "fuse", "learn", "refine", "write")


def stages_table(results: list[dict]):
    """Seconds per stage of each command, as its manifest timed them. Flow, reading and writing run on
    threads of their own, beside warp, fuse and refine: the stages add up to more than the command.
    Start-up is the rest of the command's wall time: imports, reading keyframes, the manifest."""
    from rich.table import Table

    table = Table(title=f"autolabel bench: seconds per stage ({results[0]['threads']} threads)")
    stages = [stage for stage in STAGES if any(stage in r["stages_s"] for r in results)]
    for column in ("clip", "flow alone", "command", *stages, "start-up", "CPU command/flow"):
        table.add_column(column, justify="left" if column == "clip" else "right")
    for r in results:
        table.add_row(r["clip"], f"{r['flow_alone_s']:.2f}", f"{r['total_s']:.2f}",
                      *(f"{r['stages_s'].get(stage, 0):.2f}" for stage in stages), f"{r['startup_s']:.2f}",
                      f"{r['cpu_ratio_to_flow']:.2f}")
    return table


def bench_long_clip(n_frames: int, width: int, height: int, keyframe_every: int, n_classes: int = 19,
                    settings: Settings = Settings(), refiner=None, on_frame=lambda done, total: None,
                    threads: int | None = None) -> dict:
    """Speed, and this process's peak memory, on a generated clip of any length with `n_classes`
    classes in every keyframe (nothing written to disk)."""
    from ..core.pipeline import ClassSet, Propagator
    from ..synth import LongClip

    clip = LongClip(n_frames, height, width, n_classes=n_classes)
    keyframes = list(range(0, n_frames, keyframe_every))
    classes = ClassSet(range(n_classes), None)
    propagator = Propagator(clip, clip.label, keyframes, classes, settings, refiner, threads=threads)
    correct = total = 0
    started = time.perf_counter()
    for done, result in enumerate(propagator.run(), 1):
        if not result.is_keyframe:
            correct += int((classes.to_ids(result.channels) == clip.label(result.index)).sum())
            total += result.channels.size
        on_frame(done, n_frames)
    seconds = time.perf_counter() - started
    return {"frames": n_frames, "size": f"{width}x{height}", "keyframe_every": keyframe_every,
            "classes": n_classes, "refiner": getattr(refiner, "name", None),
            "pixel_accuracy": round(100 * correct / max(total, 1), 2), "seconds": round(seconds, 1),
            "fps": round(n_frames / seconds, 2),
            "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "stages_s": {k: round(v, 2) for k, v in propagator.timer.seconds.items()}}
