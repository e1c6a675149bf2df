"""The class prior's weights file.

A weights file is a `torch.save`d dict of tensors and plain values, loaded with
`weights_only=True` (nothing executable):

  format        FORMAT
  trunk         the network's trunk (state dict)
  head          a class head (state dict) with `class_ids`, the dataset ids of its outputs,
                when the file was trained on a dataset (`autolabel train DATASET`); else None
  ignore_index  the dataset's ignore id, or None
  work_pixels   the network's working size in pixels
  fusion        {"alpha": {max channels: weight of the network per unit of distance/spacing},
                 "calibration": {max channels: the classic confidence's calibration table}}
  adapt_steps   {"cpu": steps, "cuda": steps} of per-clip learning by default
  trained       how it was made (command, data, time)
"""
from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...errors import InputError, writing
from .model import WORK_PIXELS, RefinerNet

FORMAT = "autolabel-learned-refiner/1"
# Per-clip learning steps by default: the CPU's few keep a run near the flow's cost; a GPU affords more.
ADAPT_STEPS = {"cpu": 50, "cuda": 500}
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[3] / "models" / "refiner.pt"


@dataclass
class Weights:
    trunk: dict
    head: dict | None = None
    class_ids: list[int] | None = None
    ignore_index: int | None = None
    work_pixels: int = WORK_PIXELS
    fusion: dict = field(default_factory=lambda: {"alpha": {}})   # unfitted: the network has no say
    adapt_steps: dict = field(default_factory=lambda: dict(ADAPT_STEPS))
    trained: dict = field(default_factory=dict)
    path: Path | None = None

    def network(self, n_classes: int) -> RefinerNet:
        """A network with this trunk and a fresh head of `n_classes` outputs."""
        net = RefinerNet(n_classes)
        net.trunk.load_state_dict(self.trunk)
        return net

    def alpha(self, n_channels: int) -> float:
        return float(_by_size(self.fusion["alpha"], n_channels, 0.0))

    def calibration(self, n_channels: int) -> dict:
        return _by_size(self.fusion.get("calibration", {}), n_channels, {})

    def save(self, path: str | Path) -> None:
        path = Path(path)
        blob = {"format": FORMAT, "trunk": self.trunk, "head": self.head, "class_ids": self.class_ids,
                "ignore_index": self.ignore_index, "work_pixels": self.work_pixels,
                "fusion": self.fusion,
                "adapt_steps": dict(self.adapt_steps), "trained": self.trained}
        staging = path.with_name(f".{path.name}.tmp")
        try:
            with writing(path):
                torch.save(blob, staging)
        except BaseException:
            staging.unlink(missing_ok=True)   # half a file on a full disk
            raise
        torch.load(staging, weights_only=True)   # what we write must load the safe way
        staging.replace(path)


def _by_size(values: dict, n_channels: int, missing):
    """The entry of {largest label-set size: value} that a label set of `n_channels` falls under."""
    bounds = sorted(int(b) for b in values)
    if not bounds:
        return missing
    bound = next((b for b in bounds if n_channels <= b), bounds[-1])
    return values[bound] if bound in values else values[str(bound)]


def load_weights(path: str | Path | None = None) -> Weights:
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    blob = _read_blob(path)
    try:
        weights = Weights(blob["trunk"], blob["head"], blob["class_ids"], blob["ignore_index"],
                          int(blob["work_pixels"]), blob["fusion"], blob["adapt_steps"], blob["trained"], path)
        RefinerNet(1).trunk.load_state_dict(weights.trunk)   # the trunk fits this code's network
    except KeyError as error:
        raise _refused(path, f"{FORMAT} weights without {error.args[0]!r}") from None
    except (ValueError, TypeError, AttributeError, RuntimeError):
        raise _refused(path, "a network that does not fit this version of autolabel's refiner") from None
    return weights


# A file that is not our weights is described in our words: torch's own messages advise loading
# without weights_only (running whatever the file holds), which we never do nor advise.
ZIP_SIGNATURE = b"PK\x03\x04"   # torch.save's format since torch 1.6
PICKLE_START = b"\x80"           # torch's legacy format (and plain pickles)


def _refused(path: Path, problem: str) -> InputError:
    return InputError(path, f"cannot load refiner weights: {problem}")


def _read_blob(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            start = handle.read(4)
    except OSError as error:
        raise _refused(path, error.strerror or str(error)) from None
    if not start:
        raise _refused(path, "the file is empty")
    if not start.startswith((ZIP_SIGNATURE, PICKLE_START)):
        raise _refused(path, "not a PyTorch file (refiner weights are written by `autolabel train`)")
    try:
        with warnings.catch_warnings():   # torch warns of unusual pickle protocols with a source line
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise _refused(path, "the file holds Python objects, not only tensors and plain values as "
                             "refiner weights do") from None
    except (RuntimeError, EOFError, ValueError, OSError):
        raise _refused(path, "a damaged or truncated PyTorch file") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        found = blob.get("format") if isinstance(blob, dict) else None
        raise _refused(path, f"a PyTorch file but not {FORMAT} weights"
                             + (f" (its format is {found!r})" if isinstance(found, str) else ""))
    return blob
