"""Synthetic videos with exact per-frame labels and occlusion masks.

A scene is a large textured background seen through a panning camera plus
`n_objects` textured shapes painted back to front in a fixed depth order.
Every layer is rendered by inverse mapping: each layer has, per frame, a 2x3
affine matrix taking frame pixel coordinates to its texture coordinates, and
`cv2.warpAffine(..., WARP_INVERSE_MAP)` samples the texture there (bilinear
for colour, nearest for the shape mask). Labels come from the same nearest
masks, so they agree exactly with the rendered pixels.

Because every surface point is a (layer, texture coordinate) pair with a known
affine motion, the occlusion mask is computed exactly from the render: a pixel
of frame t is marked when its surface point, mapped into a neighbouring frame
with its layer's transforms and rounded to the nearest pixel, falls outside
that frame or onto a pixel showing a different layer. This is done against
frame t-1 (disocclusion) and frame t+1 (about to be hidden). Rounding makes
one-pixel-wide marks appear along moving object edges in "random" mode, which
is honest: warping is unreliable there too.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

MOTIONS = ("random", "translate", "static")
LABEL_FORMATS = ("palette", "gray", "binary")


@dataclass
class SyntheticClip:
    frames: list[np.ndarray]  # each HxWx3 uint8, RGB
    labels: list[np.ndarray]  # each HxW uint8: 0 background, 1..n object ids
    occluded: list[np.ndarray]  # each HxW bool: surface unseen in t-1 or hidden in t+1


@dataclass
class _Layer:
    """A textured surface and its frame->texture affine matrix for every frame."""

    texture: np.ndarray  # hxwx3 uint8
    mask: np.ndarray | None  # hxw uint8 (1 inside the shape); None = covers everything
    frame_to_texture: np.ndarray  # n_frames x 2 x 3 float64


def davis_palette() -> list[int]:
    """The PASCAL VOC / DAVIS label palette as a flat list of 768 ints."""
    palette = []
    for index in range(256):
        rgb = [0, 0, 0]
        bits = index
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((bits >> channel) & 1) << (7 - bit)
            bits >>= 3
        palette.extend(rgb)
    return palette


def make_clip(
    n_frames: int = 40,
    height: int = 128,
    width: int = 192,
    n_objects: int = 3,
    seed: int = 0,
    *,
    motion: str = "random",
    max_speed: float = 3.0,
    texture_scale: float = 1.0,
    translate_step: tuple[int, int] = (2, 1),
    noise_sigma: float = 1.5,
) -> SyntheticClip:
    """Render a clip; same arguments give byte-identical arrays.

    `translate_step` is the (dx, dy) integer shift per frame used when
    motion="translate"; `noise_sigma` is the per-frame Gaussian pixel noise.
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    if n_frames < 1 or height < 8 or width < 8:
        raise ValueError("need n_frames >= 1 and a frame of at least 8x8 pixels")
    if not 0 <= n_objects <= 255:
        raise ValueError("n_objects must be within 0..255 to fit uint8 labels")

    rng = np.random.default_rng(seed)
    size = (height, width)
    feature_px = texture_scale * max(8.0, 0.1 * min(size))
    colours = _distinct_colours(rng, n_objects + 1)

    camera = _camera_path(rng, n_frames, size, motion, max_speed, translate_step)
    layers = [_background_layer(rng, size, camera, colours[0], feature_px)]
    for colour in colours[1:]:
        path_options = (motion, max_speed, translate_step)
        layers.append(_object_layer(rng, n_frames, size, colour, feature_px, *path_options))
    depth_order = [0, *(1 + rng.permutation(n_objects))]  # back to front, background first

    frames, labels = [], []
    for t in range(n_frames):
        frame, label = _render_frame(layers, depth_order, t, size)
        frames.append(_add_noise(rng, frame, noise_sigma))
        labels.append(label)
    occluded = [_occluded(layers, labels, t) for t in range(n_frames)]
    return SyntheticClip(frames=frames, labels=labels, occluded=occluded)


def write_clip(clip: SyntheticClip, root, label_format: str = "palette") -> pathlib.Path:
    """Write root/frames/00000.png... (RGB) and root/labels/00000.png... ; return root."""
    if label_format not in LABEL_FORMATS:
        raise ValueError(f"label_format must be one of {LABEL_FORMATS}, got {label_format!r}")
    root = pathlib.Path(root)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for index, (frame, label) in enumerate(zip(clip.frames, clip.labels)):
        name = f"{index:05d}.png"
        Image.fromarray(frame).save(root / "frames" / name)
        _label_image(label, label_format).save(root / "labels" / name)
    return root


def _label_image(label: np.ndarray, label_format: str) -> Image.Image:
    if label_format == "binary":
        return Image.fromarray(np.where(label > 0, 255, 0).astype(np.uint8))
    image = Image.fromarray(label)
    if label_format == "palette":
        image.putpalette(davis_palette())  # turns the "L" image into "P" with ids kept
    return image


# ---------------------------------------------------------------- textures


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], feature_px: float
) -> np.ndarray:
    """Zero-mean, unit-std noise whose blobs are about `feature_px` wide."""
    coarse_shape = (
        max(2, math.ceil(shape[0] / feature_px) + 2),
        max(2, math.ceil(shape[1] / feature_px) + 2),
    )
    coarse = rng.standard_normal(coarse_shape, dtype=np.float32)
    field = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def _fractal_noise(
    rng: np.random.Generator, shape: tuple[int, int], feature_px: float
) -> np.ndarray:
    """A few octaves of smooth noise plus fine grain, so DIS has detail at every scale."""
    field = np.zeros(shape, np.float32)
    for octave in range(4):
        field += 0.6**octave * _smooth_noise(rng, shape, max(2.0, feature_px / 2**octave))
    grain = cv2.GaussianBlur(rng.standard_normal(shape, dtype=np.float32), (0, 0), 0.8)
    field += 0.8 * grain
    return (field - field.mean()) / (field.std() + 1e-6)


def _distinct_colours(rng: np.random.Generator, count: int) -> np.ndarray:
    """Base RGB colours with evenly spread hues (shuffled) so layers differ in colour."""
    hues = (rng.uniform(0, 180) + np.arange(count) * 180 / count) % 180
    hsv = np.stack(
        [
            rng.permutation(hues),
            rng.uniform(110, 230, count),  # saturation
            rng.uniform(110, 220, count),  # value
        ],
        axis=1,
    )
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0].astype(np.float32)


def _texture(
    rng: np.random.Generator, shape: tuple[int, int], colour: np.ndarray, feature_px: float
) -> np.ndarray:
    """Colour texture: base colour modulated by fractal luminance and smooth chroma drift."""
    luminance = _fractal_noise(rng, shape, feature_px)
    chroma = np.stack([_smooth_noise(rng, shape, 2 * feature_px) for _ in range(3)], axis=-1)
    rgb = colour * (1.0 + 0.35 * luminance[..., None]) + 18.0 * chroma
    return np.clip(rgb, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ shapes


def _shape_mask(rng: np.random.Generator, side: int, radius: float) -> np.ndarray:
    """A filled ellipse, convex polygon or star-shaped (concave) polygon, centred in the square."""
    mask = np.zeros((side, side), np.uint8)
    centre = (side - 1) / 2
    kind = rng.integers(3)
    if kind == 0:
        axes = radius * rng.uniform(0.55, 1.0, 2)
        angle = rng.uniform(0, 180)
        cv2.ellipse(mask, ((centre, centre), tuple(2 * axes), angle), 1, thickness=-1)
        return mask
    n_vertices = int(rng.integers(5, 11))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n_vertices))
    if kind == 1:
        radii = radius * rng.uniform(0.8, 1.0, n_vertices)
    else:
        radii = radius * rng.uniform(0.35, 1.0, n_vertices)
    points = centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    if kind == 1:
        points = cv2.convexHull(points.astype(np.float32))[:, 0]
    subpixel_bits = 4
    fixed_point = np.round(points * 2**subpixel_bits).astype(np.int32)
    cv2.fillPoly(mask, [fixed_point], 1, shift=subpixel_bits)
    return mask


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


# ------------------------------------------------------------------ layers


def _background_layer(
    rng: np.random.Generator,
    size: tuple[int, int],
    camera: np.ndarray,
    colour: np.ndarray,
    feature_px: float,
) -> _Layer:
    """A canvas covering the whole camera path; each frame is a sliding window on it."""
    pad = 2  # room for bilinear neighbours at sub-pixel offsets
    low, high = np.floor(camera.min(0)), np.ceil(camera.max(0))
    canvas_w = int(size[1] + high[0] - low[0]) + 2 * pad
    canvas_h = int(size[0] + high[1] - low[1]) + 2 * pad
    texture = _texture(rng, (canvas_h, canvas_w), colour, feature_px)
    matrices = np.zeros((len(camera), 2, 3))
    matrices[:, 0, 0] = matrices[:, 1, 1] = 1
    matrices[:, :, 2] = camera - low + pad
    return _Layer(texture=texture, mask=None, frame_to_texture=matrices)


def _object_layer(
    rng: np.random.Generator,
    n_frames: int,
    size: tuple[int, int],
    colour: np.ndarray,
    feature_px: float,
    motion: str,
    max_speed: float,
    translate_step: tuple[int, int],
) -> _Layer:
    radius = rng.uniform(0.08, 0.35) * min(size) / 2
    side = 2 * math.ceil(radius * 1.15) + 5  # odd, so the centre is an integer pixel
    mask = _shape_mask(rng, side, radius)
    texture = _texture(rng, (side, side), colour, feature_px)
    centre, angle, scale = _object_path(
        rng, n_frames, size, radius, motion, max_speed, translate_step
    )
    matrices = _object_matrices(centre, angle, scale, (side - 1) / 2)
    return _Layer(texture=texture, mask=mask, frame_to_texture=matrices)


# --------------------------------------------------------------- rendering


def _warp(
    image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], interpolation: int
) -> np.ndarray:
    return cv2.warpAffine(
        image,
        matrix,
        (size[1], size[0]),
        flags=interpolation | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE if image.ndim == 3 else cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def _render_frame(
    layers: list[_Layer], depth_order: list[int], t: int, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Paint layers back to front; colour bilinear, coverage nearest, labels = last painter."""
    label = np.zeros(size, np.uint8)
    frame = np.empty((*size, 3), np.uint8)
    for layer_id in depth_order:
        layer = layers[layer_id]
        colour = _warp(layer.texture, layer.frame_to_texture[t], size, cv2.INTER_LINEAR)
        if layer.mask is None:
            frame[:] = colour
            continue
        covered = _warp(layer.mask, layer.frame_to_texture[t], size, cv2.INTER_NEAREST).view(bool)
        np.copyto(frame, colour, where=covered[..., None])
        label[covered] = layer_id
    return frame, label


def _add_noise(rng: np.random.Generator, frame: np.ndarray, sigma: float) -> np.ndarray:
    noisy = rng.standard_normal(frame.shape, dtype=np.float32)
    noisy *= sigma
    noisy += frame
    noisy += 0.5  # so the truncating cast below rounds
    return np.clip(noisy, 0, 255.49, out=noisy).astype(np.uint8)


# --------------------------------------------------------------- occlusion


def _lost_in(layers: list[_Layer], labels: list[np.ndarray], t: int, s: int) -> np.ndarray:
    """Pixels of frame t whose surface point is out of frame or covered in frame s."""
    label_t, label_s = labels[t], labels[s]
    seen = np.zeros(label_t.shape, bool)
    for layer_id, layer in enumerate(layers):
        here = label_t == layer_id
        if not here.any():
            continue
        # Frame-t pixel -> the frame-s pixel showing the same texture point of this layer.
        texture_to_s = cv2.invertAffineTransform(layer.frame_to_texture[s])
        t_to_s = _compose(texture_to_s, layer.frame_to_texture[t])
        shown_in_s = (label_s == layer_id).view(np.uint8)
        visible_there = _warp(shown_in_s, t_to_s, label_t.shape, cv2.INTER_NEAREST)
        seen |= here & visible_there.view(bool)
    return ~seen


def _occluded(layers: list[_Layer], labels: list[np.ndarray], t: int) -> np.ndarray:
    occluded = np.zeros(labels[t].shape, bool)
    if t > 0:
        occluded |= _lost_in(layers, labels, t, t - 1)
    if t + 1 < len(labels):
        occluded |= _lost_in(layers, labels, t, t + 1)
    return occluded


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine applying `inner` first, then `outer`."""
    composed = outer[:, :2] @ inner
    composed[:, 2] += outer[:, 2]
    return composed


class LongClip:
    """A clip of any length and size, rendered on demand (FrameSource interface).

    For memory benchmarks: a camera pans over a textured canvas holding a few
    labeled blobs, so frames need no storage and labels are exact.
    """

    def __init__(self, n_frames: int, height: int = 1080, width: int = 1920, seed: int = 0,
                 step: tuple[int, int] = (3, 1)):
        rng = np.random.default_rng(seed)
        self.n_frames, self.height, self.width, self.step = n_frames, height, width, step
        pad = 2 * max(height, width)
        canvas_shape = (height + pad, width + pad)
        self._canvas = np.clip(
            128 + 40 * np.dstack([_fractal_noise(rng, canvas_shape, 24) for _ in range(3)]), 0, 255
        ).astype(np.uint8)
        self._labels = np.zeros(canvas_shape, np.uint8)
        for object_id in range(1, 4):
            center = (int(rng.integers(0, canvas_shape[1])), int(rng.integers(0, canvas_shape[0])))
            axes = (int(rng.integers(height // 8, height // 3)), int(rng.integers(height // 8, height // 3)))
            cv2.ellipse(self._labels, center, axes, 0, 0, 360, object_id, -1)
        self.stems = [f"{i:06d}" for i in range(n_frames)]

    def __len__(self) -> int:
        return self.n_frames

    def _window(self, index: int) -> tuple[slice, slice]:
        # The camera sweeps back and forth so any length stays inside the canvas.
        span_x = self._canvas.shape[1] - self.width
        span_y = self._canvas.shape[0] - self.height
        x = abs((index * self.step[0]) % (2 * span_x) - span_x)
        y = abs((index * self.step[1]) % (2 * span_y) - span_y)
        return slice(y, y + self.height), slice(x, x + self.width)

    def read(self, index: int) -> np.ndarray:
        rows, cols = self._window(index)
        return np.ascontiguousarray(self._canvas[rows, cols])

    def label(self, index: int) -> np.ndarray:
        rows, cols = self._window(index)
        return np.ascontiguousarray(self._labels[rows, cols])

    def frame_name(self, index: int) -> str:
        return f"frame {index}"

    def close(self) -> None:
        pass
