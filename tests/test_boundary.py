"""The boundary refiner (the default): residual form, round trips, per-clip check and fallback,
calibrated confidence, class-agnostic weights, repeatable outputs."""
import json

import numpy as np
import pytest
import torch

from autolabel import propagate
from autolabel.core.pipeline import round_trip_length
from autolabel.core.refine import load_refiner as load_classic
from autolabel.errors import InputError
from autolabel.refiner.boundary.band import CELL, band_cells, band_mask
from autolabel.refiner.boundary.confidence import ConfidenceTable, boundary_distance
from autolabel.refiner.boundary.model import BoundaryNet
from autolabel.refiner.boundary.stage import BoundaryRefiner
from autolabel.refiner.boundary.weights import DEFAULT_WEIGHTS, BoundaryWeights, load_boundary_weights
from autolabel.refiner.load import load_refiner
from autolabel.synth import make_clip

from conftest import run_cli


def untrained_weights() -> BoundaryWeights:
    torch.manual_seed(0)
    return BoundaryWeights(BoundaryNet().state_dict())


def boundary_refiner(weights=None, steps=0) -> BoundaryRefiner:
    return BoundaryRefiner(load_classic(None), weights or untrained_weights(), torch.device("cpu"), steps=steps)


def keyframes_of(clip, every):
    return {i: clip.labels[i] for i in range(0, len(clip.frames), every)}


def test_shipped_weights_load_the_safe_way_and_are_small():
    weights = load_boundary_weights()
    assert DEFAULT_WEIGHTS.stat().st_size < 20 * 2**20
    torch.load(DEFAULT_WEIGHTS, weights_only=True)
    assert weights.trained.get("steps", 0) > 0 and sum(v.abs().sum() for v in weights.state.values()) > 0
    assert any(v.abs().sum() > 0 for k, v in weights.state.items() if k.startswith("out."))   # not the zero start


def test_the_last_layer_at_zero_gives_the_base_labels_exactly():
    clip = make_clip(n_frames=12, height=80, width=112, n_objects=3, seed=4)
    refiner = boundary_refiner()
    refiner.start_clip(((clip.frames[0], clip.labels[0]),), 4)
    probs = np.eye(4, dtype=np.float32)[clip.labels[5]] * 0.8 + 0.05
    channels, confidence = refiner.base.refine(clip.frames[5], probs, np.ones((80, 112), np.float32), 5)
    corrected, _ = refiner._apply(clip.frames[5], channels, confidence, probs, np.ones((80, 112), np.float32), 5)
    assert np.array_equal(corrected, channels)


def test_one_set_of_weights_serves_two_classes_and_many():
    rng = np.random.default_rng(0)
    refiner = boundary_refiner(load_boundary_weights())
    for n in (2, 19):
        label = (np.arange(70 * 90).reshape(70, 90) // 400) % n
        probs = np.eye(n, dtype=np.float32)[label]
        frame = rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)
        refiner.start_clip(((frame, label),), n)
        channels, confidence = refiner._apply(frame, label.astype(np.uint8), np.full(label.shape, 0.9, np.float32),
                                              probs, np.ones(label.shape, np.float32), 3)
        assert channels.shape == label.shape and channels.max() < n and 0 <= confidence.min() <= confidence.max() <= 1


def test_every_band_pixel_lies_in_exactly_one_cell():
    label = np.zeros((130, 200), np.uint8)
    label[20:90, 33:150] = 1
    band = band_mask(label)
    covered = np.zeros_like(band)
    for row, col in band_cells(band):
        covered[row:row + CELL, col:col + CELL] |= band[row:row + CELL, col:col + CELL]
    assert np.array_equal(covered, band) and band.sum() > 0


def test_round_trips_run_once_per_keyframe_with_frames_after_it():
    clip = make_clip(n_frames=16, height=64, width=96, n_objects=2, seed=10, motion="translate")
    trips = []

    class Recording(BoundaryRefiner):
        def learn_round_trip(self, frame, probs, reliability, target, distance, present=None):
            trips.append((frame, probs, target, distance))
            super().learn_round_trip(frame, probs, reliability, target, distance, present)

    refiner = Recording(load_classic(None), untrained_weights(), torch.device("cpu"))
    propagate(clip.frames, {2: clip.labels[2], 8: clip.labels[8], 13: clip.labels[13]}, ignore_index=None,
              refiner=refiner)
    assert [d for *_, d in trips] == [round_trip_length(2, 8, 8), round_trip_length(8, 13, 13),
                                      round_trip_length(13, None, 15)]
    for (frame, probs, target, _), key in zip(trips, (2, 8, 13)):
        assert np.array_equal(frame, clip.frames[key])
        assert (probs.argmax(axis=2) == target).mean() > 0.9   # there and back lands near where it started
    assert refiner.report["samples"] == 3


def test_an_untrusted_network_leaves_the_classic_labels_and_calibrates_their_confidence():
    clip = make_clip(n_frames=21, height=72, width=104, n_objects=3, seed=6)
    keyframes = keyframes_of(clip, 10)
    refiner = boundary_refiner()   # at zero it changes nothing: it never fixes more than it breaks
    labels, confidences = propagate(clip.frames, keyframes, ignore_index=None, refiner=refiner)
    classic, classic_confidences = propagate(clip.frames, keyframes, ignore_index=None, refiner="classic")
    assert not refiner.trusted and refiner.report["samples"] == 2   # keyframes 0 and 10: frames follow them
    assert all(np.array_equal(a, b) for a, b in zip(labels, classic))
    assert any(not np.array_equal(a, b) for a, b in zip(confidences, classic_confidences))


def test_calibrated_confidence_ranks_boundaries_low_where_the_errors_are():
    label = np.zeros((60, 60), np.int64)
    label[:, 30:] = 1
    target = label.copy()
    target[:, 28:30] = 1     # the round trips show errors only next to the boundary
    table = ConfidenceTable()
    sure, reliable = np.full(label.shape, 0.995, np.float32), np.ones(label.shape, np.float32)
    table.add(label, sure, reliable, target)
    calibrated = table(label, sure, reliable)
    near = boundary_distance(label) < 2
    assert calibrated[near].max() < calibrated[~near].min()
    assert calibrated.max() <= 1


def test_per_clip_learning_is_repeatable_on_the_cpu():
    clip = make_clip(n_frames=21, height=72, width=104, n_objects=3, seed=7)
    keyframes = keyframes_of(clip, 10)
    runs = []
    for _ in range(2):
        refiner = boundary_refiner(load_boundary_weights(), steps=3)
        runs.append(propagate(clip.frames, keyframes, ignore_index=None, refiner=refiner))
        assert refiner.report["steps"] == 3 * refiner.report["samples"] > 0
    (labels_a, conf_a), (labels_b, conf_b) = runs
    assert all(np.array_equal(a, b) for a, b in zip(labels_a, labels_b))
    assert all(np.array_equal(a, b) for a, b in zip(conf_a, conf_b))


def test_weights_of_another_kind_are_refused_in_one_line(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"format": "something else"}, other)
    with pytest.raises(InputError, match="other.pt"):
        load_boundary_weights(other)
    saved = tmp_path / "mine.pt"
    untrained_weights().save(saved)
    assert type(load_refiner(str(saved))).__name__ == "BoundaryRefiner"


def test_the_manifest_records_the_refiner_its_steps_and_device(small_clip, tmp_path):
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes",
                           "-o", tmp_path / "out", "--quiet", "--device", "cpu", "--adapt-steps", "2")
    assert code == 0, output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    settings = manifest["settings"]
    assert settings["refiner"].startswith("boundary:boundary.pt+") and settings["refiner_steps"] == 2
    assert settings["refiner_device"] == "cpu"
    assert "learn" in manifest["timings"]


def test_a_class_prior_of_another_label_set_is_refused():
    from autolabel.refiner.prior.stage import PriorRefiner
    from autolabel.refiner.prior.weights import load_weights

    weights = load_weights()
    weights.class_ids = list(range(11))   # as `autolabel train` on CamVid writes them
    prior = PriorRefiner(weights, load_classic(None), torch.device("cpu"))
    clip = make_clip(n_frames=4, height=32, width=48, n_objects=1, seed=1)
    with pytest.raises(InputError, match="none of them"):
        prior.start_clip(((clip.frames[0], clip.labels[0]),), 2, channel_ids=np.array([20, 21]))


@pytest.mark.parametrize("refine, refiner, device, cluster_gpus, asked", [
    (True, "default", "auto", 1, 1), (True, "default", "auto", 0, 0), (True, "default", "cuda", 0, 1),
    (True, "default", "cpu", 4, 0), (True, "classic", "auto", 4, 0), (False, "default", "auto", 4, 0)])
def test_a_ray_task_asks_for_a_gpu_when_its_networks_would_use_one(refine, refiner, device, cluster_gpus, asked):
    from autolabel.datasets.batch import ray_gpus_per_task
    from autolabel.datasets.fingerprint import BatchOptions

    options = BatchOptions(refine=refine, refiner=refiner, device=device)
    assert ray_gpus_per_task(options, {"CPU": 8, "GPU": cluster_gpus}) == asked


@pytest.mark.parametrize("args", [["--classic", "--steps", "5"], ["--boundary", "--hold-out", "x"],
                                  ["--boundary", "--classic"], ["--from-scratch", "--flow-cache", "c"]])
def test_train_refuses_options_its_mode_does_not_read(tmp_path, args):
    code, output = run_cli("train", tmp_path, "-o", tmp_path / "w.pt", *args)
    assert code == 2 and ("does nothing" in output or "pick one" in output), output
    assert not (tmp_path / "w.pt").exists()


def test_a_class_prior_is_not_trained_on_binary_masks_and_id_maps_together(tmp_path):
    from PIL import Image

    from autolabel.refiner.prior.train import train_dataset

    for name, values in (("binary", (0, 255)), ("ids", tuple(range(11)))):
        frames, labels = tmp_path / "data" / name / "frames", tmp_path / "data" / name / "labels"
        frames.mkdir(parents=True)
        labels.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((32, 48, 3), 60 * i, np.uint8)).save(frames / f"{i:05d}.png")
            ids = np.array(values, np.uint8)[np.arange(32 * 48).reshape(32, 48) % len(values)]
            Image.fromarray(ids, mode="L").save(labels / f"{i:05d}.png")
    with pytest.raises(InputError, match="binary"):
        train_dataset(tmp_path / "data", tmp_path / "w.pt", steps=1)
    assert not (tmp_path / "w.pt").exists()


def test_round_trips_are_bounded_and_spread_over_the_clip():
    from autolabel.refiner.boundary.stage import MAX_ROUND_TRIPS

    clip = make_clip(n_frames=41, height=40, width=56, n_objects=1, seed=2)
    trips = []

    class Recording(BoundaryRefiner):
        def learn_round_trip(self, frame, probs, reliability, target, distance, present=None):
            trips.append(next(i for i, f in enumerate(clip.frames) if np.array_equal(f, frame)))

    propagate(clip.frames, keyframes_of(clip, 2), ignore_index=None,
              refiner=Recording(load_classic(None), untrained_weights(), torch.device("cpu")))
    assert len(trips) == MAX_ROUND_TRIPS < 20 and trips[0] == 0 and trips[-1] == 38
