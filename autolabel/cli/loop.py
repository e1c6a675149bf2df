"""The labeling loop: `autolabel suggest` (which frames to label) and `autolabel review` (what came out)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError
from ..io.classnames import NAMES_HELP, NAMES_METAVAR
from ..progress import Reporter, console
from .main import app
from .options import (FlowBackendName, FlowOption, FlowPreset, Fusion, IgnoreIndexOption, LabelFormatOption,
                      LabelKind, PresetOption, ScaleOption, fail, make_settings)


@app.command()
def suggest(
    video: Path = typer.Option(..., "--video", "-v", help="Folder of frames or a video file."),
    budget: Optional[int] = typer.Option(None, "--budget", "-n",
                                         help="Before labeling: choose this many frames from the video alone."),
    keyframes: Optional[Path] = typer.Option(None, "--keyframes", "-k",
                                             help="After labeling: the label PNGs so far (kept; use with --add)."),
    add: Optional[int] = typer.Option(None, "--add", "-a",
                                      help="After labeling: this many more frames, where the propagation is "
                                           "least sure."),
    from_dir: Optional[Path] = typer.Option(None, "--from",
                                            help="A `propagate` output folder of these keyframes: its confidence "
                                                 "is used instead of propagating again. An OUT made from "
                                                 "other keyframes or frames than today's is refused (stale)."),
    as_json: bool = typer.Option(False, "--json", help="Print the frames with their reasons as JSON: motion (% of "
                                 "the frame diagonal per frame), occlusion (share of pixels failing the "
                                 "forward-backward check), predicted reliability, predicted gain."),
    flow_cache: Optional[Path] = typer.Option(None, "--flow-cache",
                                              help="Keep the optical flow here: a following `propagate "
                                                   "--flow-cache` (or `batch --flow-cache`) with the same flow "
                                                   "settings reuses it."),
    flow: FlowBackendName = FlowOption,
    flow_preset: FlowPreset = PresetOption,
    flow_scale: float = ScaleOption,
    label_format: Optional[LabelKind] = LabelFormatOption,
    ignore_index: int = IgnoreIndexOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Suggest which frames to label: where labels would stop carrying (occlusion, fast motion, cuts),
    or, with --keyframes, where the propagation is least sure.

    Prints the chosen frame stems, one per line, in temporal order. Needs optical flow, no refiner.
    """
    from ..datasets.flowcache import FlowCache
    from ..loop.suggest_clip import suggest as suggest_frames

    settings = make_settings(flow, flow_preset, flow_scale, Fusion.reliability)
    try:
        with Reporter("suggesting", quiet) as reporter:
            result = suggest_frames(video, budget=budget, keyframes=keyframes, add=add, from_dir=from_dir,
                                    settings=settings, label_format=label_format.value if label_format else None,
                                    ignore_index=ignore_index,
                                    flow_cache=FlowCache(flow_cache) if flow_cache else None,
                                    on_start=reporter.say, on_frame=reporter.frames)
    except InputError as error:
        fail(error)
    if as_json:
        typer.echo(json.dumps(result, indent=1))
    else:
        for frame in result["suggested"]:
            typer.echo(frame["stem"])


@app.command()
def review(
    out: Path = typer.Argument(..., help="A `propagate` output folder (labels/, confidence/, manifest.json)."),
    video: Optional[Path] = typer.Option(None, "--video", "-v",
                                         help="The frames (default: the video named in OUT/manifest.json)."),
    gt: Optional[Path] = typer.Option(None, "--gt", "-g", help="Ground-truth labels, same stems: adds the "
                                      "worst-scoring frames, an errors column and the score per frame."),
    names: Optional[str] = typer.Option(None, "--names", metavar=NAMES_METAVAR,
                                        help=NAMES_HELP + " Default: the names file the manifest recorded (names.csv "
                                        "or classes.csv beside the keyframes), else Cityscapes' names when the ids "
                                        "are labelIds."),
    keyframes: Optional[Path] = typer.Option(None, "--keyframes", "-k",
                                             help="The keyframes folder, to find a names file beside it (default: "
                                                  "the one the manifest recorded)."),
    worst: int = typer.Option(6, "--worst", "-n", min=1, help="Frames per contact-sheet section."),
    fps: float = typer.Option(10.0, "--fps", min=1.0, help="Frame rate of overlay.mp4."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT/review if it exists."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """See a propagation result and find its errors: writes OUT/review/ with overlay.mp4 (labels,
    outlines, doubtful pixels hatched), contact-sheet.png (the frames with the lowest expected score,
    and with --gt the lowest true score, as frame | labels | confidence (| errors), legend) and
    timeline.png (expected and true score per frame, keyframes marked).
    """
    from ..loop.review import review as review_result

    try:
        with Reporter("reviewing", quiet) as reporter:
            summary = review_result(out, video=video, gt=gt, names=names, keyframes=keyframes, worst=worst,
                                    fps=fps, overwrite=overwrite, on_frame=reporter.frames)
    except InputError as error:
        fail(error)
    if not quiet:
        console.print(f"wrote {out / 'review'}: overlay.mp4 ({summary['video_codec']}), contact-sheet.png, "
                      f"timeline.png; lowest expected score at {', '.join(summary['lowest_expected_score'][:3])}",
                      highlight=False, markup=False)
    if summary["characters_not_drawn"]:
        console.print(f"note: no font here draws {' '.join(summary['characters_not_drawn'])}; the pictures show "
                      "'?' instead (install a font that has them, e.g. Noto Sans CJK, and rerun)",
                      highlight=False, markup=False)
