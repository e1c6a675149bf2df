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
from dataclasses import dataclass

import cv2
import numpy as np

from .motion import _camera_path, _object_matrices, _object_path
from .textures import _distinct_colours, _shape_mask, _texture

MOTIONS = ("random", "translate", "static")


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
