"""Motion of the synthetic scenes: camera and object paths, and their frame->texture affines."""
from __future__ import annotations

import math

import numpy as np


# ------------------------------------------------------------------ motion


def _lissajous(
    rng: np.random.Generator, n_frames: int, amplitude: np.ndarray, peak_speed: float
) -> np.ndarray:
    """Smooth n_frames x 2 path (x, y) with per-axis sinusoids; speed never exceeds peak_speed."""
    t = np.arange(n_frames)[:, None]
    axis_speed = peak_speed / math.sqrt(2) * rng.uniform(0.4, 1.0, 2)
    frequency = axis_speed / (2 * np.pi * np.maximum(amplitude, 1e-6))
    phase = rng.uniform(0, 2 * np.pi, 2)
    path = amplitude * np.sin(2 * np.pi * frequency * t + phase)
    return path - path[0]


def _camera_path(
    rng: np.random.Generator,
    n_frames: int,
    size: tuple[int, int],
    motion: str,
    max_speed: float,
    translate_step: tuple[int, int],
) -> np.ndarray:
    """Camera offset per frame (x, y): where frame pixel (0, 0) lies on the background."""
    if motion == "static":
        return np.zeros((n_frames, 2))
    if motion == "translate":
        # Content moves by +step, so the camera window slides by -step.
        return -np.arange(n_frames)[:, None] * np.asarray(translate_step, float)
    amplitude = rng.uniform(0.1, 0.3, 2) * np.array(size[::-1])
    return _lissajous(rng, n_frames, amplitude, 0.5 * max_speed)


def _swing_through(
    rng: np.random.Generator, n_frames: int, frame_wh: np.ndarray, peak_speed: float
) -> np.ndarray:
    """Centre path along an elliptic arc through a point near the frame centre.

    Every object passes near the centre around mid-clip, so they cross and
    occlude each other; the oscillation keeps long clips from drifting away.
    """
    meeting_point = frame_wh / 2 + rng.uniform(-0.15, 0.15, 2) * frame_wh
    meeting_time = rng.uniform(0.2, 0.8) * (n_frames - 1)
    heading = rng.uniform(0, 2 * np.pi)
    along = np.array([np.cos(heading), np.sin(heading)]) * rng.uniform(0.3, 0.5) * frame_wh
    across = np.array([-along[1], along[0]]) * rng.uniform(-0.3, 0.3)
    # Speed is at most |along| * omega because |across| < |along|.
    omega = rng.uniform(0.5, 1.0) * peak_speed / np.linalg.norm(along)
    phase = omega * (np.arange(n_frames)[:, None] - meeting_time)
    return meeting_point + along * np.sin(phase) + across * (np.cos(phase) - 1)


def _object_path(
    rng: np.random.Generator,
    n_frames: int,
    size: tuple[int, int],
    radius: float,
    motion: str,
    max_speed: float,
    translate_step: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame centre (x, y), rotation (radians) and scale of one object."""
    frame_wh = np.array(size[::-1], float)
    start = frame_wh / 2 + rng.uniform(-0.2, 0.2, 2) * frame_wh
    t = np.arange(n_frames)
    if motion != "random":
        # Integer placement keeps warps exact, so "translate" is a rigid pixel shift.
        start = np.round(start)
        step = np.asarray(translate_step, float) if motion == "translate" else np.zeros(2)
        return start + t[:, None] * step, np.zeros(n_frames), np.ones(n_frames)
    # Speed budget at the rim: translation 75%, scaling 10%, rotation 13% (of a rim grown by 10%).
    centre = _swing_through(rng, n_frames, frame_wh, 0.75 * max_speed)
    spin = rng.uniform(-1, 1) * 0.13 * max_speed / radius
    scale_amplitude = rng.uniform(0.0, 0.1)
    scale_frequency = 0.1 * max_speed / (2 * np.pi * radius * max(scale_amplitude, 1e-6))
    scale = 1 + scale_amplitude * np.sin(2 * np.pi * min(scale_frequency, 0.05) * t)
    return centre, spin * t, scale


def _object_matrices(
    centre: np.ndarray, angle: np.ndarray, scale: np.ndarray, texture_centre: float
) -> np.ndarray:
    """Frame->texture affines: u = R(-angle) (x - centre) / scale + texture_centre."""
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    linear = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)
    offset = texture_centre - np.einsum("nij,nj->ni", linear, centre)
    return np.concatenate([linear, offset[..., None]], axis=-1)
