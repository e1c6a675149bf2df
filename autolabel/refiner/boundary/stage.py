"""The boundary refine stage: a base refiner, then the boundary network, checked per clip on round trips.

The base refiner (the classic colour cue and edge filter, or a dataset's class prior over it)
repairs what is wrong at large. What it leaves is mostly within a few pixels of the label
boundaries: thin parts and edges the warp put a little off. The boundary network (model.py)
reads the frame and the carried labels in a band around the base's boundaries, at full
resolution, and corrects each class there (band.py).

The pipeline carries each keyframe's labels a few frames on and back to it (`learn_round_trip`):
refined by the base, the round trip shows this clip's errors at the distances its frames have,
and the keyframe's own label is the target (cycle consistency). Each round trip first *checks*
the network as it stands, which has never trained on it (prequential validation), then, with
`steps` > 0, teaches it. The network is used on the clip only while it has fixed more pixels
than it broke on the round trips it had not yet seen; otherwise the base's labels stand. The
same round trips calibrate the confidence (confidence.py).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from ..device import make_repeatable
from .band import CELL, band_mask, chunks, padded_to_crop
from .confidence import ConfidenceTable
from .model import base_logit, label_inputs
from .weights import BoundaryWeights

BATCH = 12
LEARNING_RATE = 1e-3
ITEMS_PER_SAMPLE = 96          # (crop, class) items kept from each sample, evenly spaced
MAX_ITEMS = 1536               # kept over the clip (the oldest go): memory stays bounded
DISTANCE_UNIT = 30             # u = frames to the nearest keyframe / this, capped at 1
# Fixed: the thread count changes float sums and so the outputs; the flow's two threads run beside.
THREADS = 1
# Cells of a round trip's band the check looks at (evenly spaced along it): a 2048x1024 street scene
# has ~800, and checking them all cost 5 s a keyframe on the CPU.
CHECKED_CELLS = 128
CHECKS_NEEDED = 2
# Round trips per clip, from keyframes evenly spaced over it (a clip with keyframes every 2nd frame has
# dozens, each a check of about half a second on the CPU): the cost is bounded whatever the clip's length.
MAX_ROUND_TRIPS = 16
TRUST_MARGIN = 1.5


def distance_share(distance: int) -> float:
    return min(distance, DISTANCE_UNIT) / DISTANCE_UNIT


class BoundaryRefiner:
    """Same interface as core.refine.Refiner: `start_clip`, `learn`, `refine`; `base` refines first."""

    def __init__(self, base, weights: BoundaryWeights, device: torch.device, adapt: bool = True,
                 steps: int | None = None, seed: int = 0):
        self.base, self.weights, self.device, self.adapt, self.seed = base, weights, device, adapt, seed
        self.steps = steps if steps is not None else int(weights.steps["cuda" if device.type == "cuda" else "cpu"])
        self.path = weights.path
        self.name = f"boundary:{weights.path.name if weights.path else 'weights'}+{base.name}"

    def start_clip(self, keyframes, n_channels: int, channel_ids=None) -> None:
        self.base.start_clip(keyframes, n_channels, channel_ids=channel_ids)
        make_repeatable(self.device)
        torch.manual_seed(self.seed)
        self.net = self.weights.network().to(self.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=LEARNING_RATE)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.items: list[dict] = []
        self.max_items: int | None = MAX_ITEMS
        self.report = {"samples": 0, "pixels_fixed": 0, "pixels_broken": 0, "steps": 0}
        # how often the base's and the network's labels were right on the samples, for the confidence
        self.tables = {"base": ConfidenceTable(), "network": ConfidenceTable()}

    @property
    def round_trips(self) -> int:
        """How many keyframes the pipeline carries a round trip from (evenly spaced)."""
        return MAX_ROUND_TRIPS if self.adapt else 0

    @property
    def trusted(self) -> bool:
        """Use the network: on at least CHECKS_NEEDED round trips it had not trained on, it fixed
        TRUST_MARGIN times the pixels it broke (a bare majority on one or two round trips was
        measured to turn into losses on the frames: models/MODEL_CARD.md)."""
        report = self.report
        return (report["samples"] >= CHECKS_NEEDED
                and report["pixels_fixed"] >= TRUST_MARGIN * max(report["pixels_broken"], 1))

    # -- per-clip learning -------------------------------------------------------------------------

    def learn(self, frame, probs, reliability, target, distance: int, present=None) -> None:
        """A keyframe reached from the previous one: the base chooses its strengths on it."""
        self.base.learn(frame, probs, reliability, target, distance, present)

    def learn_round_trip(self, frame, probs, reliability, target, distance: int, present=None) -> None:
        """A keyframe's labels carried `distance` frames on and back to it: check the network on it, then
        (with `steps`) learn from it."""
        if not self.adapt:
            return
        channels, confidence = self.base.refine(frame, probs, reliability, distance, present)
        torch.set_num_threads(THREADS)
        refined, refined_confidence = self._apply(frame, channels, confidence, probs, reliability, distance,
                                                  max_cells=CHECKED_CELLS)
        self.tables["base"].add(channels, confidence, reliability, target)
        self.tables["network"].add(refined, refined_confidence, reliability, target)
        changed = refined != channels
        self.report["pixels_fixed"] += int((changed & (refined == target)).sum())
        self.report["pixels_broken"] += int((changed & (channels == target)).sum())
        self.report["samples"] += 1
        if self.steps > 0:
            self.keep(frame, channels, confidence, probs, reliability, target, distance)
            self.train_steps(self.steps)

    def keep(self, frame, channels, confidence, probs, reliability, target, distance, ignore: int | None = None) -> None:
        """Crops of one sample to learn from: the base's (channels, confidence) on the carried `probs`,
        and the true `target` (pixels of channel `ignore` teach nothing)."""
        maps = [padded_to_crop(a) for a in (frame, channels, confidence, probs, reliability, target)]
        frame, channels, confidence, probs, reliability, target = maps
        items = []
        for chunk in chunks(frame, channels, confidence, probs, reliability, band_mask(channels), probs.shape[2]):
            for i, (crop, c) in enumerate(zip(chunk.crop_of.tolist(), chunk.classes.tolist())):
                top, left = chunk.boxes[crop]
                truth = target[top:top + chunk.rgb.shape[2], left:left + chunk.rgb.shape[3]]
                items.append({"rgb": chunk.rgb[crop].to(torch.uint8), "q": chunk.q[i].half(),
                              "warped": chunk.warped[i].half(), "reliability": chunk.reliability[i].half(),
                              "u": distance_share(distance),
                              "band": chunk.band[i] & torch.from_numpy(truth != ignore),
                              "target": torch.from_numpy(truth == c)})
        if len(items) > ITEMS_PER_SAMPLE:   # evenly spaced along the band: the whole boundary, deterministically
            items = [items[i] for i in np.linspace(0, len(items) - 1, ITEMS_PER_SAMPLE).round().astype(int)]
        self.items = (self.items + items)[-self.max_items:] if self.max_items else self.items + items

    def train_steps(self, steps: int) -> None:
        if not self.items or steps <= 0:
            return
        self.net.train()
        for _ in range(steps):
            picked = torch.randint(len(self.items), (BATCH,), generator=self.generator).tolist()
            batch = {k: torch.stack([torch.as_tensor(self.items[i][k]) for i in picked]).to(self.device)
                     for k in ("rgb", "q", "warped", "reliability", "u", "band", "target")}
            q = batch["q"].float()
            logits = base_logit(q) + self.net(self.net.image_features(batch["rgb"].float()),
                                              label_inputs(q, batch["warped"].float(), batch["reliability"].float(),
                                                           batch["u"].float()))
            loss = F.binary_cross_entropy_with_logits(logits[batch["band"]], batch["target"][batch["band"]].float())
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.report["steps"] += steps
        self.net.eval()

    # -- a frame ---------------------------------------------------------------------------------

    def refine(self, frame, probs, reliability, distance: int, present=None, one_sided: bool = False,
               spacing: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        channels, confidence = self.base.refine(frame, probs, reliability, distance, present, one_sided, spacing)
        table = self.tables["base"]
        if self.trusted and probs.shape[2] >= 2:
            torch.set_num_threads(THREADS)
            channels, confidence = self._apply(frame, channels, confidence, probs, reliability, distance)
            table = self.tables["network"]
        return channels, (table(channels, confidence, reliability) if table else confidence)

    @torch.no_grad()
    def _apply(self, frame, channels, confidence, probs, reliability, distance, max_cells: int | None = None):
        """The base's (channels, confidence) corrected by the network within the band (in at most
        `max_cells` of its cells, evenly spaced; elsewhere the base's stand)."""
        height, width = channels.shape
        if probs.shape[2] < 2:
            return channels, confidence
        padded = [padded_to_crop(a) for a in (frame, channels, confidence, probs, reliability)]
        out_channels, out_confidence = padded[1].copy(), padded[2].copy()
        band = band_mask(padded[1])
        u = torch.tensor(distance_share(distance))
        self.net.eval()
        for chunk in chunks(*padded, band, probs.shape[2], max_cells):
            features = self.net.image_features(chunk.rgb.to(self.device))
            q = chunk.q.to(self.device)
            correction = self.net(features[chunk.crop_of.to(self.device)],
                                  label_inputs(q, chunk.warped.to(self.device), chunk.reliability.to(self.device),
                                               u.expand(len(q)).to(self.device)))
            sure = torch.sigmoid(base_logit(q) + correction).cpu().numpy()
            q = q.cpu().numpy()
            crop_of, classes = chunk.crop_of.numpy(), chunk.classes.numpy()
            for crop, ((top, left), (row, col)) in enumerate(zip(chunk.boxes, chunk.cells)):
                items = np.flatnonzero(crop_of == crop)
                cell = np.s_[row - top:row - top + CELL, col - left:col - left + CELL]
                s = sure[items][(slice(None), *cell)]
                # classes not in the crop keep the base's share; the corrected ones are renormalised with it
                rest = np.clip(1 - q[items][(slice(None), *cell)].sum(0), 0, None)
                best = s.argmax(0)
                top_share = np.take_along_axis(s, best[None], 0)[0] / (s.sum(0) + rest)
                where = band[row:row + CELL, col:col + CELL]
                target = np.s_[row:row + CELL, col:col + CELL]
                out_channels[target][where] = classes[items][best][where]
                out_confidence[target][where] = np.minimum(top_share[where], 1)
        return out_channels[:height, :width], out_confidence[:height, :width]
