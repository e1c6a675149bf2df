"""Fit `suggest --budget`'s two constants with leave-one-clip-out, and print the per-clip table.

    python -m autolabel.loop.suggest_fit CLIP... [--spacing 30] [--flow-cache DIR] [--json FILE] [--rows FILE]

For each densely labeled clip, with the budget of every S-th frame from frame 0 (S = 30), every
candidate plan is propagated (`propagate --no-refine` geometry, what suggest predicts) and scored
on its own non-keyframes: the centred placement, every 30th from frame 0, and the content
placement at each DEFORMATION_COST of the grid with its predicted saving over centred
(suggest.choose_keyframes). A rule (cost c, evidence e) takes the content placement when its
saving is at least e, else centred.

Leave-one-clip-out: for each clip, the rule is chosen on the other clips (largest mean gain over
centred among rules that cost no training clip more than 1 point; centred when none), then
scored on the held-out clip. The table shows that held-out score per clip next to centred; the
last line the rule fitted on every clip (what suggest.py ships). `--rows FILE` refits from the
scores a previous run wrote with `--json`, without propagating again.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from ..core.flow import FlowEstimator
from ..datasets.flowcache import FlowCache
from ..evaluation.bench import clip_paths
from ..io.frames import FrameSource
from .suggest import DEFORMATION_COST, EVIDENCE, centred, choose_keyframes, scan_clip
from .suggest_bench import score_plan, uniform

COSTS = (0.0, 5.0, 10.0, 20.0, 40.0)
MAX_LOSS = 1.0        # a rule may cost a training clip at most this many points against centred


def clip_row(clip: Path, spacing: int, cache: FlowCache, log=print) -> dict:
    """Scores of the centred, uniform and content plans of one clip, with each content plan's saving."""
    frames, labels = clip_paths(Path(clip))
    source = FrameSource(frames)
    n, stems = len(source), source.stems
    scan = scan_clip(source, FlowEstimator(cache=cache))
    source.close()
    count = len(uniform(n, spacing))
    scores: dict[tuple, float] = {}

    def score(keys: list[int]) -> float:
        if tuple(keys) not in scores:
            scores[tuple(keys)] = round(score_plan(frames, labels, stems, keys, cache), 3)
        return scores[tuple(keys)]

    row = {"clip": Path(clip).name, "frames": n, "budget": count,
           "centred": {"keyframes": centred(n, count), "score": score(centred(n, count))},
           "uniform": {"keyframes": uniform(n, spacing), "score": score(uniform(n, spacing))}, "content": {}}
    for cost in COSTS:
        keys, saving = choose_keyframes(scan, count, cost, evidence=-np.inf)
        row["content"][str(cost)] = {"keyframes": keys, "saving": round(saving, 4), "score": score(keys)}
        log(f"{row['clip']}: cost {cost:g} {keys} saving {saving:.3f} J {scores[tuple(keys)]:.2f} "
            f"(centred {row['centred']['score']:.2f})")
    return row


def rule_score(row: dict, cost: float, evidence: float) -> float:
    content = row["content"][str(cost)]
    return content["score"] if content["saving"] >= evidence else row["centred"]["score"]


def rules(rows: list[dict]) -> list[tuple[float, float]]:
    """Every distinct rule: each cost with evidence 0 (move when the content placement is predicted
    better), halfway between neighbouring savings seen (the widest margin to either side), and never."""
    found = []
    for cost in sorted(float(c) for c in rows[0]["content"]):   # the costs the rows were scored at
        bounds = sorted({0.0, *(row["content"][str(cost)]["saving"] for row in rows)})
        found += [(cost, evidence) for evidence in [0.0, *((a + b) / 2 for a, b in zip(bounds, bounds[1:])), np.inf]]
    return found


def fit(rows: list[dict]) -> tuple[float, float]:
    """The rule with the largest mean gain over centred that costs no clip more than MAX_LOSS (ties: the
    more cautious, larger evidence); never moving (centred) when none qualifies."""
    best, best_key = (DEFORMATION_COST, np.inf), (0.0, np.inf)
    for cost, evidence in rules(rows):
        gains = [rule_score(row, cost, evidence) - row["centred"]["score"] for row in rows]
        if min(gains) < -MAX_LOSS:
            continue
        key = (round(float(np.mean(gains)), 6), evidence)
        if key > best_key:
            best, best_key = (cost, evidence), key
    return best


def leave_one_out(rows: list[dict]) -> list[dict]:
    results = []
    for held in rows:
        cost, evidence = fit([row for row in rows if row is not held])
        results.append({"clip": held["clip"], "frames": held["frames"], "budget": held["budget"],
                        "uniform": held["uniform"]["score"], "centred": held["centred"]["score"],
                        "content": held["content"][str(DEFORMATION_COST)]["score"],
                        "cost": cost, "evidence": evidence, "fitted": rule_score(held, cost, evidence)})
    return results


def table(results: list[dict], rows: list[dict]) -> str:
    lines = ["| clip | frames | keyframes | every 30th from 0 | centred | content (cost 20, always moves) "
             "| rule fitted without this clip (cost, evidence) | held-out J | vs centred |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in results:
        lines.append(f"| {r['clip']} | {r['frames']} | {r['budget']} | {r['uniform']:.1f} | {r['centred']:.1f} | "
                     f"{r['content']:.1f} | {r['cost']:g}, {r['evidence']:.3f} | {r['fitted']:.1f} | "
                     f"{r['fitted'] - r['centred']:+.1f} |")
    mean = {key: float(np.mean([r[key] for r in results])) for key in ("uniform", "centred", "content", "fitted")}
    lines.append(f"| **mean** | | | {mean['uniform']:.2f} | {mean['centred']:.2f} | {mean['content']:.2f} | | "
                 f"**{mean['fitted']:.2f}** | **{mean['fitted'] - mean['centred']:+.2f}** |")
    cost, evidence = fit(rows)
    lines.append(f"\nFitted on every clip: DEFORMATION_COST = {cost:g}, EVIDENCE = {evidence:.4f} "
                 f"(suggest.py ships {DEFORMATION_COST:g}, {EVIDENCE:.4f})")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--spacing", type=int, default=30, help="budget: as many keyframes as every S-th frame")
    parser.add_argument("--flow-cache", type=Path, default=None, help="flow cache folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the per-clip scores here")
    parser.add_argument("--rows", type=Path, default=None, help="refit from scores written by --json")
    args = parser.parse_args(argv)
    if args.rows:
        rows = json.loads(args.rows.read_text())
    else:
        with tempfile.TemporaryDirectory(prefix="suggest-fit-flow-") as scratch:
            cache = FlowCache(args.flow_cache or scratch)
            rows = [clip_row(clip, args.spacing, cache) for clip in args.clips]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print(table(leave_one_out(rows), rows))


if __name__ == "__main__":
    main()
