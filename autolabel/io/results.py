"""A propagate or batch output folder as clips: each clip's manifest, label format and labels, frame by frame."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from .frames import natural_key
from .labels import LabelFormat, detect_format, read_label


@dataclass(frozen=True)
class ClipResult:
    """One clip's results: OUT/<name>/labels and its manifest."""
    name: str
    folder: Path
    manifest: dict

    @property
    def stems(self) -> list[str]:
        return [frame["stem"] for frame in self.manifest["frames"]]

    def label_path(self, stem: str) -> Path:
        return self.folder / "labels" / f"{stem}.png"

    def label_format(self) -> LabelFormat:
        settings = self.manifest.get("settings", {})
        kind, ignore = settings.get("label_format"), settings.get("ignore_index")
        # rgb needs every colour of the clip; the others are settled by one file
        paths = [self.label_path(stem) for stem in self.stems] if kind == "rgb" else [self.label_path(self.stems[0])]
        return detect_format(paths, kind=kind, ignore_index=ignore)

    def labels(self, fmt: LabelFormat) -> Iterator[tuple[str, np.ndarray]]:
        for stem in self.stems:
            path = self.label_path(stem)
            if not path.is_file():
                raise InputError(path, "missing: the manifest lists this frame")
            yield stem, read_label(path, fmt)


def video_name(manifest: dict) -> str:
    """A single clip's name: its video's (dog.mp4 -> dog; clip/frames -> clip; JPEGImages/480p/dog -> dog)."""
    video = Path(str(manifest.get("video", "clip")))
    if video.suffix:
        return video.stem
    if video.name in ("frames", "images"):
        video = video.parent
    return video.name or video.resolve().name  # '.' or '..': the folder it was


def find_results(out: str | Path) -> list[ClipResult]:
    """The clips in a propagate output folder (itself) or a batch output folder (every manifest below it)."""
    out = Path(out)
    if not out.is_dir():
        raise InputError(out, "no such output folder")
    if (out / "manifest.json").is_file():
        manifests = [out / "manifest.json"]
    else:
        manifests = sorted((path for path in out.rglob("manifest.json")
                            if not any(part.startswith(".") for part in path.relative_to(out).parts)),
                           key=lambda path: natural_key(path.parent.relative_to(out).as_posix()))
    if not manifests:
        raise InputError(out, "holds no autolabel results (no manifest.json in it or below it)")
    clips = []
    for path in manifests:
        try:
            manifest = json.loads(path.read_text())
            manifest["frames"][0]["stem"]
        except (OSError, ValueError, KeyError, IndexError, TypeError) as error:
            raise InputError(path, f"not an autolabel manifest ({type(error).__name__}: {error})") from None
        name = video_name(manifest) if path.parent == out else path.parent.relative_to(out).as_posix()
        clips.append(ClipResult(name, path.parent, manifest))
    return clips
