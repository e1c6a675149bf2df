"""What the commands share: option enums, typer options, `fail` (bad input: one line, exit 2),
and turning options into `Settings` and a refiner. Nothing here loads torch."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.text import Text

from ..core.pipeline import Settings
from ..errors import InputError
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
RefineOption = typer.Option(False, "--refine", help="Repair the fused labels with the refiner network "
                            "(models/refiner.pt). Opt-in: the shipped v1 weights were trained to repair each "
                            "keyframe's side and change no label on the fused ones.")
RefinerOption = typer.Option(None, "--refiner", help="Refiner weights to use (implies --refine), e.g. from "
                             "`autolabel train`.")
DeviceOption = typer.Option("auto", "--device", help="Refiner device: auto (CUDA when present), cpu, cuda.")


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
