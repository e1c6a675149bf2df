"""The geometry's fast paths give exactly what the plain ways give."""
import cv2
import numpy as np
import pytest

from autolabel.core.half import to_half, to_single
from autolabel.core.pipeline import propagate
from autolabel.core.warp import ALPHA, BETA, SoftLabels, carry, consistency, sampling_maps, warp


def _flow(rng, height, width, spread):
    """A smooth flow with sub-pixel parts, some of it pulling from outside the frame."""
    coarse = rng.normal(0, spread, (3, 4, 2)).astype(np.float32)
    noise = rng.normal(0, 0.3, (height, width, 2)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) + noise


def _remap_each_channel(probs, flow):
    """The obvious reference: cv2.remap one channel at a time, float maps."""
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x, map_y = cv2.convertMaps(xs + flow[..., 0], ys + flow[..., 1], cv2.CV_16SC2)
    return np.dstack([cv2.remap(np.ascontiguousarray(probs[..., c]), map_x, map_y, cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE) for c in range(probs.shape[2])])


def _blocky_labels(rng, height, width, n, block):
    coarse = rng.integers(0, n, (-(-height // block), -(-width // block)))
    return np.kron(coarse, np.ones((block, block), int))[:height, :width]


@pytest.mark.parametrize("n", [2, 5, 19, 600])
def test_sparse_labels_warp_exactly_as_remapping_every_channel(n):
    rng = np.random.default_rng(n)
    height, width = 48, 70
    labels = _blocky_labels(rng, height, width, n, 6 if n < 100 else 2)
    sparse = SoftLabels.certain_of(labels, n)
    dense = sparse.dense()
    assert np.array_equal(dense.argmax(axis=2), labels) and (dense.max(axis=2) == 255).all()
    reliability = np.ones((height, width), np.float32)
    for step in range(6):  # boundaries blur step after step: more and more pixels uncertain
        flow = _flow(rng, height, width, 4.0 if step != 3 else 40.0)
        dense = _remap_each_channel(dense, flow)
        maps = sampling_maps(flow)
        sparse, reliability = carry(sparse, reliability, np.ones_like(reliability), 1.0, maps)
        assert np.array_equal(sparse.dense(), dense), step
        assert np.array_equal(warp(dense, flow), _remap_each_channel(dense, flow))
    assert 0 < len(sparse.open) <= height * width
    channel, value = sparse.winner()
    assert np.array_equal(channel, dense.reshape(-1, n).argmax(axis=1))
    assert np.array_equal(value, dense.reshape(-1, n).max(axis=1))
    some = np.sort(rng.choice(height * width, 200, replace=False))
    asked = rng.integers(0, n, height * width)
    assert np.array_equal(sparse.at(asked), dense.reshape(-1, n)[np.arange(height * width), asked])
    assert np.array_equal(sparse.at(asked[some], some), dense.reshape(-1, n)[some, asked[some]])


def test_consistency_is_the_forward_backward_check_as_written():
    rng = np.random.default_rng(3)
    pull, push = _flow(rng, 40, 64, 3.0), _flow(rng, 40, 64, 3.0)
    xs, ys = np.meshgrid(np.arange(64, dtype=np.float32), np.arange(40, dtype=np.float32))
    map_x, map_y = xs + pull[..., 0], ys + pull[..., 1]
    push_at = cv2.remap(push, *cv2.convertMaps(map_x, map_y, cv2.CV_16SC2), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
    norm = lambda v: v[..., 0] ** 2 + v[..., 1] ** 2  # noqa: E731
    scale = (norm(pull) + norm(push_at)) * np.float32(ALPHA) + np.float32(BETA)
    expected = cv2.exp(-(norm(push_at + pull) / scale))
    expected[(map_x < 0) | (map_x > 63) | (map_y < 0) | (map_y > 39)] = 0
    assert np.array_equal(consistency(pull, push), expected)


def test_half_conversions_round_as_numpy_does():
    rng = np.random.default_rng(4)
    values = np.concatenate([rng.normal(0, scale, 10000) for scale in (1e-7, 1e-4, 1, 300, 1e4)]).astype(np.float32)
    values = values.reshape(50, 100, 10)
    assert np.array_equal(to_half(values).view(np.int16), values.astype(np.float16).view(np.int16))
    halves = rng.integers(0, 2**16, 5000).astype(np.uint16).view(np.float16)  # any bit pattern
    halves = halves[np.isfinite(halves)]
    assert np.array_equal(to_single(halves), halves.astype(np.float32))


def test_hundreds_of_classes_are_carried_and_none_is_lost():
    rng = np.random.default_rng(5)
    height, width, n = 40, 60, 600
    keyframe = np.arange(n).reshape(20, 30).repeat(2, axis=0).repeat(2, axis=1)  # every id on a 2x2 block
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    frames = [frame] * 4  # no motion: the labels stay put
    labels, confidences = propagate(frames, {0: keyframe, 3: keyframe}, ignore_index=None, refiner=None)
    for label in labels:
        assert np.array_equal(label, keyframe)
    assert all(c.shape == (height, width) for c in confidences)


@pytest.mark.parametrize("n", [3, 5000])
def test_dense_is_the_one_hot_of_certain_pixels_and_the_rows_of_the_others(n):
    labels = np.arange(20).reshape(4, 5) * (n // 20)
    expected = np.zeros((4, 5, n), np.uint8)
    expected[np.arange(4)[:, None], np.arange(5), labels] = 255
    expected[1, 2] = 7  # an uncertain pixel
    assert np.array_equal(SoftLabels.from_dense(expected).dense(), expected)
