"""What the commands share: option enums, typer options, `fail` (bad input: one line, exit 2) and
`interrupted` (Ctrl-C or SIGTERM) from guard.py,
and turning options into `Settings` and a refiner. """
from __future__ import annotations

import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ..core.pipeline import Settings
from ..errors import InputError
from ..io.frames import IMAGE_FORMATS, VIDEO_FORMATS
from .guard import fail, interrupted  # noqa: F401  re-exported: the commands import them from here


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
RefinerOption = typer.Option("default", "--refiner", metavar="default|classic|PATH",
                             help="default: the classic cues, then the boundary network shipped in models/, checked on "
                                  "round trips of this clip's keyframes (on CUDA it also learns from them) and used "
                                  "only where it beat the classic output on them; classic: the colour cue and edge "
                                  "filter alone, the fast CPU path; PATH: weights from `autolabel train --boundary` "
                                  "(.pt), a dataset's class prior from `autolabel train` (.pt, used under the "
                                  "boundary network) or `autolabel train --classic` (.json).")
AdaptStepsOption = typer.Option(None, "--adapt-steps", min=0,
                                help="Training steps of the boundary network per round trip of a keyframe (default: "
                                     "the weights' setting for the device, 0 on the CPU, 30 on CUDA; 0: the network as "
                                     "shipped, still checked against the classic output on the round trips).")
DeviceOption = typer.Option("auto", "--device", metavar="auto|cpu|cuda|cuda:N", help="Where the refiner's networks run: "
                            "auto (CUDA when torch sees it, else the CPU), cpu, cuda or cuda:N. On the CPU the output "
                            "is byte-identical run to run; on CUDA it may differ in the last bit from the CPU's.")
AdaptOption = typer.Option(True, "--adapt/--no-adapt",
                           help="Let the refiner choose its strengths on this clip, by propagating each keyframe to "
                                "the next and comparing (one more warp step and a few small passes per keyframe).")
ColorTableOption = typer.Option(None, "--color-table", help="CSV 'id,r,g,b' for RGB colour-coded labels (default: "
                                                                  "the colours found in the keyframes).")
ThreadsOption = typer.Option(None, "--threads", min=1, show_default="every core",
                             help="CPU threads to use (flow both ways at once from 2); results do not depend on it.")


def command_line() -> str:
    """This run's command line, for manifests."""
    return shlex.join(["autolabel", *sys.argv[1:]])


def make_refiner(refine: bool, spec: str, adapt: bool = True, device: str = "auto", steps: Optional[int] = None):
    """The refiner asked for, or None for geometric propagation only. With --no-refine nothing runs on
    --device, so it is not checked (a script may pass both); --adapt-steps where no network learns the
    clip would do nothing, and is refused as a usage error."""
    if not refine:
        return None
    from ..refiner.load import is_classic, load_refiner

    if steps is not None and (is_classic(spec) or not adapt):
        why = "--no-adapt" if not adapt else f"--refiner {spec} (no network learns the clip)"
        raise typer.BadParameter(f"does nothing with {why}", param_hint="'--adapt-steps'")
    if device != "auto" and device != "cpu":  # checked for the classic refiner too, as before
        from ..refiner.device import resolve_device
        resolve_device(device)
    return load_refiner(spec, adapt, device, steps)


def refiner_spec(spec: str) -> str:
    """--refiner as workers in other folders (Ray) must see it: a path made absolute."""
    return spec if spec in ("default", "classic") else str(Path(spec).absolute())


def make_settings(flow, flow_preset, flow_scale, fusion) -> Settings:
    return Settings(flow=flow.value, flow_preset=flow_preset.value, flow_scale=flow_scale, fusion=fusion.value)
