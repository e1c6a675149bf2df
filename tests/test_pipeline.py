"""The propagation pipeline on synthetic clips with exact ground truth."""
import tracemalloc

import numpy as np
import pytest

from autolabel import Settings, propagate
from autolabel.io.frames import ArrayFrames
from autolabel.core.pipeline import ClassSet, Propagator, segments
from autolabel.core.warp import SoftLabels
from autolabel.synth import make_clip


def test_segments_cover_the_clip_around_keyframes():
    assert segments(10, [3, 7]) == [(0, 3, None, 3), (3, 7, 3, 7), (7, 9, 7, None)]
    assert segments(5, [0, 4]) == [(0, 4, 0, 4)]
    assert segments(5, [0, 1, 4]) == [(1, 4, 1, 4)]


def test_pure_translation_propagates_near_perfectly():
    clip = make_clip(n_frames=21, height=96, width=128, n_objects=3, seed=1, motion="translate")
    labels, confidence = propagate(clip.frames, {0: clip.labels[0], 20: clip.labels[20]}, refiner=None)
    for index in range(1, 20):
        # Content entering at the border was never seen by a keyframe; score the rest.
        inside = np.zeros(clip.labels[index].shape, bool)
        inside[2 * 10 + 2:-2 * 10 - 2, 2 * 20 + 2:-2 * 20 - 2] = True
        accuracy = (labels[index] == clip.labels[index])[inside].mean()
        assert accuracy > 0.995, (index, accuracy)
    assert all(c.min() >= 0 and c.max() <= 1 for c in confidence)


def test_keyframes_are_written_through_unchanged():
    clip = make_clip(n_frames=12, height=64, width=96, seed=2)
    labels, confidence = propagate(clip.frames, {0: clip.labels[0], 11: clip.labels[11]}, refiner=None)
    assert np.array_equal(labels[0], clip.labels[0]) and np.array_equal(labels[11], clip.labels[11])
    assert confidence[0].min() == 1.0


def test_occlusion_lowers_confidence_where_it_happens():
    clip = make_clip(n_frames=31, height=120, width=160, n_objects=4, seed=0)
    labels, confidence = propagate(clip.frames, {0: clip.labels[0], 30: clip.labels[30]}, refiner=None)
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
                                  settings=Settings(fusion=fusion), refiner=None)
            for i in range(1, 20):
                correct += (labels[i] == clip.labels[i]).sum()
                total += labels[i].size
        scores[fusion] = correct / total
    assert scores["reliability"] > scores["distance"]


def test_same_inputs_give_identical_outputs():
    clip = make_clip(n_frames=12, height=64, width=96, seed=4)
    first = propagate(clip.frames, {3: clip.labels[3], 9: clip.labels[9]}, refiner=None)
    second = propagate(clip.frames, {3: clip.labels[3], 9: clip.labels[9]}, refiner=None)
    for a, b in zip(first[0] + first[1], second[0] + second[1]):
        assert np.array_equal(a, b)


def test_ignore_is_carried_as_unlabeled_never_a_class():
    clip = make_clip(n_frames=8, height=64, width=96, seed=5, motion="translate")
    key = clip.labels[0].astype(np.int64)
    key[:, :30] = 255
    labels, _ = propagate(clip.frames, {0: key}, ignore_index=255, refiner=None)
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
        labels, _ = propagate(clip.frames, {0: clip.labels[0], 5: clip.labels[5]}, settings=settings, refiner=None)
        assert (labels[2] == clip.labels[2]).mean() > 0.9


def test_bad_settings_are_rejected():
    clip = make_clip(n_frames=4, height=32, width=48, seed=8)
    with pytest.raises(ValueError):
        propagate(clip.frames, {0: clip.labels[0]}, settings=Settings(flow="nope"), refiner=None)


def test_fusing_a_waiting_top2_side_picks_the_argmax_of_the_dense_fusion():
    from autolabel.core import fuse

    rng = np.random.default_rng(0)
    for n in (2, 3, 7):
        left, right = (rng.dirichlet(np.full(n, 0.3), (40, 50)) for _ in range(2))
        left, right = (np.rint(p * 255).astype(np.uint8) for p in (left, right))
        rel_left, rel_right = (rng.random((40, 50)).astype(np.float32) for _ in range(2))
        waiting = fuse.TopChannels.of(SoftLabels.from_dense(left), rel_left, 3)
        pure = rng.random((40, 50)) < 0.5  # some pixels certain, as inside propagated regions
        right[pure] = 255 * np.eye(n, dtype=np.uint8)[rng.integers(n, size=pure.sum())]
        sparse = SoftLabels.from_dense(right)
        assert np.array_equal(sparse.dense(), right)
        assert np.array_equal(sparse.winner()[0], right.argmax(axis=2).ravel())
        labels, confidence = fuse.label_and_confidence(sparse, waiting, rel_right, 5)
        dense, _ = fuse.fused_probs(sparse, rel_right, 5, waiting)
        np.testing.assert_allclose(confidence, dense.max(axis=2), atol=1e-6)
        assert (labels == dense.argmax(axis=2)).mean() > 0.999
        if n <= fuse.KEPT:  # nothing dropped: the same as fusing the full sides
            share = fuse.share_of_first(rel_left.astype(np.float16), rel_right, 3, 5)[..., None]  # kept as float16
            full = (share * left + (1 - share) * right) / 255
            np.testing.assert_allclose(dense, full, atol=1e-5)


def test_classes_absent_from_a_segment_change_nothing():
    clip = make_clip(n_frames=12, height=64, width=96, n_objects=2, seed=9)
    keyframes = {0: clip.labels[0], 11: clip.labels[11]}
    source, label = ArrayFrames(clip.frames), lambda i: keyframes[i]
    seen = ClassSet.from_labels(keyframes.values(), None)
    more = ClassSet(list(seen.ids) + [90, 91, 200], None)
    runs = [list(Propagator(source, label, list(keyframes), classes).run()) for classes in (seen, more)]
    for a, b in zip(*runs):
        assert np.array_equal(seen.to_ids(a.channels), more.to_ids(b.channels))
        assert np.array_equal(a.confidence, b.confidence)


class RecordingRefiner:
    """Refines nothing; records what the pipeline hands it."""

    def __init__(self, learns: bool):
        self.adapt = learns
        self.refined, self.learned, self.keyframes = [], [], []

    def start_clip(self, keyframes, n_channels, channel_ids=None):
        self.keyframes = [(frame, channels) for frame, channels in keyframes]

    def learn(self, frame, probs, reliability, target, distance, present):
        self.learned.append((frame, probs, reliability, target, distance))

    def refine(self, frame, probs, reliability, distance, present, one_sided, spacing=None):
        self.refined.append((frame, probs.shape, reliability.shape, distance, one_sided))
        channels = probs.argmax(axis=2)
        return channels, np.take_along_axis(probs, channels[..., None], axis=2)[..., 0]


@pytest.mark.parametrize("learns", [True, False])
def test_refiner_sees_fused_labels_and_learns_once_per_two_keyframe_segment(learns):
    clip = make_clip(n_frames=16, height=64, width=96, n_objects=2, seed=10, motion="translate")
    keyframes = {2: clip.labels[2], 8: clip.labels[8], 13: clip.labels[13]}
    refiner = RecordingRefiner(learns)
    labels, _ = propagate(clip.frames, keyframes, ignore_index=None, refiner=refiner)
    geometry, _ = propagate(clip.frames, keyframes, ignore_index=None, refiner=None)
    assert all(np.array_equal(a, b) for a, b in zip(labels, geometry))  # refines nothing: labels unchanged
    assert len(refiner.refined) == 16 - 3
    assert all(shape[:2] == (64, 96) and reliability == (64, 96) for _, shape, reliability, *_ in refiner.refined)
    assert sorted(d for *_, d, _ in refiner.refined) == sorted([2, 1] + [1, 2, 3, 2, 1] + [1, 2, 2, 1] + [1, 2])
    assert sum(one_sided for *_, one_sided in refiner.refined) == 4  # frames 0, 1, 14, 15
    assert len(refiner.keyframes) == 3 and np.array_equal(refiner.keyframes[1][0], clip.frames[8])
    if not learns:
        return
    assert len(refiner.learned) == 2  # segments 2-8 and 8-13; not before 2 nor after 13
    classes = ClassSet.from_labels(keyframes.values(), None)
    for (frame, probs, reliability, target, distance), right in zip(refiner.learned, (8, 13)):
        assert np.array_equal(frame, clip.frames[right]) and distance == (6 if right == 8 else 5)
        assert probs.dtype == np.float32 and np.allclose(probs.sum(axis=2), 1, atol=0.05)
        assert reliability.shape == target.shape == (64, 96) and target.max() < probs.shape[2]
        assert (probs.argmax(axis=2) == target).mean() > 0.9  # carried from the left keyframe, all the way
        present = np.unique(classes.channels(np.concatenate([keyframes[right - (8 - 2 if right == 8 else 13 - 8)],
                                                             keyframes[right]])))
        assert np.array_equal(classes.to_ids(present[target]), keyframes[right])


def test_flow_lookahead_follows_the_room_left_also_when_it_shrinks():
    from autolabel.core.flow import FlowEstimator, flow_pairs

    clip = make_clip(n_frames=12, height=32, width=48, seed=11)
    room = iter([10**9] * 3 + [0] * 20)  # plenty, then none: fewer pairs ahead than already pending
    pairs = list(flow_pairs(ArrayFrames(clip.frames).read, range(11), FlowEstimator(), room=lambda: next(room)))
    assert [pair[0] for pair in pairs] == list(range(11))
