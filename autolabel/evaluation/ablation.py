"""What each part of the default refiner adds, on densely labeled clips: a table.

    python -m autolabel.evaluation.ablation ../shared/data/clips -K 10 [--flow-cache DIR] [--json]

Rows, each on the same flow (cached with --flow-cache, so rows after the first cost no flow):
  classic                the colour cue and edge filter alone (`--refiner classic`)
  network, always        + the boundary network as shipped, applied to every frame (no check)
  network + learning     + per-clip learning on the round trips (STEPS_LEARNING per round trip), always applied
  default                the network checked on the round trips, used only where it wins (the shipped default)
  default + learning     the same, learning STEPS_LEARNING steps per round trip after each check (--adapt-steps)
Scores are J (objects) or mIoU (semantic) over the non-keyframes, from the same code as `evaluate`'s
per-frame IoU, averaged per id over frames; "errors in least-confident 5 %" as `evaluate` prints it.
The weights read no label of a scored clip (models/boundary.pt: CamVid only); per-clip learning reads
the clip's keyframes at that spacing only.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..core.pipeline import Propagator, Settings
from ..datasets.flowcache import FlowCache
from ..io.frames import FrameSource
from ..io.keyframes import find_keyframes, load_keyframes
from ..io.labels import read_label
from ..refiner.boundary.stage import BoundaryRefiner
from ..refiner.load import load_refiner
from .bench import clip_paths, expand_clips

STEPS_LEARNING = 30
SAMPLED = 20_000   # pixels per frame for the least-confident share


class _Always(BoundaryRefiner):
    @property
    def trusted(self) -> bool:
        return True


def _refiner(row: str):
    if row == "classic":
        return load_refiner("classic")
    learning = row in ("network + learning", "default + learning")
    default = load_refiner("default", device="cpu", steps=STEPS_LEARNING if learning else 0)
    if row.startswith("default"):
        return default
    return _Always(default.base, default.weights, default.device, steps=default.steps)


ROWS = ("classic", "network, always", "network + learning", "default", "default + learning")


def score_clip(clip: Path, every: int, row: str, flow_cache: FlowCache | None) -> dict:
    frames, labels = clip_paths(clip)
    source = FrameSource(frames)
    paths = find_keyframes(labels, source.stems)
    keys = load_keyframes({i: p for i, p in paths.items() if i % every == 0}, (source.width, source.height))
    propagator = Propagator(source, keys.label, keys.indices, keys.classes, Settings(), _refiner(row), flow_cache, 1)
    ious: dict[int, list[float]] = {}
    rng = np.random.default_rng(0)
    confidence_sample, wrong_sample = [], []
    ignore = keys.format.ignore_index
    for result in propagator.run():
        if result.is_keyframe:
            continue
        truth = read_label(paths[result.index], keys.format)
        predicted = keys.classes.to_ids(result.channels)
        valid = truth != ignore if ignore is not None else np.ones(truth.shape, bool)
        for i in np.union1d(np.unique(truth[valid]), np.unique(predicted[valid])):
            if keys.format.is_object_format and i == 0:
                continue
            a, b = (predicted == i) & valid, (truth == i) & valid
            ious.setdefault(int(i), []).append((a & b).sum() / max((a | b).sum(), 1))
        pick = rng.integers(0, truth.size, SAMPLED)
        kept = valid.ravel()[pick]
        confidence_sample.append(result.confidence.ravel()[pick][kept])
        wrong_sample.append((predicted != truth).ravel()[pick][kept])
    confidence, wrong = np.concatenate(confidence_sample), np.concatenate(wrong_sample)
    lowest = np.argsort(confidence, kind="stable")[: len(confidence) // 20]
    refiner = propagator.refiner
    return {"clip": clip.name, "keyframe_every": every, "row": row,
            "metric": "J" if keys.format.is_object_format else "mIoU",
            "score": round(100 * float(np.mean([np.mean(v) for v in ious.values()])), 2),
            "errors_in_least_confident_5": round(float(wrong[lowest].sum() / max(wrong.sum(), 1)), 4),
            "round_trips": getattr(refiner, "report", {}), "seconds": {k: round(v, 1) for k, v in propagator.timer.seconds.items()}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("-K", "--keyframe-every", type=int, default=10)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--flow-cache", type=Path)
    parser.add_argument("--json", action="store_true", help="one JSON line per clip and row")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cache = FlowCache(args.flow_cache) if args.flow_cache else None
    results = []
    for clip in expand_clips(args.clips):
        for row in args.rows:
            results.append(score_clip(clip, args.keyframe_every, row, cache))
            if args.json:
                print(json.dumps(results[-1]), flush=True)
    if not args.json:
        print(f"keyframes every {args.keyframe_every}: score (errors in least-confident 5 %)")
        print("| clip | " + " | ".join(args.rows) + " |")
        print("|---" * (len(args.rows) + 1) + "|")
        for clip in dict.fromkeys(r["clip"] for r in results):
            cells = [f"{r['score']:.1f} ({100 * r['errors_in_least_confident_5']:.0f} %)"
                     for row in args.rows for r in results if r["clip"] == clip and r["row"] == row]
            print(f"| {clip} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
