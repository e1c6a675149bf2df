"""What the commands share: option enums, typer options, `fail` (bad input: one line, exit 2),
and turning options into `Settings` and a refiner. """
from __future__ import annotations

import shlex
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.text import Text

from ..core.pipeline import Settings
from ..errors import InputError
from ..io.frames import IMAGE_FORMATS, VIDEO_FORMATS
from ..progress import console


class FlowBackendName(str, Enum):
    dis = "dis"
    farneback = "farneback"


class FlowPreset(str, Enum):
    ultrafast = "ultrafast"
    fast = "fast"
    medium = "medium"


class Fusion(str, Enum):
    reliability = "reliability"
    distance = "distance"


class LabelKind(str, Enum):
    palette = "palette"
    ids = "ids"
    binary = "binary"
    rgb = "rgb"


def fail(error: Exception) -> None:
    """One line, exit code 2: the contract for bad input."""
    console.print(Text.assemble(("error: ", "red"), str(error)), soft_wrap=True)
    raise typer.Exit(2)


def interrupted(what_remains: str) -> None:
    """Ctrl-C: one line saying what is on disk now, exit code 130 (128 + SIGINT), as shells expect."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the work is stopped and cleaned up: a second Ctrl-C has nothing to do
    console.print(f"interrupted: {what_remains}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(130)


FlowOption = typer.Option(FlowBackendName.dis, "--flow", help="Optical flow backend.")
PresetOption = typer.Option(FlowPreset.medium, "--flow-preset", help="Speed/quality preset of the flow backend.")
ScaleOption = typer.Option(1.0, "--flow-scale", min=0.1, max=1.0,
                           help="Compute flow on frames scaled by this factor (0.5 = half size, ~3x faster).")
FusionOption = typer.Option(Fusion.reliability, "--fusion",
                            help="How the two keyframes' propagations combine: by per-pixel reliability, "
                                 "or by distance alone (the plain reference method).")


LabelFormatOption = typer.Option(None, "--label-format", help="Override the detected label format.")
IgnoreIndexOption = typer.Option(255, "--ignore-index",
                                 help="Id meaning 'unlabeled' in multi-class labels; carried through, never "
                                      "a class. Binary 0/255 masks have none (255 is the object).")
VideoOption = typer.Option(..., "--video", "-v", help=f"Folder of frames ({IMAGE_FORMATS}; natural order) or a "
                          f"video file ({VIDEO_FORMATS}; frames are named 000000, 000001, …).")
RefineOption = typer.Option(True, "--refine/--no-refine",
                            help="Refine the warped labels with the frame: the keyframes' colours repair drift and "
                                 "disocclusions, an edge-aware filter snaps boundaries (models/MODEL_CARD.md). "
                                 "--no-refine gives optical-flow geometry alone.")
RefinerOption = typer.Option(None, "--refiner", help="Refiner weights (JSON) to use instead of the shipped "
                             "models/refiner.json, e.g. from `autolabel train`.")
AdaptOption = typer.Option(True, "--adapt/--no-adapt",
                           help="Let the refiner choose its strengths on this clip, by propagating each keyframe to "
                                "the next and comparing (one more warp step and a few small passes per keyframe).")
ThreadsOption = typer.Option(None, "--threads", min=1, show_default="every core",
                             help="CPU threads to use (flow both ways at once from 2); results do not depend on it.")


def command_line() -> str:
    """This run's command line, for manifests."""
    return shlex.join(["autolabel", *sys.argv[1:]])


def make_refiner(refine: bool, path: Optional[Path], adapt: bool = True):
    """The refiner asked for, or None for geometric propagation only."""
    if not refine:
        return None
    from ..core.refine import load_refiner

    return load_refiner(path, adapt)


def make_settings(flow, flow_preset, flow_scale, fusion) -> Settings:
    return Settings(flow=flow.value, flow_preset=flow_preset.value, flow_scale=flow_scale, fusion=fusion.value)
