"""What the commands share: option enums, typer options, `fail` (bad input: one line, exit 2),
and turning options into `Settings` and a refiner. Nothing here loads torch."""
from __future__ import annotations

import re
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
RefineOption = typer.Option(False, "--refine/--no-refine", help="Repair the warped labels with the refiner network "
                            "(models/refiner.pt). On the shared clips it gains +0.4 (keyframes every 10) to +1.8 "
                            "(every 30) points for about twice the time.")
RefinerOption = typer.Option(None, "--refiner", help="Refiner weights to use (implies --refine), e.g. from "
                             "`autolabel train`.")
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(device: str) -> str:
    """auto, cpu, cuda or cuda:N; a CUDA device must exist here (torch is imported only to check that)."""
    if not DEVICE.fullmatch(device):
        fail(InputError("--device", f"{device!r} is not a device: use auto, cpu, cuda or cuda:N"))
    if device.startswith("cuda"):
        import torch

        index = int(device.partition(":")[2] or 0)
        if not torch.cuda.is_available():
            fail(InputError("--device", f"{device}: CUDA is not available on this machine"))
        if index >= torch.cuda.device_count():
            fail(InputError("--device", f"{device}: this machine has {torch.cuda.device_count()} CUDA devices"))
    return device


DeviceOption = typer.Option("auto", "--device", metavar="<auto|cpu|cuda|cuda:N>", callback=check_device,
                            help="Refiner device: auto is CUDA when present, else the CPU.")


def command_line() -> str:
    """This run's command line, for manifests."""
    return shlex.join(["autolabel", *sys.argv[1:]])


def make_refiner(refine: bool, path: Optional[Path], device: str):
    """The refiner asked for, or None for geometric propagation only."""
    if not refine and path is None:
        return None
    from ..core.refine import Refiner

    try:
        return Refiner(path, device)
    except FileNotFoundError:
        raise InputError(path or "models/refiner.pt", "refiner weights not found") from None


def make_settings(flow, flow_preset, flow_scale, fusion) -> Settings:
    return Settings(flow=flow.value, flow_preset=flow_preset.value, flow_scale=flow_scale, fusion=fusion.value)
