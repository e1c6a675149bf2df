"""The labeling loop once round, timed, on a densely labeled clip (the README's loop section).

    python -m autolabel.loop.loop_bench CLIP [-K 10] [--fix 3] [--no-refine] [--flow-cache DIR]

Keyframes every K-th frame from frame 0; each step is the `autolabel` command a user runs, timed
as a subprocess (start-up included):

  propagate      the first full run
  review         OUT/review/; the contact sheet's first FIX frames (lowest mean confidence) are fixed
  export         OUT as a CVAT zip
  (correct)      the person: the FIX worst frames' masks repainted with the ground truth
  import         the corrected zip back in as keyframes
  update         `propagate --update`
  review         again
  full run       `propagate` from the new keyframes into another folder: the update's labels and
                 confidences must equal its own byte for byte, and the update's time is a share of it

J (or mIoU) before and after, on every frame but the first keyframes (the user's view: the
fixed frames are now right) and on the frames that are still propagated.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..evaluation.bench import clip_paths
from ..evaluation.evaluate import evaluate, read_confidence
from ..io.frames import natural_key
from ..io.labels import davis_palette, read_label
from ..io.results import find_results
from ..interop.cvat import cvat_labels, label_numbers
from .review.run import spread_worst


def autolabel(*args) -> tuple[float, str]:
    """Run one `autolabel` command; (wall seconds, output)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "autolabel", *map(str, args)], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"autolabel {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return seconds, done.stdout + done.stderr


def correct(zip_path: Path, out: Path, labels: Path, stems: list[str], target: Path) -> None:
    """The person's part: the frames `stems` of CVAT's zip repainted with their ground truth."""
    clip = find_results(out)[0]
    fmt = clip.label_format()
    _, number_of = cvat_labels(clip, fmt)
    with zipfile.ZipFile(zip_path) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            stem = Path(name).stem
            if name.startswith("SegmentationClass/") and stem in stems:
                truth = read_label(labels / f"{stem}.png", fmt)
                image = Image.fromarray(label_numbers(truth, number_of), mode="L")
                image.putpalette(davis_palette())
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                data = buffer.getvalue()
            new.writestr(name, data)


def worst_frames(out: Path, count: int) -> list[str]:
    """The frames review's contact sheet shows first: the lowest mean confidence, spread over the clip."""
    manifest = json.loads((out / "manifest.json").read_text())
    stems = [frame["stem"] for frame in manifest["frames"]]
    confidence = np.array([read_confidence(out / "confidence" / f"{stem}.png").mean() for stem in stems])
    candidates = [i for i, frame in enumerate(manifest["frames"]) if not frame["keyframe"]]
    return [stems[i] for i in spread_worst(candidates, confidence, count)]


def same_results(a: Path, b: Path) -> bool:
    return all((a / folder / path.name).read_bytes() == path.read_bytes()
               for folder in ("labels", "confidence") for path in (b / folder).iterdir())


def run(clip: Path, every: int, fix: int, refine: bool, flow_cache: Path | None, work: Path) -> dict:
    frames, labels = clip_paths(clip)
    stems = sorted((p.stem for p in labels.iterdir()), key=natural_key)
    first, keys = work / "first-keys", work / "keys"
    for folder in (first, keys):
        folder.mkdir()
        for stem in stems[::every]:
            shutil.copy(labels / f"{stem}.png", folder)
    options = [*([] if refine else ["--no-refine"]), *(["--flow-cache", flow_cache] if flow_cache else []), "-q"]
    out = work / "out"
    steps = {}
    steps["propagate"], _ = autolabel("propagate", "-v", frames, "-k", keys, "-o", out, *options)
    shutil.copytree(out / "labels", work / "before" / "labels")   # beside no manifest: scored by the folders given
    steps["review"], _ = autolabel("review", out, "-q")
    worst = worst_frames(out, fix)
    steps["export"], _ = autolabel("export", out, work / "cvat", "--to", "cvat", "--name", "out", "-q")
    correct(work / "cvat" / "out.zip", out, labels, worst, work / "corrected.zip")
    steps["import"], _ = autolabel("import", work / "corrected.zip", out, "-k", keys, "-q")
    steps["update"], _ = autolabel("propagate", "-v", frames, "-k", keys, "-o", out, "--update", *options)
    steps["review again"], _ = autolabel("review", out, "--overwrite", "-q")
    steps["full run (reference)"], _ = autolabel("propagate", "-v", frames, "-k", keys, "-o", work / "full",
                                                 *options)
    shutil.copytree(out / "labels", work / "after" / "labels")
    scores = {f"J_{when}{'' if given is first else '_still_propagated'}":
              round(evaluate(work / when / "labels", labels, keyframes_dir=given)["score"], 2)
              for when in ("before", "after") for given in (first, keys)}
    manifest = json.loads((out / "manifest.json").read_text())
    return {"clip": clip.name, "frames": len(stems), "keyframes": len(stems[::every]), "fixed": worst,
            "refine": refine, "steps": {k: round(v, 2) for k, v in steps.items()},
            "update_share": round(steps["update"] / steps["full run (reference)"], 3),
            "update_share_of_first": round(steps["update"] / steps["propagate"], 3),
            "identical": same_results(out, work / "full"), "recomputed": manifest["update"]["recomputed"],
            **scores}


def table(result: dict) -> str:
    lines = ["| step | seconds |", "|---|---:|"]
    lines += [f"| {step} | {seconds:.1f} |" for step, seconds in result["steps"].items()]
    lines.append(f"\nupdate / full run: {result['update_share']:.0%} (/ the first run: "
                 f"{result['update_share_of_first']:.0%}); byte-identical to the full run: "
                 f"{result['identical']}; recomputed: {result['recomputed']}")
    lines.append(f"fixed frames: {', '.join(result['fixed'])}; J on every frame but the first keyframes: "
                 f"{result['J_before']:.2f} -> {result['J_after']:.2f} ({result['J_after'] - result['J_before']:+.2f}); "
                 f"on the frames still propagated: {result['J_before_still_propagated']:.2f} -> "
                 f"{result['J_after_still_propagated']:.2f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("-K", "--keyframe-every", type=int, default=10)
    parser.add_argument("--fix", type=int, default=3, help="frames the person corrects")
    parser.add_argument("--no-refine", dest="refine", action="store_false")
    parser.add_argument("--flow-cache", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="loop-bench-") as work:
        result = run(args.clip, args.keyframe_every, args.fix, args.refine, args.flow_cache, Path(work))
    print(json.dumps(result) if args.json else table(result))


if __name__ == "__main__":
    main()
