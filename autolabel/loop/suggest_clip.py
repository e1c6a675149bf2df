"""`suggest` on a clip on disk: the function behind `autolabel suggest` (the placement is in suggest.py)."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from ..core.flow import FlowEstimator
from ..core.pipeline import Settings
from ..errors import InputError
from ..progress import counted
from ..io.frames import FrameSource
from ..io.keyframes import find_keyframes, load_keyframes
from ..io.update import frames_digest, label_digest
from ..evaluation.evaluate import read_confidence
from .suggest import DECAY, add_keyframes, choose_keyframes, frame_uncertainty, label_distance, \
    propagation_uncertainty, removal_cost, scan_clip


def _reasons(scan, positions, index: int, keyframes: list[int], gain: float) -> dict:
    """Why this frame: its motion and occlusion, and the predicted reliability of the frames it serves."""
    others = [k for k in keyframes if k != index]
    distance = np.abs(positions - positions[index])
    served = distance <= (label_distance(positions, others) if others else np.inf)
    return {"motion": round(float(scan.frame_motion()[index]), 3),
            "occlusion": round(float(scan.frame_occlusion()[index]), 4),
            "reliability": round(float((DECAY ** distance[served]).mean()), 3),
            "gain": round(gain, 4) if np.isfinite(gain) else None}  # a lone keyframe: nothing without it


def _from_output(out: Path, stems: list[str], settings: Settings) -> tuple[list[int], np.ndarray | None, dict]:
    """(keyframe indices, per-frame uncertainty or None, manifest) of a propagation output folder.

    Its confidence is used only when it is the propagation `-k KEYFRAMES --add` makes (geometric, no
    refiner, the same flow and fusion): a refiner's confidence measures something else, and `--from` and
    `-k` must suggest the same frames. Otherwise (None) OUT's keyframe labels are propagated again."""
    manifest_path = out / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        keyframe_stems = list(manifest["keyframes"])
        made_with = manifest["settings"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(manifest_path, f"not a propagation result ({type(error).__name__}: {error})") from None
    index_of = {stem: i for i, stem in enumerate(stems)}
    if set(keyframe_stems) - set(index_of) or manifest.get("n_frames") != len(stems):
        raise InputError(manifest_path, "was made from another video (frame count or stems differ)")
    keys = sorted(index_of[s] for s in keyframe_stems)
    if made_with.get("refiner") is not None or any(made_with.get(k) != v for k, v in settings.as_dict().items()):
        return keys, None, manifest
    uncertainty = np.zeros(len(stems))
    for i, stem in enumerate(stems):
        uncertainty[i] = frame_uncertainty(read_confidence(out / "confidence" / f"{stem}.png"))
    return keys, uncertainty, manifest


def _check_current(out: Path, manifest: dict, source: FrameSource, keyframes_dir) -> None:
    """Refuse an OUT that is stale: made from frames that changed since, or from keyframes that are no
    longer those in `keyframes_dir` (-k, else the folder OUT's manifest names): its confidence would
    put the suggestions where the labels no longer are."""
    if manifest.get("frames_digest") not in (None, frames_digest(source.files)):
        raise InputError(out, "is stale: its frames changed since (names, sizes or times); propagate again")
    folder = Path(keyframes_dir or manifest.get("keyframes_dir") or "")
    recorded = manifest.get("keyframe_digests")
    if not folder.is_dir() or not isinstance(recorded, dict):  # nothing to compare with: as before
        return
    paths = find_keyframes(folder, source.stems)
    now = {source.stems[k]: k for k in paths}
    added, removed = sorted(set(now) - set(recorded)), sorted(set(recorded) - set(now))
    changed = []
    if not added and not removed:
        settings = manifest.get("settings") or {}
        with tempfile.TemporaryDirectory() as scratch:  # an RGB run's colour table, as ids were given then
            table = None
            if manifest.get("color_table"):
                table = Path(scratch) / "colors.csv"
                table.write_text("".join(",".join(map(str, row)) + "\n" for row in manifest["color_table"]))
            keys = load_keyframes(paths, (source.width, source.height), label_format=settings.get("label_format"),
                                  ignore_index=settings.get("ignore_index"), color_table=table)
            changed = [stem for stem, k in now.items() if label_digest(keys.label(k)) != recorded[stem]]
    if added or removed or changed:
        what = "; ".join(f"{name} {', '.join(stems[:3])}{', …' if len(stems) > 3 else ''}"
                         for name, stems in (("added", added), ("removed", removed), ("changed", changed)) if stems)
        raise InputError(out, f"is stale: the keyframes in {folder} changed since it was made ({what}); bring it up "
                              f"to date with `autolabel propagate ... -k {folder} -o {out} --update`, or use -k "
                              f"{folder} instead of --from")


def suggest(video, *, budget: int | None = None, keyframes=None, add: int | None = None, from_dir=None,
            settings: Settings = Settings(), label_format=None, ignore_index: int | None = 255,
            color_table=None, flow_cache=None, on_frame=lambda done, total: None,
            on_start=lambda message: None) -> dict:
    """Frames to label: `budget` frames from the video alone, or `add` more to the given keyframes.

    Returns {"mode", "video", "frames": n, "keyframes": [given stems], "gain_unit", "suggested":
    [{"stem", "index", "motion", "occlusion", "reliability", "gain"}, ...] in temporal order}.
    `reliability` is the predicted mean reliability of the frames the keyframe would serve; `gain`
    how much the predicted error, averaged over the clip, falls with this frame labeled.
    """
    if (budget is None) == (add is None):
        raise InputError(video, "give either --budget N (before labeling) or --add N (with --keyframes or --from)")
    if add is not None and keyframes is None and from_dir is None:
        raise InputError(video, "--add needs the labels so far: --keyframes DIR or --from OUT")
    if budget is not None and (keyframes is not None or from_dir is not None):
        raise InputError(video, "--budget chooses frames before labeling; with keyframes, use --add")
    source = FrameSource(video)
    try:
        n = len(source)
        if budget is not None and not 1 <= budget <= n:
            raise InputError(video, f"--budget must be between 1 and {n} (the clip's frames), not {budget}")
        given: list[int] = []
        if keyframes is not None:
            paths = find_keyframes(keyframes, source.stems)
            given = sorted(paths)
        uncertainty = None
        if from_dir is not None:
            from_keys, uncertainty, manifest = _from_output(Path(from_dir), source.stems, settings)
            if keyframes is not None and from_keys != given:
                raise InputError(from_dir, f"was propagated from other keyframes than {keyframes}")
            _check_current(Path(from_dir), manifest, source, keyframes)
            if keyframes is None:   # OUT's labels at its keyframes are the keyframes, in their own format
                paths = {k: Path(from_dir) / "labels" / f"{source.stems[k]}.png" for k in from_keys}
                label_format = manifest["settings"].get("label_format", label_format)
                ignore_index = manifest["settings"].get("ignore_index", ignore_index)
                color_table = None  # the confidence does not depend on which id a colour has
            given = from_keys
        if add is not None and not 1 <= add <= n - len(given):
            raise InputError(video, f"--add must be between 1 and {n - len(given)} "
                             f"(the frames that are not keyframes), not {add}")
        estimator = FlowEstimator(settings.flow, settings.flow_preset, settings.flow_scale, flow_cache)
        on_start(f"{n} frames {source.width}x{source.height}: flow and its forward-backward consistency")
        scan = scan_clip(source, estimator, on_frame)
        positions = scan.positions()
        if budget is not None:
            chosen, _ = choose_keyframes(scan, budget)
            gains = removal_cost(positions, chosen)
            picks = [(k, gains[k] / n) for k in chosen]
            gain_unit = "frames of label distance saved, per frame of the clip"
        else:
            if uncertainty is None:
                keys = load_keyframes(paths, (source.width, source.height), label_format=label_format,
                                      ignore_index=ignore_index, color_table=color_table)
                on_start(f"propagating {counted(len(given), 'keyframe')} (geometric, no refiner) for the confidence")
                uncertainty = propagation_uncertainty(source, keys.label, given, keys.classes, settings,
                                                      flow_cache, on_frame)
            picks = [(k, 100 * gain / n) for k, gain in add_keyframes(positions, uncertainty, given, add)]
            gain_unit = "% of pixels expected wrong, saved, per frame of the clip"
        all_keys = sorted(given + [k for k, _ in picks])
        return {"mode": "budget" if budget is not None else "add", "video": str(video), "frames": n,
                "keyframes": [source.stems[k] for k in given], "gain_unit": gain_unit,
                "suggested": [{"stem": source.stems[k], "index": k, **_reasons(scan, positions, k, all_keys, gain)}
                              for k, gain in picks]}
    finally:
        source.close()
