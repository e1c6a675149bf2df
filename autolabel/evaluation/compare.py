"""Two `autolabel bench --json` runs side by side, per clip: the table the README and model card carry.

    python -m autolabel.evaluation.compare BASELINE.jsonl CANDIDATE.jsonl [--geometry GEOMETRY.jsonl]

Columns: geometry (if given), baseline, candidate, gain, boundary F, ECE and the share of wrong
pixels in the least-confident 5 % (baseline -> candidate), the candidate's command/flow ratio and
device. A last row holds the means.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .bench import low_confidence_errors


def read(path: Path) -> dict[str, dict]:
    return {row["clip"]: row for row in (json.loads(line) for line in Path(path).read_text().splitlines() if line.strip())}


def markdown(baseline: dict, candidate: dict, geometry: dict | None = None) -> str:
    clips = sorted(set(baseline) & set(candidate))
    head = ["clip", *(["geometry"] if geometry else []), "baseline", "candidate", "gain", "boundary F", "ECE",
            "errors in least-confident 5 %", "total/flow", "device"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    sums: dict[str, list[float]] = {}
    for clip in clips:
        b, c = baseline[clip], candidate[clip]
        gain = c["score"] - b["score"]
        row = [f"{clip} ({c['metric']})", *([f"{geometry[clip]['score']:.1f}"] if geometry else []),
               f"{b['score']:.1f}", f"{c['score']:.1f}", f"{gain:+.1f}",
               f"{b['boundary_f']:.1f} → {c['boundary_f']:.1f}", f"{b['ece']:.3f} → {c['ece']:.3f}",
               f"{low_confidence_errors(b)} → {low_confidence_errors(c)}", f"{c['ratio_to_flow']:.2f}", c.get("device", "cpu")]
        lines.append("| " + " | ".join(row) + " |")
        for key, value in (("g", geometry[clip]["score"] if geometry else 0), ("b", b["score"]), ("c", c["score"]),
                           ("bf_b", b["boundary_f"]), ("bf_c", c["boundary_f"]), ("e_b", b["ece"]), ("e_c", c["ece"]),
                           ("l_b", 100 * (b.get("errors_in_least_confident_5") or 0)),
                           ("l_c", 100 * (c.get("errors_in_least_confident_5") or 0)), ("r", c["ratio_to_flow"])):
            sums.setdefault(key, []).append(value)
    m = {key: sum(values) / len(values) for key, values in sums.items()}
    lines.append("| **mean** | " + " | ".join([*([f"{m['g']:.1f}"] if geometry else []), f"{m['b']:.1f}", f"{m['c']:.1f}",
                                               f"**{m['c'] - m['b']:+.1f}**", f"{m['bf_b']:.1f} → {m['bf_c']:.1f}",
                                               f"{m['e_b']:.3f} → {m['e_c']:.3f}", f"{m['l_b']:.1f} → {m['l_c']:.1f}",
                                               f"{m['r']:.2f}", ""]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("candidate", type=Path)
    parser.add_argument("--geometry", type=Path)
    args = parser.parse_args()
    print(markdown(read(args.baseline), read(args.candidate), read(args.geometry) if args.geometry else None))


if __name__ == "__main__":
    main()
