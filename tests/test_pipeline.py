"""The propagation pipeline on synthetic clips with exact ground truth."""
import tracemalloc

import numpy as np
import pytest

from autolabel import Settings, propagate
from autolabel.io.frames import ArrayFrames
from autolabel.core.pipeline import ClassSet, Propagator, segments
from autolabel.tools.synth import make_clip


def test_segments_cover_the_clip_around_keyframes():
    assert segments(10, [3, 7]) == [(0, 3, None, 3), (3, 7, 3, 7), (7, 9, 7, None)]
    assert segments(5, [0, 4]) == [(0, 4, 0, 4)]
    assert segments(5, [0, 1, 4]) == [(1, 4, 1, 4)]


def test_pure_translation_propagates_near_perfectly():
    clip = make_clip(n_frames=21, height=96, width=128, n_objects=3, seed=1, motion="translate")
    labels, confidence = propagate(clip.frames, {0: clip.labels[0], 20: clip.labels[20]})
    for index in range(1, 20):
        # Content entering at the border was never seen by a keyframe; score the rest.
        inside = np.zeros(clip.labels[index].shape, bool)
        inside[2 * 10 + 2:-2 * 10 - 2, 2 * 20 + 2:-2 * 20 - 2] = True
        accuracy = (labels[index] == clip.labels[index])[inside].mean()
        assert accuracy > 0.995, (index, accuracy)
    assert all(c.min() >= 0 and c.max() <= 1 for c in confidence)


def test_keyframes_are_written_through_unchanged():
    clip = make_clip(n_frames=12, height=64, width=96, seed=2)
    labels, confidence = propagate(clip.frames, {0: clip.labels[0], 11: clip.labels[11]})
    assert np.array_equal(labels[0], clip.labels[0]) and np.array_equal(labels[11], clip.labels[11])
    assert confidence[0].min() == 1.0


def test_occlusion_lowers_confidence_where_it_happens():
    clip = make_clip(n_frames=31, height=120, width=160, n_objects=4, seed=0)
    labels, confidence = propagate(clip.frames, {0: clip.labels[0], 30: clip.labels[30]})
    occluded = np.concatenate([clip.occluded[i].ravel() for i in range(1, 30)])
    conf = np.concatenate([confidence[i].ravel() for i in range(1, 30)])
    assert occluded.sum() > 500
    assert conf[occluded].mean() < conf[~occluded].mean() - 0.05


def test_reliability_fusion_beats_distance_fusion_on_occlusions():
    scores = {}
    for fusion in ("distance", "reliability"):
        correct = total = 0
        for seed in range(3):
            clip = make_clip(n_frames=21, height=96, width=128, n_objects=4, seed=seed)
            labels, _ = propagate(clip.frames, {0: clip.labels[0], 20: clip.labels[20]},
                                  settings=Settings(fusion=fusion))
            for i in range(1, 20):
                correct += (labels[i] == clip.labels[i]).sum()
                total += labels[i].size
        scores[fusion] = correct / total
    assert scores["reliability"] > scores["distance"]


def test_same_inputs_give_identical_outputs():
    clip = make_clip(n_frames=12, height=64, width=96, seed=4)
    first = propagate(clip.frames, {3: clip.labels[3], 9: clip.labels[9]})
    second = propagate(clip.frames, {3: clip.labels[3], 9: clip.labels[9]})
    for a, b in zip(first[0] + first[1], second[0] + second[1]):
        assert np.array_equal(a, b)


def test_ignore_is_carried_as_unlabeled_never_a_class():
    clip = make_clip(n_frames=8, height=64, width=96, seed=5, motion="translate")
    key = clip.labels[0].astype(np.int64)
    key[:, :30] = 255
    labels, _ = propagate(clip.frames, {0: key}, ignore_index=255)
    assert (labels[5] == 255).mean() > 0.2
    assert set(np.unique(labels[5])) <= set(np.unique(key))
    classes = ClassSet.from_labels([key], 255)
    assert 255 not in classes.ids.tolist()


def _peak_numpy_bytes(n_frames: int) -> int:
    clip = make_clip(n_frames=10, height=72, width=96, seed=6, motion="translate")
    frames = ArrayFrames([clip.frames[i % 10] for i in range(n_frames)])
    label = clip.labels[0]
    keyframes = list(range(0, n_frames, 5))
    propagator = Propagator(frames, lambda i: label, keyframes, ClassSet.from_labels([label], 255))
    tracemalloc.start()
    for _ in propagator.run():
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_memory_does_not_grow_with_clip_length(monkeypatch):
    # How far flow runs ahead depends on thread timing; pin it so the peak is repeatable.
    monkeypatch.setattr("autolabel.core.flow.LOOKAHEAD_PAIRS", (4, 4))
    # Frames live in the source; the pipeline's own arrays (one segment, plus flow computed
    # at most 32 pairs ahead) must not scale with length.
    # A clip 4x as long would need ~4x the memory if anything scaled with length.
    short, long = _peak_numpy_bytes(120), _peak_numpy_bytes(480)
    assert long < 1.6 * short, (short, long)


def test_flow_scale_and_backends_run():
    clip = make_clip(n_frames=6, height=64, width=96, seed=7, motion="translate")
    for settings in (Settings(flow_scale=0.5), Settings(flow="farneback"), Settings(flow_preset="fast")):
        labels, _ = propagate(clip.frames, {0: clip.labels[0], 5: clip.labels[5]}, settings=settings)
        assert (labels[2] == clip.labels[2]).mean() > 0.9


def test_bad_settings_are_rejected():
    clip = make_clip(n_frames=4, height=32, width=48, seed=8)
    with pytest.raises(ValueError):
        propagate(clip.frames, {0: clip.labels[0]}, settings=Settings(flow="nope"))
