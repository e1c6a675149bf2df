"""The refine stage: edges snap to the frame, the appearance cue repairs drift, settings are chosen
on the clip's own keyframes, and the shipped weights load and help."""
from __future__ import annotations

import json

import numpy as np
import pytest

from autolabel.core.appearance import Appearance
from autolabel.core.guided import GuidedFilter
from autolabel.core.pipeline import propagate
from autolabel.core.refine import DEFAULT_WEIGHTS, Cues, Refiner, Setting, load_refiner, mean_iou
from autolabel.errors import InputError
from autolabel.synth import make_clip


def step_frame(height=60, width=90, edge=40):
    """Dark left part, bright right part, a little noise."""
    rng = np.random.default_rng(0)
    frame = np.full((height, width, 3), 40, np.uint8)
    frame[:, edge:] = 200
    return np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)


def two_class_probs(height, width, edge):
    probs = np.zeros((height, width, 2), np.float32)
    probs[:, :edge, 0] = 1
    probs[:, edge:, 1] = 1
    return probs


@pytest.mark.parametrize("subsample", [1, 2])
def test_guided_filter_snaps_a_misplaced_boundary_to_the_image_edge(subsample):
    frame = step_frame(edge=40)
    probs = two_class_probs(60, 90, edge=44)           # the warp left the boundary 4 px off
    edges = GuidedFilter(frame, radius=8, eps=1e-3, subsample=subsample)
    small = probs if subsample == 1 else probs[::subsample, ::subsample]
    rows, cols = np.indices((60, 90)).reshape(2, -1)
    filtered = edges.at(edges.coefficient_maps(np.ascontiguousarray(small)), rows, cols).reshape(60, 90, 2)
    assert np.allclose(filtered.sum(axis=2), 1, atol=1e-4)
    truth = two_class_probs(60, 90, edge=40).argmax(axis=2)
    wrong_before = (probs.argmax(axis=2) != truth).sum()
    wrong_after = (filtered.argmax(axis=2) != truth).sum()
    assert wrong_before == 4 * 60 and wrong_after <= wrong_before / 2


def test_appearance_without_a_frame_equals_never_adding_it():
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(3)]
    labels = [rng.integers(0, 3, (20, 30)) for _ in range(3)]
    all_three, two = Appearance(3), Appearance(3)
    for frame, label in zip(frames, labels):
        all_three.add(frame, label)
    for frame, label in zip(frames[:2], labels[:2]):
        two.add(frame, label)
    assert np.allclose(all_three.without(frames[2], labels[2]), two.table)
    looks = two(frames[0])
    assert looks.shape == (20, 30, 3) and np.allclose(looks.sum(axis=2), 1, atol=1e-5)


def test_appearance_cue_repairs_drift_and_grows_with_distance():
    frame = step_frame(edge=40)
    truth = two_class_probs(60, 90, edge=40).argmax(axis=2)
    appearance = Appearance(2)
    appearance.add(frame, truth)
    drifted = two_class_probs(60, 90, edge=60) * 0.8 + 0.1  # 20 px of drift, fairly confident
    cues = Cues(frame, appearance.table)
    setting = Setting(appearance=2.0, radius=0, eps=0.0)
    near = cues.full_size(setting, *cues.apply(setting, cues.shrink(drifted), distance=1))[0]
    far = cues.full_size(setting, *cues.apply(setting, cues.shrink(drifted), distance=30))[0]
    assert mean_iou(far, truth, 2) > 0.95 > mean_iou(near, truth, 2)


def test_learn_prefers_what_fixes_the_clip():
    frame = step_frame(edge=40)
    truth = two_class_probs(60, 90, edge=40).argmax(axis=2)
    candidates = [Setting(0.0, 0, 0.0), Setting(2.0, 0, 0.0), Setting(0.0, 8, 1e-3)]
    refiner = Refiner(candidates, defaults=0)
    other = step_frame(edge=40)
    refiner.start_clip([(other, truth), (frame, truth)], 2)
    assert refiner.chosen == candidates[0]                       # the default, before any sample
    drifted = two_class_probs(60, 90, edge=60) * 0.8 + 0.1
    refiner.learn(frame, drifted, np.full((60, 90), 0.2, np.float32), truth, distance=30)
    assert refiner.samples == 1 and refiner.chosen == candidates[1]
    fixed = Refiner(candidates, defaults=0, adapt=False)
    fixed.start_clip([(frame, truth)], 2)
    assert fixed.chosen == candidates[0]


@pytest.fixture(scope="module")
def shipped():
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("models/refiner.json not present")
    return load_refiner()


def test_shipped_weights_load_and_name_their_training(shipped):
    blob = json.loads(DEFAULT_WEIGHTS.read_text())
    assert blob["trained"]["every"] == 10 and all(d["propagations"] > 0 for d in blob["defaults"])
    objects = blob["defaults"][0]
    shipped.start_clip([], 2)
    assert shipped.chosen.as_list() == blob["candidates"][objects["default"]]


def test_bad_weights_are_one_clear_error(tmp_path):
    path = tmp_path / "weights.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(InputError, match="cannot load refiner weights"):
        load_refiner(path)
    with pytest.raises(InputError, match="cannot load refiner weights"):
        load_refiner(tmp_path / "missing.json")


def test_refiner_beats_geometry_on_a_drifting_synthetic_clip(shipped):
    clip = make_clip(n_frames=31, height=96, width=144, n_objects=3, seed=4, max_speed=5.0)
    keyframes = {0: clip.labels[0], 15: clip.labels[15], 30: clip.labels[30]}

    def accuracy(labels):
        return np.mean([(labels[t] == clip.labels[t]).mean() for t in range(31) if t not in keyframes])

    geometry, _ = propagate(clip.frames, keyframes, ignore_index=None, refiner=None)
    refined, confidence = propagate(clip.frames, keyframes, ignore_index=None)  # refines by default
    again, _ = propagate(clip.frames, keyframes, ignore_index=None, refiner="default")
    assert accuracy(refined) > accuracy(geometry)
    assert all(np.array_equal(a, b) for a, b in zip(refined, again))           # deterministic
    assert all(c.dtype == np.float32 and 0 <= c.min() and c.max() <= 1 for c in confidence)


def test_a_segment_of_one_class_is_refined_without_error():
    """Both keyframes of a segment hold only the background (the object left the view): one channel."""
    from autolabel import propagate
    from autolabel.synth import make_clip

    clip = make_clip(n_frames=41, height=40, width=56, n_objects=1, seed=2)
    keyframes = {i: clip.labels[i] for i in range(0, 41, 2)}
    assert any(len(np.unique(keyframes[a])) == len(np.unique(keyframes[a + 2])) == 1 for a in range(0, 39, 2))
    labels, confidences = propagate(clip.frames, keyframes, ignore_index=None, refiner="classic")
    geometry, _ = propagate(clip.frames, keyframes, ignore_index=None, refiner=None)
    for a in range(0, 39, 2):
        if len(np.unique(keyframes[a])) == len(np.unique(keyframes[a + 2])) == 1:
            assert np.array_equal(labels[a + 1], geometry[a + 1]) and confidences[a + 1].max() <= 1
