"""Does `suggest` place keyframes better than uniform spacing? A per-clip table on densely labeled clips.

    python -m autolabel.loop.suggest_bench CLIP... [--flow-cache DIR] [--json FILE]

For each clip and each spacing S (30 and 10), the keyframe budget N is that of every S-th
frame from frame 0; plans with N keyframes:
  uniform   every S-th frame from 0
  centred   the centres of N equal parts of the clip
  suggest   `suggest --budget N`
and, on top of the uniform-30 keyframes, 3 more frames:
  +gaps     the midpoints of the 3 longest gaps (the clip's ends count as gap ends)
  +add      `suggest --add 3`, from the uniform-30 propagation's confidence.
Each plan is propagated with `propagate` defaults (geometric: no refiner) and scored
on its own non-keyframes. Flows go through one cache, so each is computed once.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from ..core.flow import FlowEstimator
from ..core.pipeline import Settings
from ..datasets.flowcache import FlowCache
from ..io.frames import FrameSource
from ..io.keyframes import find_keyframes
from ..evaluation.bench import clip_paths
from ..evaluation.evaluate import evaluate, read_confidence
from .suggest import add_keyframes, centred, choose_keyframes, scan_clip

SPACINGS = (30, 10)
ADDED = 3


def uniform(n: int, spacing: int) -> list[int]:
    return list(range(0, n, spacing))


def gap_midpoints(n: int, keyframes: list[int], count: int) -> list[int]:
    """`count` frames, each the midpoint of the longest gap left (the clip's ends close the end gaps):
    the midpoints of the `count` longest gaps, splitting a gap again when there are fewer gaps."""
    keys = sorted(keyframes)
    added: list[int] = []
    for _ in range(count):
        bounds = ([(-1, keys[0])] if keys[0] > 0 else []) + list(zip(keys, keys[1:]))
        if keys[-1] < n - 1:
            bounds.append((keys[-1], n))
        a, b = min(bounds, key=lambda ab: (ab[0] - ab[1], ab[0]))
        added.append((a + b) // 2)
        keys = sorted(keys + [added[-1]])
    return sorted(added)


def score_plan(frames: Path, labels: Path, stems: list[str], keyframes: list[int], cache: FlowCache,
               out: Path | None = None) -> float:
    """J (or mIoU) of propagating these keyframes, on the plan's own non-keyframes."""
    from ..io.output import run_clip

    all_labels = find_keyframes(labels, stems)
    with tempfile.TemporaryDirectory(prefix="suggest-bench-") as scratch:
        out = out or Path(scratch) / "out"
        keys = Path(scratch) / "keys"
        keys.mkdir()
        for k in keyframes:
            (keys / all_labels[k].name).symlink_to(all_labels[k].resolve())
        run_clip(frames, {k: all_labels[k] for k in keyframes}, out, settings=Settings(), flow_cache=cache)
        return float(evaluate(out / "labels", labels, keyframes_dir=keys)["score"])


def compare(clip: Path, cache: FlowCache, log=print) -> dict:
    frames, labels = clip_paths(Path(clip))
    source = FrameSource(frames)
    n = len(source)
    scan = scan_clip(source, FlowEstimator(cache=cache))
    positions = scan.positions()
    row: dict = {"clip": Path(clip).name, "frames": n, "plans": {}}

    def run(name, keys, out=None):
        keys = sorted(set(keys))
        score = score_plan(frames, labels, source.stems, keys, cache, out)
        row["plans"][name] = {"keyframes": keys, "score": round(score, 2)}
        log(f"{row['clip']}: {name:12s} {score:6.2f}  {keys}")

    with tempfile.TemporaryDirectory(prefix="suggest-bench-") as scratch:
        base_out = Path(scratch) / "uniform30"
        for spacing in SPACINGS:
            count = len(uniform(n, spacing))
            run(f"uniform{spacing}", uniform(n, spacing), base_out if spacing == 30 else None)
            run(f"centred{spacing}", centred(n, count))
            run(f"suggest{spacing}", choose_keyframes(scan, count)[0])
        base = uniform(n, 30)
        run("+gaps", base + gap_midpoints(n, base, ADDED))
        uncertainty = np.array([1.0 - read_confidence(base_out / "confidence" / f"{stem}.png").mean()
                                for stem in source.stems])
        run("+add", base + [t for t, _ in add_keyframes(positions, uncertainty, base, ADDED)])
    source.close()
    return row


def table(rows: list[dict]) -> str:
    names = list(rows[0]["plans"])
    lines = ["| clip | frames | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for row in rows:
        lines.append(f"| {row['clip']} | {row['frames']} | "
                     + " | ".join(f"{row['plans'][p]['score']:.1f}" for p in names) + " |")
    means = [np.mean([row["plans"][p]["score"] for row in rows]) for p in names]
    lines.append("| **mean** | | " + " | ".join(f"**{m:.2f}**" for m in means) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--flow-cache", type=Path, default=None, help="flow cache folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="suggest-bench-flow-") as scratch:
        cache = FlowCache(args.flow_cache or scratch)
        rows = [compare(clip, cache) for clip in args.clips]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
