"""Fit `suggest --budget`'s two constants with leave-one-clip-out, and print the per-clip table.

    python -m autolabel.loop.suggest_fit CLIP... [--spacing 30] [--flow-cache DIR] [--json FILE] [--rows FILE]

For each densely labeled clip, with the budget of every S-th frame from frame 0 (S = 30), every
candidate plan is propagated (`propagate --no-refine` geometry, what suggest predicts) and scored
on its own non-keyframes: the centred placement, every 30th from frame 0, and the content
placement of each model of the grid (step-cost weight c / end weight w, "c/w") with the
evidence it finds (suggest.choose_keyframes). A rule (model, evidence e) takes the content
placement when its evidence is at least e, else centred.

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
from .suggest import EVIDENCE, ONE_SIDED, PLACEMENT_COST, centred, choose_keyframes, scan_clip
from .suggest_bench import score_plan, uniform

COSTS = (0.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
ONE_SIDED_WEIGHTS = (1.0, 1.5)   # 1.0: with even content, exactly the centred placement; 1.5: ends pulled in
MAX_LOSS = 1.0        # a rule may cost a training clip at most this many points against centred


def clip_row(clip: Path, spacing: int, cache: FlowCache, known: dict | None = None, log=print) -> dict:
    """Scores of the centred, uniform and content plans of one clip, with each content plan's evidence.
    `known`: {(clip name, keyframes): score} from an earlier run, not propagated again."""
    frames, labels = clip_paths(Path(clip))
    source = FrameSource(frames)
    n, stems = len(source), source.stems
    scan = scan_clip(source, FlowEstimator(cache=cache))
    source.close()
    count = len(uniform(n, spacing))
    scores: dict[tuple, float] = {keys: value for (name, keys), value in (known or {}).items()
                                  if name == Path(clip).name}

    def score(keys: list[int]) -> float:
        if tuple(keys) not in scores:
            scores[tuple(keys)] = round(score_plan(frames, labels, stems, keys, cache), 3)
        return scores[tuple(keys)]

    row = {"clip": Path(clip).name, "frames": n, "budget": count,
           "centred": {"keyframes": centred(n, count), "score": score(centred(n, count))},
           "uniform": {"keyframes": uniform(n, spacing), "score": score(uniform(n, spacing))}, "content": {}}
    for one_sided in ONE_SIDED_WEIGHTS:
        for cost in COSTS:
            keys, saving = choose_keyframes(scan, count, cost, evidence=-np.inf, one_sided=one_sided)
            row["content"][f"{cost:g}/{one_sided:g}"] = {"keyframes": keys, "saving": round(saving, 6),
                                                         "score": score(keys)}
            log(f"{row['clip']}: cost {cost:g}, one-sided x{one_sided:g}: {keys} evidence {saving:.4f} "
                f"J {scores[tuple(keys)]:.2f} (centred {row['centred']['score']:.2f})")
    return row


def rule_score(row: dict, model: str, evidence: float) -> float:
    content = row["content"][model]
    return content["score"] if content["saving"] >= evidence else row["centred"]["score"]


def rules(rows: list[dict]) -> list[tuple[str, float]]:
    """Every distinct rule: each placement model ("cost/one-sided weight") with evidence 0 (move when the
    content placement is predicted better), halfway between neighbouring savings seen (the widest margin
    to either side), and never."""
    found = []
    for model in rows[0]["content"]:   # the models the rows were scored with
        bounds = sorted({0.0, *(row["content"][model]["saving"] for row in rows)})
        found += [(model, evidence) for evidence in [0.0, *((a + b) / 2 for a, b in zip(bounds, bounds[1:])), np.inf]]
    return found


def fit(rows: list[dict]) -> tuple[str, float]:
    """The rule with the largest mean gain over centred that costs no clip more than MAX_LOSS (ties: the
    more cautious, larger evidence); never moving (centred) when none qualifies."""
    best, best_key = (next(iter(rows[0]["content"])), np.inf), (0.0, np.inf)
    for model, evidence in rules(rows):
        gains = [rule_score(row, model, evidence) - row["centred"]["score"] for row in rows]
        if min(gains) < -MAX_LOSS:
            continue
        key = (round(float(np.mean(gains)), 6), evidence)
        if key > best_key:
            best, best_key = (model, evidence), key
    return best


SHIPPED_BEFORE = "20/1.5"   # suggest before this fit: DEFORMATION_COST 20, ONE_SIDED 1.5, always moving


def only(rows: list[dict], family: str | None) -> list[dict]:
    """The rows with only the models whose end weight is `family` ("1": ends weigh like the rest, so that
    even content gives the centred placement), or all models."""
    if family is None:
        return rows
    return [{**row, "content": {m: v for m, v in row["content"].items() if m.split("/")[1] == family}}
            for row in rows]


def leave_one_out(rows: list[dict], family: str | None = None) -> list[dict]:
    results = []
    for held, restricted in zip(rows, only(rows, family)):
        model, evidence = fit([row for row in only(rows, family) if row["clip"] != held["clip"]])
        results.append({"clip": held["clip"], "frames": held["frames"], "budget": held["budget"],
                        "uniform": held["uniform"]["score"], "centred": held["centred"]["score"],
                        "before": held["content"][SHIPPED_BEFORE]["score"],
                        "model": model, "evidence": evidence, "fitted": rule_score(restricted, model, evidence)})
    return results


def table(results: list[dict], rows: list[dict]) -> str:
    lines = ["| clip | frames | keyframes | every 30th from 0 | centred | suggest before (cost 20, ends x1.5) "
             "| rule fitted without this clip (cost/ends, evidence) | held-out J | vs centred |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in results:
        lines.append(f"| {r['clip']} | {r['frames']} | {r['budget']} | {r['uniform']:.1f} | {r['centred']:.1f} | "
                     f"{r['before']:.1f} | {r['model']}, {r['evidence']:.3f} | {r['fitted']:.1f} | "
                     f"{r['fitted'] - r['centred']:+.1f} |")
    mean = {key: float(np.mean([r[key] for r in results])) for key in ("uniform", "centred", "before", "fitted")}
    lines.append(f"| **mean** | | | {mean['uniform']:.2f} | {mean['centred']:.2f} | {mean['before']:.2f} | | "
                 f"**{mean['fitted']:.2f}** | **{mean['fitted'] - mean['centred']:+.2f}** |")
    model, evidence = fit(rows)
    lines.append(f"\nFitted on every clip: PLACEMENT_COST/ONE_SIDED = {model}, EVIDENCE = {evidence:.6f} "
                 f"(suggest.py ships {PLACEMENT_COST:g}/{ONE_SIDED:g}, {EVIDENCE:.6f})")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--spacing", type=int, default=30, help="budget: as many keyframes as every S-th frame")
    parser.add_argument("--flow-cache", type=Path, default=None, help="flow cache folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the per-clip scores here")
    parser.add_argument("--rows", type=Path, default=None, help="scores written by --json: refit from them "
                        "(no CLIPS), or reuse them for the plans they hold (with CLIPS)")
    args = parser.parse_args(argv)
    rows = json.loads(args.rows.read_text()) if args.rows else []
    if args.clips:
        known = {(row["clip"], tuple(plan["keyframes"])): plan["score"] for row in rows
                 for plan in [row["centred"], row["uniform"], *row["content"].values()]}
        with tempfile.TemporaryDirectory(prefix="suggest-fit-flow-") as scratch:
            cache = FlowCache(args.flow_cache or scratch)
            rows = [clip_row(clip, args.spacing, cache, known) for clip in args.clips]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    for family, title in ((None, "every model"), ("1", "ends weighted like the rest (even content: centred)")):
        print(f"\nLeave-one-clip-out, {title}:\n")
        print(table(leave_one_out(rows, family), only(rows, family)))


if __name__ == "__main__":
    main()
