"""`autolabel suggest`: which frames to label, before any label exists or after some do.

Labels carry well between frames when the flow between them is consistent and smooth.
Each step t -> t+1 of the clip gets a *cost*: one frame of distance (reliability decays
per step) plus the flow's deformation (its mean spatial gradient: bodies that bend, objects
moving against the background, flow torn apart at occlusions and cuts), where labels drift
and break. Camera motion alone is a smooth flow and costs little.
Summed along the clip these costs give every frame a position on a "label distance"
axis, and a frame's predicted error grows with its label distance to the nearest
keyframe.

- Before labeling (`choose_keyframes`): N keyframes minimising the summed label distance
  of all frames to their nearest keyframe, exactly (`place_keyframes`: 1-D k-median by
  dynamic programming). With constant step costs this is the centred placement (centres
  of N equal parts); content moves keyframes to where reliability runs out, but only when
  it predicts enough of a saving (EVIDENCE), else the centres stay.
- After labeling (`add_keyframes`): the propagation's per-frame uncertainty (mean of
  1 - confidence: the expected share of wrong pixels) is the current error; a new
  keyframe at t is predicted to bring nearby frames down to `slope * label distance
  to t`, with `slope` fitted on the current result (uncertainty against label distance
  to the nearest keyframe). Frames are added greedily by predicted gain, each only
  affecting the frames between its neighbouring keyframes.

Arrays in, arrays out; `scan_clip` and `propagation_uncertainty` read the frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.flow import FlowEstimator
from ..core.warp import consistency, sampling_maps

# Cost of one step, in frames: 1 + DEFORMATION_COST * mean |spatial gradient of the flow|.
# Chosen on the shared DAVIS clips (loop/suggest_bench.py), against weighting the
# forward-backward occlusion share and (camera-compensated) motion instead: see the closing
# note of issue 10. Occlusion and motion are still measured, as reasons in --json. `--add` and
# the reasons use this axis.
DEFORMATION_COST = 20.0
TRUST_THRESHOLD = 0.5       # a pixel whose forward-backward trust is below this counts as occluded
DECAY = 0.97                # the pipeline's reliability kept per step: predicted reliability = DECAY ** distance
MAX_CANDIDATES = 600        # exact placement over at most this many evenly spread candidate frames
# `suggest --budget` (choose_keyframes): the step cost's deformation weight, how many times the
# label distance of frames beyond the outer keyframes counts (one propagation, nothing to fuse),
# and the evidence the content must give to leave the centred placement. Fitted with
# leave-one-clip-out on the six shared DAVIS clips, among end weights that leave a clip of even
# content at the centred placement: python -m autolabel.loop.suggest_fit (README, the labeling
# loop). An end weight of 1.5 (issue 10) gained more on those clips, but it alone moves a 49-frame
# clip's two keyframes from 12 and 36 to 9 and 38: what cost an unseen clip 12.8 J (issue 15).
PLACEMENT_COST = 160.0
ONE_SIDED = 1.0
EVIDENCE = 0.006652


@dataclass
class ClipScan:
    """What `suggest` knows about a clip before labeling: one entry per step t -> t+1."""
    occlusion: np.ndarray    # (n-1,) share of pixels failing the forward-backward check inside the frame
    motion: np.ndarray       # (n-1,) mean flow magnitude, % of the frame diagonal
    deformation: np.ndarray  # (n-1,) mean |d flow / dx| + |d flow / dy| (px per px)

    @property
    def n_frames(self) -> int:
        return len(self.occlusion) + 1

    def step_costs(self, deformation_cost: float = DEFORMATION_COST) -> np.ndarray:
        return 1.0 + deformation_cost * self.deformation

    def positions(self, deformation_cost: float = DEFORMATION_COST) -> np.ndarray:
        """Each frame's place on the label-distance axis (frame 0 at 0)."""
        return np.concatenate([[0.0], np.cumsum(self.step_costs(deformation_cost))])

    def frame_occlusion(self) -> np.ndarray:
        """Per frame: the mean of its two neighbouring steps."""
        return _per_frame(self.occlusion)

    def frame_motion(self) -> np.ndarray:
        return _per_frame(self.motion)


def _per_frame(steps: np.ndarray) -> np.ndarray:
    if len(steps) == 0:
        return np.zeros(1)
    padded = np.concatenate([steps[:1], steps, steps[-1:]])
    return (padded[:-1] + padded[1:]) / 2


def step_stats(flow_forward: np.ndarray, flow_backward: np.ndarray) -> tuple[float, float, float]:
    """(occluded share, mean motion in % of the diagonal, deformation) of one pair of flows (float32, HxWx2)."""
    occluded = []
    for pull, push in ((flow_backward, flow_forward), (flow_forward, flow_backward)):
        maps = sampling_maps(pull)
        trust = consistency(pull, push, maps)
        occluded.append(float(((trust < TRUST_THRESHOLD) & ~maps.outside).mean()))  # leaving the frame is no occlusion
    height, width = flow_forward.shape[:2]
    magnitude = np.hypot(flow_forward[..., 0], flow_forward[..., 1]).mean()
    deformation = (np.abs(np.diff(flow_forward, axis=1)).sum(axis=2).mean()
                   + np.abs(np.diff(flow_forward, axis=0)).sum(axis=2).mean())
    return sum(occluded) / 2, float(100 * magnitude / np.hypot(height, width)), float(deformation)


def scan_clip(source, estimator: FlowEstimator, on_frame=lambda done, total: None) -> ClipScan:
    """Flow between every pair of neighbouring frames (through the estimator's cache, if any),
    reduced to per-step statistics as it goes: memory does not grow with the clip."""
    n = len(source)
    stats = np.zeros((max(n - 1, 0), 3))
    gray = estimator.gray(source.read(0))
    on_frame(1, n)
    for t in range(n - 1):
        gray_next = estimator.gray(source.read(t + 1))
        flow_forward, flow_backward = (f.astype(np.float32) for f in estimator.pair_small(gray, gray_next))
        stats[t] = step_stats(flow_forward, flow_backward)
        gray = gray_next
        on_frame(t + 2, n)
    return ClipScan(*stats.T)


# ---------------------------------------------------------------- placement

def _segment_costs(positions: np.ndarray, candidates: np.ndarray,
                   one_sided: float = ONE_SIDED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Summed label distance of the frames served by keyframes at candidates i < j.

    Returns (between[i, j]: frames strictly between candidates i and j, each to the
    nearer of the two; before[j]: frames before candidate j; after[i]: frames after i).
    """
    prefix = np.concatenate([[0.0], np.cumsum(positions)])   # prefix[k] = sum of positions[:k]

    def total(lo, hi):  # sum of positions[lo:hi], elementwise
        return prefix[hi] - prefix[lo]

    c = positions[candidates]
    i, j = np.meshgrid(np.arange(len(candidates)), np.arange(len(candidates)), indexing="ij")
    a, b = candidates[i], candidates[j]
    middle = (c[i] + c[j]) / 2
    # First frame nearer to b: positions are non-decreasing, so a binary search.
    split = np.clip(np.searchsorted(positions, middle, side="right"), a + 1, np.maximum(b, a + 1))
    left = total(a + 1, split) - (split - a - 1) * c[i]
    right = (b - split) * c[j] - total(split, b)
    between = np.where(j > i, left + right, np.inf)
    before = one_sided * (candidates * c - total(0, candidates))
    n = len(positions)
    after = one_sided * (total(candidates + 1, n) - (n - 1 - candidates) * c)
    return between, before, after


def place_keyframes(positions: np.ndarray, budget: int, fixed: tuple[int, ...] = (),
                    one_sided: float = ONE_SIDED) -> list[int]:
    """`budget` frame indices (including `fixed`) minimising the summed label distance of
    every frame to its nearest keyframe. Exact over the candidate frames (every frame
    for clips up to MAX_CANDIDATES frames, evenly spread ones plus `fixed` beyond)."""
    n = len(positions)
    if not 0 < budget <= n or len(fixed) > budget:
        raise ValueError(f"budget must be between {max(1, len(fixed))} and {n} frames")
    candidates = np.unique(np.concatenate([np.linspace(0, n - 1, min(n, MAX_CANDIDATES)).round(),
                                           np.asarray(fixed, float)])).astype(np.int64)
    between, before, after = _segment_costs(positions, candidates, one_sided)
    is_fixed = np.isin(candidates, fixed)
    # No keyframe may jump over a fixed one: forbid transitions i -> j with a fixed candidate strictly between.
    fixed_count = np.cumsum(is_fixed)
    i, j = np.meshgrid(np.arange(len(candidates)), np.arange(len(candidates)), indexing="ij")
    between = np.where(fixed_count[np.maximum(j - 1, 0)] - fixed_count[i] > 0, np.inf, between)
    first_fixed = np.argmax(is_fixed) if is_fixed.any() else len(candidates)
    # cost[j]: best total for frames up to candidate j with j the k-th keyframe.
    cost = np.where(np.arange(len(candidates)) <= first_fixed, before, np.inf)
    back = []
    for _ in range(budget - 1):
        options = cost[:, None] + between
        back.append(options.argmin(axis=0))
        cost = options.min(axis=0)
    last_fixed = len(candidates) - 1 - np.argmax(is_fixed[::-1]) if is_fixed.any() else -1
    final = np.where(np.arange(len(candidates)) >= last_fixed, cost + after, np.inf)
    if not np.isfinite(final.min()):
        raise ValueError(f"cannot place {budget} keyframes with the given ones kept")
    chosen = [int(final.argmin())]
    for step in reversed(back):
        chosen.append(int(step[chosen[-1]]))
    return sorted(int(candidates[k]) for k in chosen)


def centred(n: int, count: int) -> list[int]:
    """The centres of `count` equal parts of an n-frame clip: the placement that knows nothing of the content."""
    return [int((i + 0.5) * n / count) for i in range(count)]


def placement_cost(positions: np.ndarray, keyframes, one_sided: float = ONE_SIDED) -> float:
    """What `place_keyframes` minimises: every frame's label distance to its nearest keyframe, summed,
    frames beyond the outer keyframes counting `one_sided` times."""
    keys = sorted(keyframes)
    weight = np.where((np.arange(len(positions)) < keys[0]) | (np.arange(len(positions)) > keys[-1]), one_sided, 1.0)
    return float((weight * label_distance(positions, keys)).sum())


def choose_keyframes(scan: ClipScan, budget: int, deformation_cost: float = PLACEMENT_COST,
                     evidence: float = EVIDENCE, one_sided: float = ONE_SIDED) -> tuple[list[int], float]:
    """(keyframes, evidence found): the content placement when the content is evidence enough, else centred.

    The evidence is how much less summed label distance the content placement predicts than the
    placement the same model makes for a clip of even content (its prior: centred, or with the ends
    weighted, outer keyframes pulled in), as a share of the latter. Without content to go on a
    model's prior is a guess; the centred placement is the rule that costs no clip much."""
    positions = scan.positions(deformation_cost)
    moved = place_keyframes(positions, budget, one_sided=one_sided)
    prior = place_keyframes(np.arange(scan.n_frames, dtype=float), budget, one_sided=one_sided)
    found = 1.0 - placement_cost(positions, moved, one_sided) / max(placement_cost(positions, prior, one_sided), 1e-12)
    return (moved if found >= evidence else centred(scan.n_frames, budget)), found


def label_distance(positions: np.ndarray, keyframes) -> np.ndarray:
    """Per frame: label distance to the nearest keyframe."""
    keys = positions[np.asarray(sorted(keyframes))]
    return np.abs(positions[:, None] - keys[None, :]).min(axis=1)


def removal_cost(positions: np.ndarray, keyframes: list[int]) -> dict[int, float]:
    """How much the summed label distance grows without each keyframe (its contribution)."""
    total = label_distance(positions, keyframes).sum()
    return {k: float(label_distance(positions, [o for o in keyframes if o != k]).sum() - total)
            if len(keyframes) > 1 else float("inf") for k in keyframes}


def add_keyframes(positions: np.ndarray, uncertainty: np.ndarray, keyframes: list[int],
                  count: int) -> list[tuple[int, float]]:
    """`count` frames to label next, each with its predicted gain (summed over frames, in units of
    `uncertainty`).

    `uncertainty` per frame is the propagation's expected share of wrong pixels (0 at keyframes).
    """
    keys = sorted(keyframes)
    if count > len(positions) - len(keys):
        raise ValueError(f"only {len(positions) - len(keys)} frames are not keyframes yet")
    error = np.asarray(uncertainty, float).copy()
    error[keys] = 0.0
    distance = label_distance(positions, keys)
    slope = float((error * distance).sum() / max((distance ** 2).sum(), 1e-12))
    chosen: list[tuple[int, float]] = []
    frames = np.arange(len(positions))
    for _ in range(count):
        gains = np.full(len(positions), -np.inf)
        for t in np.setdiff1d(frames, keys):
            lo = max([k for k in keys if k < t], default=-1) + 1
            hi = min([k for k in keys if k > t], default=len(positions))
            predicted = slope * np.abs(positions[lo:hi] - positions[t])
            gains[t] = np.maximum(error[lo:hi] - predicted, 0).sum()
        best = int(gains.argmax())
        chosen.append((best, float(gains[best])))
        lo = max([k for k in keys if k < best], default=-1) + 1
        hi = min([k for k in keys if k > best], default=len(positions))
        error[lo:hi] = np.minimum(error[lo:hi], slope * np.abs(positions[lo:hi] - positions[best]))
        keys = sorted(keys + [best])
    return sorted(chosen)


def frame_uncertainty(confidence: np.ndarray) -> float:
    """Mean of (1 - confidence) as the confidence PNG holds it (8 bits, io.labels.write_confidence), so a
    propagation's own output folder (`suggest --from`) and a fresh propagation (`-k`) give the same number."""
    stored = np.rint(confidence * 255).astype(np.uint8)
    return float(1.0 - (stored.astype(np.float32) / np.float32(255)).mean())


def propagation_uncertainty(source, keyframe_label, keyframes: list[int], classes, settings,
                            flow_cache=None, on_frame=lambda done, total: None) -> np.ndarray:
    """Per frame: `frame_uncertainty` of a geometric propagation (no refiner), streamed."""
    from ..core.pipeline import Propagator

    propagator = Propagator(source, keyframe_label, keyframes, classes, settings, None, flow_cache)
    uncertainty = np.zeros(len(source))
    for done, result in enumerate(propagator.run(), 1):
        uncertainty[result.index] = frame_uncertainty(result.confidence)
        on_frame(done, len(source))
    return uncertainty
