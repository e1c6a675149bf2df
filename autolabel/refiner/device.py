"""Where the refiner's networks run, and how their CUDA runs are kept repeatable."""
from __future__ import annotations

import os

import torch

from ..errors import InputError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto`: CUDA when torch sees it, else the CPU. A device that isn't there is bad input."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError("--device", f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device", f"{name}: torch sees no CUDA device on this machine "
                             f"(torch {torch.__version__}); use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError("--device", f"{name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise InputError("--device", f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return device


def make_repeatable(device: torch.device) -> None:
    """Deterministic kernels on CUDA where torch has them (a few have none: outputs may then differ in the
    last bit from run to run; on the CPU, with fixed threads, they never do)."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
