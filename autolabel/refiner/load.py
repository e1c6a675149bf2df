"""Which refiner a run uses: `load_refiner(spec)`, the one entry point for the CLI, batch and the API.

spec: None or "default": the classic refiner, then the boundary network shipped in models/
(boundary.pt), learned per clip from its keyframes (refiner/boundary.py);
"classic": the classic refiner alone (colour cue and guided filter, OpenCV only, no torch);
a path: a .json file is classic weights (from `autolabel train --classic`); a .pt file from
`autolabel train --boundary` is boundary weights, used over the classic refiner; any other .pt
file is a dataset's class prior (from `autolabel train`), used between the classic refiner and
the shipped boundary network.
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
    from .boundary.weights import DEFAULT_WEIGHTS as BOUNDARY_WEIGHTS

    if spec is None or str(spec) == DEFAULT:
        return [BOUNDARY_WEIGHTS, CLASSIC_WEIGHTS]
    if str(spec) == CLASSIC:
        return [CLASSIC_WEIGHTS]
    return [Path(spec)] if is_classic(spec) else [Path(spec), BOUNDARY_WEIGHTS, CLASSIC_WEIGHTS]


def load_refiner(spec=None, adapt: bool = True, device: str = "auto", steps: int | None = None):
    """The refiner for `spec` (see the module's doc). `device` and `steps` (per-clip learning steps
    per keyframe sample; None: the weights' default for the device) apply to the networks. Bad specs,
    weights or devices raise InputError before any work."""
    from ..core.refine import load_refiner as load_classic

    if is_classic(spec):
        return load_classic(None if str(spec) == CLASSIC else spec, adapt)
    from .boundary.stage import BoundaryRefiner
    from .boundary.weights import is_boundary_file, load_boundary_weights
    from .device import resolve_device

    torch_device = resolve_device(device)
    if steps is not None and steps < 0:
        raise InputError("--adapt-steps", "must be 0 or more")
    path = None if spec is None or str(spec) == DEFAULT else Path(spec)
    if path is not None and not path.is_file():
        raise InputError(path, "refiner weights not found")
    base = load_classic(None, adapt)
    if path is not None and is_boundary_file(path):
        return BoundaryRefiner(base, load_boundary_weights(path), torch_device, adapt, steps)
    if path is not None:   # a dataset's class prior, between the classic refiner and the boundary network
        from .prior.stage import PriorRefiner
        from .prior.weights import load_weights

        base = PriorRefiner(load_weights(path), base, torch_device, adapt)
    return BoundaryRefiner(base, load_boundary_weights(None), torch_device, adapt, steps)
