"""`autolabel demo`: the whole job on a synthetic clip, with no data needed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .errors import InputError
from .io.output import check_writable, run_clip
from .progress import Reporter, console, counted, tables
from .evaluation.evaluate import evaluate
from .evaluation.report import report_table
from .loop.review import review
from .synth import make_clip, write_clip

DEMO_NAMES = ("clip", "keyframes", "result", "scores.json")


def run_demo(out: Path, keyframe_every: int = 10, overwrite: bool = False, n_frames: int = 60,
             command: str | None = None) -> dict:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(out, "already exists and is not empty; pass --overwrite or choose another folder")
        for name in DEMO_NAMES:
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    check_writable(out)
    with Reporter("propagating") as reporter:
        width, height = 320, 240
        reporter.say(f"making a synthetic clip: {counted(n_frames, 'frame')}, {width}x{height}, 4 moving objects "
                     "with occlusions")
        clip = make_clip(n_frames=n_frames, height=height, width=width, n_objects=4, seed=0)
        clip_dir = write_clip(clip, out / "clip", label_format="palette")
        keyframes = out / "keyframes"
        keyframes.mkdir(parents=True)
        for index in range(0, n_frames, keyframe_every):
            shutil.copy(clip_dir / "labels" / f"{index:05d}.png", keyframes)
        reporter.say(f"keyframes: every {keyframe_every}th frame's label -> {keyframes}")
        run_clip(clip_dir / "frames", keyframes, out / "result", command=command, on_start=reporter.say,
                 on_frame=reporter.frames)
    report = evaluate(out / "result" / "labels", clip_dir / "labels", keyframes_dir=keyframes,
                      confidence_dir=out / "result" / "confidence")
    for table in report_table(report):
        tables.print(table)
    (out / "scores.json").write_text(json.dumps(report, indent=1) + "\n")
    with Reporter("reviewing") as reporter:
        review(out / "result", video=clip_dir / "frames", gt=clip_dir / "labels", on_frame=reporter.frames)
    pictures = out / "result" / "review"
    console.print(f"\nground truth: {clip_dir}/labels\npropagated:   {out}/result/labels "
                  f"(confidence in {out}/result/confidence)\nscores:       {out}/scores.json\n"
                  f"pictures:     {pictures}/contact-sheet.png (the worst frames), timeline.png, overlay.mp4",
                  highlight=False)
    return report
