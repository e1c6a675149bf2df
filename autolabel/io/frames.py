"""Read frames: a folder of images or a video file, one frame at a time.

Frames come out as HxWx3 uint8 RGB arrays. Nothing here holds more than one
frame, so a clip of any length streams through in bounded memory.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

# FFmpeg inside OpenCV prints its own lines past Python ("[mjpeg @ 0x…] overread 8" for a cut file);
# quiet them before any video is opened: the probe below says what they mean in one line of ours.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np
from PIL import Image

from ..errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
# What help and error messages say is readable: the suffixes above, one source of truth.
IMAGE_FORMATS = ", ".join(suffix[1:] for suffix in IMAGE_SUFFIXES)
VIDEO_FORMATS = ", ".join(suffix[1:] for suffix in VIDEO_SUFFIXES)


def natural_key(name: str) -> list:
    """Sort 'frame2' before 'frame10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def read_image(path: Path) -> np.ndarray:
    """One RGB frame; a truncated or unreadable file is an InputError."""
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as error:
        raise InputError(path, f"cannot read image ({error})") from None


def _check_unique_stems(files: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise InputError(path.parent, f"two frames share the stem {path.stem!r}: {seen[path.stem].name} and "
                             f"{path.name}; outputs are named by stem")
        seen[path.stem] = path


def _check_headers(files: list[Path], width: int, height: int) -> None:
    """Every frame's header (milliseconds for a whole clip), so that an unreadable or differently
    sized frame stops the run before it starts; data truncated after the header is found when read."""
    for path in files:
        try:
            with Image.open(path) as image:
                size = image.size
        except (OSError, ValueError, SyntaxError) as error:
            raise InputError(path, f"cannot read image ({error})") from None
        if size != (width, height):
            raise InputError(path, f"frame is {size[0]}x{size[1]}, the first frame is {width}x{height}")


class FrameSource:
    """A clip's frames, addressed by index, with a stem per frame for naming outputs."""

    def __init__(self, path: str | Path, accept_short: bool = False):
        """`accept_short`: a video that decodes to fewer frames than its container lists (cut short,
        damaged) is used as far as it decodes instead of refused."""
        self.path = Path(path)
        self.accept_short = accept_short
        self.frames_listed: int | None = None  # a video's frame count as its container lists it
        if not self.path.exists():
            raise InputError(self.path, "no such file or folder")
        if self.path.is_dir():
            # hidden files are skipped, as other tools do: macOS's ._frame.jpg resource forks are no frames
            self._files = sorted(
                (p for p in self.path.iterdir()
                 if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")),
                key=lambda p: natural_key(p.name),
            )
            if not self._files:
                raise InputError(self.path, f"folder holds no frames ({IMAGE_FORMATS})")
            self.stems = [p.stem for p in self._files]
            _check_unique_stems(self._files)
            first = read_image(self._files[0])
            _check_headers(self._files, first.shape[1], first.shape[0])
            self._capture = None
        elif self.path.suffix.lower() in VIDEO_SUFFIXES:
            self._files = None
            count, first = self._probe_video()
            width = len(str(count - 1))
            self.stems = [str(i).zfill(max(6, width)) for i in range(count)]
            self._capture = None
            self._position = 0
        else:
            raise InputError(self.path, f"not a folder of frames or a video file ({VIDEO_FORMATS})")
        self.height, self.width = first.shape[:2]

    def __len__(self) -> int:
        return len(self.stems)

    @property
    def files(self) -> list[Path]:
        """The frame files, or the video file."""
        return list(self._files) if self._files is not None else [self.path]

    def _probe_video(self) -> tuple[int, np.ndarray]:
        # The container's frame count is often wrong; count by decoding, which also
        # proves the file decodes before any output is written.
        capture = cv2.VideoCapture(str(self.path))
        ok, first = capture.read()
        if not capture.isOpened() or not ok:
            capture.release()
            raise InputError(self.path, "video cannot be decoded")
        count = 1
        while capture.grab():
            count += 1
        listed = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        capture.release()
        self.frames_listed = listed if listed > 0 else None  # some containers don't say
        if listed > count and not self.accept_short:  # more listed than decoded: cut short or damaged
            raise InputError(self.path, f"decodes to {count} of the {listed} frames its container lists (cut short "
                                        f"or damaged); pass --accept-short-video to use the {count} frames")
        return count, cv2.cvtColor(first, cv2.COLOR_BGR2RGB)

    def read(self, index: int) -> np.ndarray:
        """Frame `index`. Sequential reads of a video are cheap; jumps back reopen it."""
        if self._files is not None:
            frame = read_image(self._files[index])
        else:
            frame = self._read_video(index)
        if frame.shape[:2] != (self.height, self.width):
            raise InputError(self.frame_name(index), f"frame is {frame.shape[1]}x{frame.shape[0]}, "
                             f"the first frame is {self.width}x{self.height}")
        return frame

    def frame_name(self, index: int) -> str:
        if self._files is not None:
            return str(self._files[index])
        return f"{self.path}[frame {index}]"

    def _read_video(self, index: int) -> np.ndarray:
        if self._capture is None or index < self._position:
            if self._capture is not None:
                self._capture.release()
            self._capture = cv2.VideoCapture(str(self.path))
            self._position = 0
        while self._position < index:
            self._capture.grab()
            self._position += 1
        ok, frame = self._capture.read()
        if not ok:
            raise InputError(self.frame_name(index), "video frame cannot be decoded")
        self._position += 1
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        for index in range(start, len(self) if stop is None else stop):
            yield self.read(index)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ArrayFrames:
    """In-memory frames (a notebook's list of arrays) behind the FrameSource interface."""

    def __init__(self, frames, stems: list[str] | None = None):
        self._frames = frames
        self.stems = stems or [str(i).zfill(6) for i in range(len(frames))]
        first = np.asarray(frames[0])
        self.height, self.width = first.shape[:2]

    def __len__(self) -> int:
        return len(self._frames)

    def read(self, index: int) -> np.ndarray:
        frame = np.asarray(self._frames[index])
        if frame.ndim == 2:
            frame = np.repeat(frame[:, :, None], 3, axis=2)
        return np.ascontiguousarray(frame[:, :, :3], dtype=np.uint8)

    def frame_name(self, index: int) -> str:
        return f"frame {index} ({self.stems[index]})"

    def close(self) -> None:
        pass
