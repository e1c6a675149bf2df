"""The `autolabel` command: a thin layer over the Python API (propagate, evaluate, demo,
bench, train; `batch` is in batch.py). Heavy modules are imported inside the commands."""
from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from .. import __version__
from ..errors import DEBUG_VARIABLE, InputError
from ..io.classnames import NAMES_HELP, NAMES_METAVAR
from ..progress import Reporter, console, counted, tables
from .help import App
from .options import (AdaptOption, AdaptStepsOption, ColorTableOption, DeviceOption, FlowBackendName, FlowOption,
                      FlowPreset, Fusion, FusionOption, IgnoreIndexOption, LabelFormatOption, LabelKind, PresetOption,
                      RefineOption, RefinerOption, ScaleOption, ThreadsOption, VideoOption, command_line, fail,
                      interrupted, make_refiner, make_settings)

app = App(
    help="Turn sparsely labeled videos into densely labeled ones: optical flow carries keyframe labels "
         "to every frame, a refiner repairs them with what the frames show, and every label comes with a "
         "confidence map.",
    add_completion=False, pretty_exceptions_enable=False)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"autolabel {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", "-V", callback=version_callback, is_eager=True,
                                      help="Print the version and exit."),
         debug: bool = typer.Option(False, "--debug", help="On an internal error, print the traceback (also "
                                    "AUTOLABEL_DEBUG=1).")) -> None:
    if debug:
        os.environ[DEBUG_VARIABLE] = "1"  # an environment variable, so batch worker processes see it too


@app.command()
def propagate(
    video: Path = VideoOption,
    keyframes: Path = typer.Option(..., "--keyframes", "-k", help="Folder of label PNGs named like the frames they "
                                   "label (or by their number: 00005.png labels frame 000005)."),
    out: Path = typer.Option(Path("autolabel-out"), "--out", "-o",
                             help="Output folder: labels/, confidence/ and manifest.json."),
    flow: FlowBackendName = FlowOption,
    flow_preset: FlowPreset = PresetOption,
    flow_scale: float = ScaleOption,
    fusion: Fusion = FusionOption,
    label_format: Optional[LabelKind] = LabelFormatOption,
    ignore_index: int = IgnoreIndexOption,
    color_table: Optional[Path] = ColorTableOption,
    refine: bool = RefineOption,
    refiner_path: str = RefinerOption,
    adapt: bool = AdaptOption,
    adapt_steps: Optional[int] = AdaptStepsOption,
    device: str = DeviceOption,
    flow_cache: Optional[Path] = typer.Option(None, "--flow-cache", help="Keep optical flow in this folder and "
                                              "reuse what is there (e.g. from `autolabel suggest --flow-cache`)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace results already in --out."),
    accept_short_video: bool = typer.Option(False, "--accept-short-video",
                                            help="Use a video that decodes to fewer frames than its container "
                                                 "lists (cut short or damaged) as far as it decodes."),
    update: bool = typer.Option(False, "--update", help="--out holds results and the keyframes gained, lost or "
                                "changed frames: bring them up to date, byte-identical to a full run. With "
                                "--no-refine only the segments between keyframes that changed are computed again; "
                                "with a refiner, which learns from every keyframe, every segment is (pass "
                                "--flow-cache to both runs to reuse the flow). Other settings or frames mean a full "
                                "run, and it says so; the manifest's \"update\" records what was computed."),
    threads: Optional[int] = ThreadsOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Propagate keyframe labels to every frame of a video.

    Writes OUT/labels/<stem>.png in the keyframes' own format, OUT/confidence/<stem>.png
    (8-bit, 255 x the probability that the label is right) and OUT/manifest.json.
    """
    from ..datasets.flowcache import FlowCache
    from ..io.output import RESULT_NAMES, run_clip

    settings = make_settings(flow, flow_preset, flow_scale, fusion)
    had_results = any((out / name).exists() for name in RESULT_NAMES)
    try:
        refiner = make_refiner(refine, refiner_path, adapt, device, adapt_steps)
        with Reporter("propagating", quiet) as reporter:
            manifest = run_clip(video, keyframes, out, settings=settings, refiner=refiner,
                                flow_cache=FlowCache(flow_cache) if flow_cache else None,
                                label_format=label_format.value if label_format else None,
                                ignore_index=ignore_index, color_table=color_table, overwrite=overwrite,
                                update=update, command=command_line(), accept_short_video=accept_short_video,
                                threads=threads, on_start=reporter.say, on_frame=reporter.frames)
    except InputError as error:
        fail(error)
    except KeyboardInterrupt:
        interrupted("kept the previous results" if had_results else "no results written")
    if not quiet:
        mean = sum(f["mean_confidence"] for f in manifest["frames"]) / len(manifest["frames"])
        console.print(f"wrote {counted(len(manifest['frames']), 'label')} to {out}/labels (mean confidence {mean:.3f}) "
                      f"in {manifest['timings']['total']:.1f}s", highlight=False)


class Protocol(str, Enum):
    plain = "plain"
    davis = "davis"
    cityscapes = "cityscapes"


def parse_ids(values: list[str]) -> list[int]:
    """'--ignore-index 0,255 --ignore-index 1' -> [0, 255, 1]."""
    try:
        return [int(part) for value in values for part in value.split(",") if part.strip()]
    except ValueError:
        raise InputError("--ignore-index", f"{', '.join(values)!r} is not a list of integer ids") from None


@app.command()
def evaluate(
    pred: Path = typer.Option(..., "--pred", "-p", help="Folder of predicted label PNGs (e.g. OUT/labels, "
                              "OUT/cityscapes, or a DAVIS export's DIR/<seq>)."),
    gt: Path = typer.Option(..., "--gt", "-g", help="Folder of ground-truth label PNGs of the same frames "
                            "(matched by frame: Cityscapes …_gtFine_labelIds files match …_leftImg8bit ones)."),
    protocol: Protocol = typer.Option(Protocol.plain, "--protocol",
                                      help="plain: J or mIoU pooled over the clip, keyframes excluded. davis: the "
                                           "DAVIS-2017 semi-supervised measures (J&F-Mean, J/F Mean, Recall, Decay; "
                                           "frames between the first and last ground truth). cityscapes: "
                                           "cityscapesScripts' mIoU over the 19 evaluated classes, other ids ignored."),
    keyframes: Optional[Path] = typer.Option(None, "--keyframes", "-k",
                                             help="Keyframe folder: these frames are not scored (plain, cityscapes)."),
    confidence: Optional[Path] = typer.Option(None, "--confidence", "-c",
                                              help="Confidence folder: adds calibration (ECE). Default: "
                                                   "OUT/confidence when --pred is OUT/labels of a propagation."),
    manifest: Optional[Path] = typer.Option(None, "--manifest",
                                            help="Manifest for keyframes and distances to them (default: "
                                                 "PRED/../manifest.json)."),
    label_format: Optional[LabelKind] = typer.Option(None, "--label-format", help="Override the detected format."),
    ignore_index: Optional[list[str]] = typer.Option(None, "--ignore-index", metavar="ID[,ID…]",
                                                     help="Ground-truth ids that are not scored; repeat or separate "
                                                          "by commas (default: the manifest's ignore id, else 255)."),
    names: Optional[str] = typer.Option(None, "--names", metavar=NAMES_METAVAR,
                                        help=NAMES_HELP + " Default: Cityscapes names for Cityscapes files, else "
                                             "the names file the manifest recorded."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (for scripts)."),
) -> None:
    """Score predicted labels against ground truth.

    One headline number per protocol, IoU per class (with names; classes in
    no keyframe are marked), boundary F, scores by distance from the nearest
    keyframe, and confidence calibration.
    """
    from ..evaluation.evaluate import evaluate as evaluate_folders
    from ..evaluation.report import report_table

    try:
        report = evaluate_folders(pred, gt, protocol=protocol.value, keyframes_dir=keyframes, confidence_dir=confidence,
                                  manifest_path=manifest, label_format=label_format.value if label_format else None,
                                  ignore_index=parse_ids(ignore_index) if ignore_index else None, names=names)
    except InputError as error:
        fail(error)
    if as_json:
        typer.echo(json.dumps(report, indent=1))
        return
    for table in report_table(report):
        tables.print(table)


@app.command()
def demo(
    out: Path = typer.Argument(Path("autolabel-demo"), help="Folder for the synthetic clip and the results."),
    keyframe_every: int = typer.Option(10, "--keyframe-every", min=1, help="Label every K-th frame as a keyframe."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a previous demo in OUT."),
) -> None:
    """Try autolabel with no data: make a synthetic clip, propagate from sparse keyframes, score it."""
    from ..demo import run_demo

    try:
        run_demo(out, keyframe_every=keyframe_every, overwrite=overwrite, command=command_line())
    except InputError as error:
        fail(error)


@app.command()
def bench(
    clips: Optional[list[Path]] = typer.Argument(None, help="Densely labeled clips (<clip>/frames + <clip>/labels), "
                                                 "or folders of such clips."),
    keyframe_every: int = typer.Option(10, "--keyframe-every", "-K", min=1,
                                       help="Use every K-th frame's label as a keyframe; score the rest."),
    flow: FlowBackendName = FlowOption,
    flow_preset: FlowPreset = PresetOption,
    flow_scale: float = ScaleOption,
    fusion: Fusion = FusionOption,
    refine: bool = RefineOption,
    refiner_path: str = RefinerOption,
    adapt: bool = AdaptOption,
    adapt_steps: Optional[int] = AdaptStepsOption,
    device: str = DeviceOption,
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON lines."),
    long_clip: Optional[str] = typer.Option(None, "--long-clip", metavar="<NxWxH>",
                                            help="Instead of CLIPS, measure peak memory and speed on a generated "
                                                 "clip of N frames of WxH (e.g. 2000x1920x1080); nothing is written."),
    classes: int = typer.Option(19, "--classes", min=1, max=256,
                                help="With --long-clip: classes in the generated clip, all in every keyframe at 1080p."),
    threads: Optional[int] = ThreadsOption,
) -> None:
    """Measure quality and speed on densely labeled clips.

    Score, calibration, frames per second, peak memory, and the wall time
    of the `autolabel propagate` command as a ratio to the optical flow
    alone (a plain loop: decode, both flows per pair; same run).
    """
    from ..evaluation.bench import bench_clip, bench_long_clip, expand_clips, results_table, stages_table

    settings = make_settings(flow, flow_preset, flow_scale, fusion)
    if long_clip:
        try:
            n_frames, width, height = (int(part) for part in long_clip.lower().split("x"))
        except ValueError:
            fail(InputError(long_clip, "--long-clip takes NxWxH, e.g. 2000x1920x1080"))
    elif not clips:
        fail(InputError("bench", "give one or more CLIPS (or --long-clip NxWxH)"))
    try:
        refiner = make_refiner(refine, refiner_path, adapt, device, adapt_steps)
    except InputError as error:
        fail(error)
    if long_clip:
        with Reporter("frames") as reporter:
            result = bench_long_clip(n_frames, width, height, keyframe_every, classes, settings, refiner,
                                     on_frame=reporter.frames, threads=threads)
        typer.echo(json.dumps(result))
        return
    results = []
    try:
        for clip in expand_clips(clips):
            result = bench_clip(clip, keyframe_every, settings, refiner, threads)
            results.append(result)
            if as_json:
                typer.echo(json.dumps(result))
            else:
                console.print(f"{result['clip']}: {result['metric']} {result['score']:.1f}, "
                              f"{result['ratio_to_flow']:.2f}x flow", highlight=False)
    except InputError as error:
        fail(error)
    if not as_json:
        tables.print(results_table(results, settings, refiner))
        tables.print(stages_table(results))

