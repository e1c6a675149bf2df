"""`propagate --update`: what new keyframes touch, and what of the results in OUT can stay.

The clip is cut at its keyframes into segments, and without a refiner a segment's frames
depend only on its frames, its flow and its two keyframes' labels (pipeline.segments). So
after keyframes are added, removed or corrected, a segment whose bounds and both keyframe
labels are as before would be computed to the same bytes: its label and confidence PNGs are
taken from OUT, and only the other segments run (their flow from the flow cache when one is
given). Anything else that could change a byte means a full run, said in the returned reason:
other settings (flow, fusion, refiner, label format, ignore id, colour table), other frames
(their names, sizes and modification times), or results made before keyframe digests were
recorded.

A refiner that learns from the clip's keyframes (the appearance table is built from all of
them, `--adapt` picks its strengths over every segment, the boundary network is checked on their round trips)
can change every refined frame when any keyframe changes, so with a refiner every segment runs
again: the flow is what is saved, through `--flow-cache`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.pipeline import segments

Span = tuple[int, int, "int | None", "int | None"]


def label_digest(ids: np.ndarray) -> str:
    """sha256 of a keyframe's ids (as int64, with the shape): equal digests, equal labels."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    return hashlib.sha256(f"{ids.shape}".encode() + memoryview(ids).cast("B")).hexdigest()


def frames_digest(files: list[Path]) -> str:
    """sha256 over the frame files' names, sizes and modification times (as `batch --resume` checks inputs)."""
    described = [[path.name, (stat := path.stat()).st_size, stat.st_mtime_ns] for path in files]
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()


@dataclass
class UpdatePlan:
    """What an update runs: `spans` (None: every segment) and the frames whose results are taken from OUT."""
    spans: set[Span] | None
    reused: list[int] = field(default_factory=list)
    record: dict | None = None   # the manifest's "update"; None when OUT held nothing to update
    records: list[dict] = field(default_factory=list)   # OUT's per-frame records (those of reused frames stay)
    other_clip: str | None = None   # OUT holds another video's results: the video its manifest names
    other_frames: str | None = None   # OUT holds the results of other frames: the video its manifest names

    def describe(self) -> str:
        if self.spans is None:
            return f"update: {self.record['reason'] if self.record else 'OUT holds no results'}; a full run"
        return (f"update: {len(self.record['recomputed'])} segment{'s' * (len(self.record['recomputed']) != 1)} "
                f"to compute, {self.record['reused_segments']} kept ({self.record['reused_frames']} frames)")


def full_run(reason: str) -> UpdatePlan:
    return UpdatePlan(None, [], {"recomputed": "all segments", "reason": reason})


def _frames_of(span: Span) -> range:
    """The frames a segment yields (pipeline.Propagator._segment): all but its keyframes."""
    start, end, left, right = span
    return range(start + (left is not None), end + (right is None))


def _same_video(recorded, video) -> bool:
    """Whether OUT's manifest names `video` (as given then, or the same place seen from here)."""
    if recorded is None or str(recorded) == str(video):
        return True
    try:
        return Path(recorded).resolve() == Path(video).resolve()
    except (OSError, RuntimeError):
        return False


def plan_update(out: Path, *, stems: list[str], keyframes: dict[int, str], identity: dict,
                refining: bool, video=None) -> UpdatePlan:
    """The update of OUT's results to `keyframes` ({index: label digest}). `identity`: the manifest entries
    (settings, colour table, frames digest) that must equal OUT's for any result to be reused.
    Never fails: what cannot be reused means a full run. `video`: this run's; OUT made from another
    video whose frames differ is marked `other_clip` (run_clip keeps such results without --overwrite)."""
    if not (out / "manifest.json").is_file():
        return UpdatePlan(None)
    try:
        old = json.loads((out / "manifest.json").read_text())
        old_keys = old["keyframe_digests"]
        old_frames = old["frames"]
        old_stems = [frame["stem"] for frame in old_frames]
    except (OSError, ValueError, KeyError, TypeError):
        return full_run("OUT's results have no keyframe digests to update from")
    if video is not None and not _same_video(old.get("video"), video) and \
            (old_stems != stems or old.get("frames_digest") != identity.get("frames_digest")):
        plan = full_run(f"OUT was made from other frames ({old.get('video')})")
        plan.other_clip = str(old.get("video"))
        return plan
    if old.get("settings") != identity.get("settings"):
        before, now = old.get("settings") or {}, identity.get("settings") or {}
        # the refiner's steps, device and adaptation are details of "refiner"
        changed = sorted({k.split("_")[0] if k.startswith("refiner_") else k
                          for k in set(before) | set(now) if before.get(k) != now.get(k)})
        return full_run(f"other settings than OUT's ({', '.join(changed)})")
    differing = [key for key, value in identity.items() if old.get(key) != value]
    if differing or old_stems != stems:
        plan = full_run(f"OUT was made from other frames or labels ({', '.join(differing) or 'frame names'})")
        if "frames_digest" in differing or old_stems != stems:  # another clip's results, maybe: run_clip asks
            plan.other_frames = str(old.get("video", "?"))
        return plan
    if refining:
        return full_run("the refiner learns from every keyframe, so every segment is refined again")
    index_of = {stem: i for i, stem in enumerate(stems)}
    try:
        old_digests = {index_of[stem]: digest for stem, digest in old_keys.items()}
    except (KeyError, AttributeError):
        return full_run("OUT's keyframes name frames the video does not have")
    if not old_digests:
        return full_run("OUT's manifest names no keyframes")
    unchanged = {k for k, digest in keyframes.items() if old_digests.get(k) == digest}
    old_spans = set(segments(len(stems), sorted(old_digests)))
    spans = segments(len(stems), sorted(keyframes))
    kept = [span for span in spans if span in old_spans and all(k is None or k in unchanged for k in span[2:])]
    reused = sorted(t for span in kept for t in _frames_of(span))
    missing = [stems[t] for t in reused for folder in ("labels", "confidence")
               if not (out / folder / f"{stems[t]}.png").is_file()]
    if missing:
        return full_run(f"OUT lacks results it should hold ({missing[0]}.png)")
    recomputed = [span for span in spans if span not in kept]
    return UpdatePlan(set(recomputed), reused, records=old_frames, record={
        "previous_keyframes": [stems[k] for k in sorted(old_digests)],
        "recomputed": [[stems[start], stems[end]] for start, end, _, _ in recomputed],
        "reused_segments": len(kept),
        "recomputed_frames": sum(len(_frames_of(span)) for span in recomputed),
        "reused_frames": len(reused),
    })

