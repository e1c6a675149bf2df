"""Which refiner a run uses: `load_refiner(spec)`, the one entry point for the CLI, batch and the API.

spec: None or "default": the learned refiner shipped in models/ (network + classic cues);
"classic": the classic refiner alone (colour cue and guided filter, OpenCV only, no torch);
a path: a .json file is classic weights (from `autolabel train --classic`), anything else
learned weights (from `autolabel train`), used with the shipped classic cues.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError

CLASSIC = "classic"
DEFAULT = "default"


def is_classic(spec) -> bool:
    return spec is not None and (str(spec) == CLASSIC or Path(str(spec)).suffix.lower() == ".json")


def weight_files(spec) -> list[Path]:
    """The files a refiner spec reads: what a batch's resume fingerprint covers."""
    from ..core.refine import DEFAULT_WEIGHTS as CLASSIC_WEIGHTS

    if spec is None or str(spec) == DEFAULT:
        from .weights import DEFAULT_WEIGHTS
        return [DEFAULT_WEIGHTS, CLASSIC_WEIGHTS]
    if str(spec) == CLASSIC:
        return [CLASSIC_WEIGHTS]
    return [Path(spec)] if is_classic(spec) else [Path(spec), CLASSIC_WEIGHTS]


def load_refiner(spec=None, adapt: bool = True, device: str = "auto", steps: int | None = None):
    """The refiner for `spec` (see the module's doc). `device` and `steps` (per-clip learning steps;
    None: the weights' default for the device) apply to learned refiners. Bad specs, weights or
    devices raise InputError before any work."""
    from ..core.refine import load_refiner as load_classic

    if is_classic(spec):
        return load_classic(None if str(spec) == CLASSIC else spec, adapt)
    from .learned import LearnedRefiner
    from .weights import load_weights, resolve_device

    torch_device = resolve_device(device)
    path = None if spec is None or str(spec) == DEFAULT else Path(spec)
    if path is not None and not path.is_file():
        raise InputError(path, "refiner weights not found")
    if steps is not None and steps < 0:
        raise InputError("--adapt-steps", "must be 0 or more")
    return LearnedRefiner(load_weights(path), load_classic(None, adapt), torch_device, adapt, steps)
