"""`autolabel demo`: the whole job on a synthetic clip, with no data needed."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.output import check_writable, run_clip
from ..progress import Reporter, console, counted, tables
from .evaluate import evaluate, report_table
from .preview import contact_sheet, heat, overlay
from .synth import make_clip, write_clip


def run_demo(out: Path, keyframe_every: int = 10, overwrite: bool = False, n_frames: int = 60,
             command: str | None = None) -> dict:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(out, "already exists and is not empty; pass --overwrite or choose another folder")
        for name in ("clip", "keyframes", "result", "preview.png"):
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
    sheet = _preview(clip, out, keyframe_every)
    console.print(f"\nground truth: {clip_dir}/labels\npropagated:   {out}/result/labels "
                  f"(confidence in {out}/result/confidence)\npicture:      {sheet}", highlight=False)
    return report


def _preview(clip, out: Path, keyframe_every: int) -> Path:
    from ..io.labels import detect_format, read_label
    from .evaluate import read_confidence

    labels_dir, confidence_dir = out / "result" / "labels", out / "result" / "confidence"
    fmt = detect_format([labels_dir / "00000.png"])
    rows = []
    for index in (keyframe_every // 2, keyframe_every + keyframe_every // 2, 2 * keyframe_every - 1):
        if index >= len(clip.frames):
            continue
        predicted = read_label(labels_dir / f"{index:05d}.png", fmt)
        wrong = np.where((predicted != clip.labels[index])[..., None], [255, 0, 255], clip.frames[index] // 3)
        rows.append((f"frame {index}: frame | ground truth | propagated | errors | confidence",
                     [clip.frames[index], overlay(clip.frames[index], clip.labels[index]),
                      overlay(clip.frames[index], predicted), wrong.astype(np.uint8),
                      heat(read_confidence(confidence_dir / f"{index:05d}.png"))]))
    return contact_sheet(rows, out / "preview.png")
