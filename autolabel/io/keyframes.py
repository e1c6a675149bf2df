"""Find a clip's keyframe labels on disk, check them against the frames, settle their format."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.pipeline import ClassSet
from ..errors import InputError
from ..progress import counted
from .frames import natural_key
from .labels import LabelFormat, detect_format, read_label


@dataclass
class Keyframes:
    format: LabelFormat
    paths: dict[int, Path]   # frame index -> label file
    classes: ClassSet

    @property
    def indices(self) -> list[int]:
        return sorted(self.paths)

    def label(self, index: int) -> np.ndarray:
        return read_label(self.paths[index], self.format)


def find_keyframes(folder: str | Path, stems: list[str]) -> dict[int, Path]:
    """Frame index -> label PNG for every label in `folder`; each must name a frame."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "keyframes folder does not exist" if not folder.exists() else "not a folder")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith(".")),
                   key=lambda p: natural_key(p.name))
    if not files:
        raise InputError(folder, "no keyframe label PNGs in this folder")
    index_of = {stem: i for i, stem in enumerate(stems)}
    by_number: dict[int, list[int]] = {}  # DAVIS names labels 00000.png, a video's frames are 000000
    for i, stem in enumerate(stems):
        if stem.isdigit():
            by_number.setdefault(int(stem), []).append(i)
    paths = {}
    for path in files:
        if path.stem in index_of:
            paths[index_of[path.stem]] = path
            continue
        matches = by_number.get(int(path.stem), []) if path.stem.isdigit() else []
        if len(matches) != 1:
            raise InputError(path, f"label stem {path.stem!r} matches no frame (frames are {stems[0]} … "
                             f"{stems[-1]})" if not matches else f"label stem {path.stem!r} matches several "
                             f"frames by number ({', '.join(stems[i] for i in matches)})")
        paths[matches[0]] = path
    return paths


def matched_by_number(paths: dict[int, Path], stems: list[str]) -> str | None:
    """A note on the labels whose stems equal their frame's number but not its stem, or None."""
    renamed = [(path.name, stems[index]) for index, path in sorted(paths.items()) if path.stem != stems[index]]
    if not renamed:
        return None
    example = ", ".join(f"{name} -> {stem}" for name, stem in renamed[:2]) + (", …" if len(renamed) > 2 else "")
    return f"{counted(len(renamed), 'keyframe label')} matched to frames by number, leading zeros aside ({example})"


def load_keyframes(paths: dict[int, Path], size: tuple[int, int], *, label_format: str | None = None,
                   ignore_index: int | None = 255, color_table: str | Path | None = None) -> Keyframes:
    """Settle the labels' format and classes; `size` is the frames' (width, height).

    Every label is read once here, so a bad one stops the run before any output exists.
    """
    fmt = detect_format(list(paths.values()), kind=label_format, ignore_index=ignore_index,
                        color_table=color_table)
    seen: set[int] = set()
    width, height = size
    for path in paths.values():
        ids = read_label(path, fmt)
        if ids.shape != (height, width):
            raise InputError(path, f"label is {ids.shape[1]}x{ids.shape[0]} but frames are {width}x{height}")
        seen.update(np.unique(ids).tolist())
    ignore = fmt.ignore_index
    return Keyframes(fmt, paths, ClassSet(seen, ignore, ignore is not None and ignore in seen))
