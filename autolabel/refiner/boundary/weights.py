"""The boundary network's weights file: a `torch.save`d dict of tensors and plain values, loaded with
`weights_only=True` (nothing executable):

  format   FORMAT
  state    the network's state dict (boundary/model.py)
  steps    {"cpu": steps, "cuda": steps}: per-clip learning steps per round trip by default
  trained  how it was made (command, data, time)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...errors import InputError
from .model import BoundaryNet

FORMAT = "autolabel-boundary-refiner/1"
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[3] / "models" / "boundary.pt"
# Steps of per-clip learning per round trip, by default. On the shared clips (keyframes every 10), 30
# steps, each round trip checked before it teaches, gained on two DAVIS clips and lost on none, for
# 3-4x the refine stage's time on the CPU (python -m autolabel.evaluation.ablation; models/MODEL_CARD.md):
# worth it where a GPU makes it cheap. On the CPU the shipped network is only checked (0), and
# `--adapt-steps 30` asks for the learning.
STEPS = {"cpu": 0, "cuda": 30}


@dataclass
class BoundaryWeights:
    state: dict
    steps: dict = field(default_factory=lambda: dict(STEPS))
    trained: dict = field(default_factory=dict)
    path: Path | None = None

    def network(self) -> BoundaryNet:
        net = BoundaryNet()
        net.load_state_dict(self.state)
        return net

    def save(self, path: str | Path) -> None:
        path = Path(path)
        staging = path.with_name(f".{path.name}.tmp")
        torch.save({"format": FORMAT, "state": self.state, "steps": self.steps, "trained": self.trained}, staging)
        torch.load(staging, weights_only=True)   # what we write must load the safe way
        staging.replace(path)


def load_boundary_weights(path: str | Path | None = None) -> BoundaryWeights:
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise ValueError
        weights = BoundaryWeights(blob["state"], blob["steps"], blob["trained"], path)
        weights.network()
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError) as error:
        reason = "cannot be read" if isinstance(error, OSError) else f"is not {FORMAT} weights"
        raise InputError(path, f"boundary refiner weights {reason}") from None
    return weights


def is_boundary_file(path: Path) -> bool:
    """Whether `path` holds boundary weights (else: some other weights file, or none)."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - unreadable files are the other loaders' to explain
        return False
    return isinstance(blob, dict) and blob.get("format") == FORMAT
