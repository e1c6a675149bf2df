"""`autolabel bench`: quality and speed of the whole pipeline on densely labeled clips.

Speed is reported as a ratio to the optical flow alone, measured in the same
process right before the pipeline, because this kind of machine is shared and
noisy while ratios hold up.
"""
from __future__ import annotations

import os

import numpy as np
import tempfile
import threading
import time
from pathlib import Path

from ..core.flow import FlowEstimator, flow_pairs
from ..core.pipeline import Settings
from ..errors import InputError
from ..io.frames import FrameSource
from ..io.keyframes import find_keyframes
from ..io.output import run_clip
from .evaluate import evaluate


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakMemory:
    """Peak resident memory (MB) while the block runs, sampled every 20 ms."""

    def __enter__(self) -> "PeakMemory":
        self.peak_mb = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_mb = max(self.peak_mb, _rss_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_mb())


def flow_alone_seconds(source: FrameSource, settings: Settings) -> float:
    """Decode every frame and compute both flows of every neighbouring pair, nothing else."""
    estimator = FlowEstimator(settings.flow, settings.flow_preset, settings.flow_scale)
    started = time.perf_counter()
    for _ in flow_pairs(source.read, range(len(source) - 1), estimator):
        pass
    return time.perf_counter() - started


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
               refiner=None) -> dict:
    """Propagate from every `keyframe_every`-th label of a densely labeled clip and score the rest."""
    clip = Path(clip)
    frames, labels = clip_paths(clip)
    source = FrameSource(frames)
    all_labels = find_keyframes(labels, source.stems)
    keyframes = {i: path for i, path in all_labels.items() if i % keyframe_every == 0}
    _warm_file_cache(frames)  # so neither timed pass pays for a cold disk
    with tempfile.TemporaryDirectory(prefix="autolabel-bench-") as scratch:
        out = Path(scratch) / "out"
        with PeakMemory() as memory:
            started = time.perf_counter()
            manifest = run_clip(frames, keyframes, out, settings=settings, refiner=refiner)
            total_seconds = time.perf_counter() - started
        report = evaluate(out / "labels", labels, confidence_dir=out / "confidence",
                          manifest_path=out / "manifest.json")
    # After the pipeline, so that if anything the flow runs with warmer file caches.
    flow_seconds = flow_alone_seconds(source, settings)
    return {
        "clip": clip.name, "frames": len(source), "size": f"{source.width}x{source.height}",
        "keyframe_every": keyframe_every, "metric": report["metric"], "score": report["score"],
        "boundary_f": report["boundary_f"], "ece": report["ece"],
        "flow_alone_s": round(flow_seconds, 2), "total_s": round(total_seconds, 2),
        "ratio_to_flow": round(total_seconds / flow_seconds, 2),
        "fps": round(len(source) / total_seconds, 2), "peak_memory_mb": round(memory.peak_mb),
        "stages_s": manifest["timings"], "by_distance": report["by_distance"],
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


def results_table(results: list[dict], settings: Settings, refiner=None):
    from rich.table import Table

    table = Table(title=f"autolabel bench (flow {settings.flow}/{settings.flow_preset}, scale {settings.flow_scale}, "
                        f"fusion {settings.fusion}, refiner {getattr(refiner, 'name', 'none')}, keyframes every {results[0]['keyframe_every'] if results else '?'})")
    for column in ("clip", "size", "frames", "score", "boundary F", "ECE", "flow alone s", "total s",
                   "total/flow", "fps", "peak RSS MB"):
        table.add_column(column, justify="left" if column == "clip" else "right")
    for r in results:
        table.add_row(r["clip"], r["size"], str(r["frames"]), f"{r['metric']} {r['score']:.1f}",
                      f"{r['boundary_f']:.1f}", f"{r['ece']:.3f}", f"{r['flow_alone_s']:.1f}", f"{r['total_s']:.1f}",
                      f"{r['ratio_to_flow']:.2f}", f"{r['fps']:.1f}", str(r["peak_memory_mb"]))
    if len(results) > 1:
        mean = lambda key: sum(r[key] for r in results) / len(results)  # noqa: E731
        table.add_row("mean", "", "", f"{mean('score'):.1f}", f"{mean('boundary_f'):.1f}", f"{mean('ece'):.3f}",
                      "", "", f"{mean('ratio_to_flow'):.2f}", "", "", style="bold")
    return table


def bench_long_clip(n_frames: int, width: int, height: int, keyframe_every: int,
                    settings: Settings = Settings(), refiner=None, on_frame=lambda done, total: None) -> dict:
    """Peak memory and speed on a generated clip of any length (nothing written to disk)."""
    from ..core.pipeline import ClassSet, Propagator
    from .synth import LongClip

    clip = LongClip(n_frames, height, width)
    keyframes = list(range(0, n_frames, keyframe_every))
    classes = ClassSet.from_labels([clip.label(k) for k in keyframes[:3]] + [np.arange(4)], None)
    propagator = Propagator(clip, clip.label, keyframes, classes, settings, refiner)
    correct = total = 0
    with PeakMemory() as memory:
        started = time.perf_counter()
        for done, result in enumerate(propagator.run(), 1):
            if not result.is_keyframe:
                correct += int((classes.to_ids(result.channels) == clip.label(result.index)).sum())
                total += result.channels.size
            on_frame(done, n_frames)
        seconds = time.perf_counter() - started
    return {"frames": n_frames, "size": f"{width}x{height}", "keyframe_every": keyframe_every,
            "pixel_accuracy": round(100 * correct / max(total, 1), 2), "seconds": round(seconds, 1),
            "fps": round(n_frames / seconds, 2), "peak_memory_mb": round(memory.peak_mb),
            "stages_s": {k: round(v, 2) for k, v in propagator.timer.seconds.items()}}
