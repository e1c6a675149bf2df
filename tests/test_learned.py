"""The learned refiner: residual over the classic refiner, learns a clip's classes from its keyframes,
repeatable, trains and resumes on a dataset, loads weights safely, refuses a missing device."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from autolabel.core.pipeline import propagate
from autolabel.core.refine import load_refiner as load_classic
from autolabel.errors import InputError
from autolabel.evaluation.metrics import Calibration
from autolabel.refiner.prior.fit import Fitter, Schedule, predict
from autolabel.refiner.prior.stage import PriorRefiner, combine
from autolabel.refiner.prior.model import RefinerNet, work_size
from autolabel.refiner.prior.samples import LabeledFrames
from autolabel.refiner.prior.train import train_dataset
from autolabel.refiner.device import resolve_device
from autolabel.refiner.prior.weights import Weights, load_weights
from autolabel.synth import make_clip, write_clip

from conftest import make_keyframes, run_cli


def tiny_weights(alpha=1.0, **changes) -> Weights:
    torch.manual_seed(0)
    return Weights(trunk=RefinerNet(1).trunk.state_dict(), fusion={"alpha": {1 << 16: alpha}},
                   adapt_steps={"cpu": 6, "cuda": 6}, **changes)


def test_fuse_with_no_weight_is_the_classic_output():
    rng = np.random.default_rng(0)
    channels = rng.integers(0, 3, (30, 40)).astype(np.uint8)
    confidence = rng.uniform(0.4, 1, (30, 40)).astype(np.float32)
    log_net = np.log(rng.dirichlet(np.ones(3), (15, 20)).transpose(2, 0, 1)).astype(np.float32)
    fused, fused_confidence = combine(channels, confidence, log_net, 0.0)
    assert (fused == channels).all()
    np.testing.assert_allclose(fused_confidence, np.clip(confidence, 1e-4, 1 - 1e-4), rtol=1e-5)


def test_fuse_lets_a_sure_network_overturn_an_unsure_warp_only():
    channels = np.zeros((4, 4), np.uint8)
    confidence = np.full((4, 4), 0.6, np.float32)
    confidence[:, 2:] = 0.999                               # the warp is sure on the right half
    log_net = np.log(np.stack([np.full((4, 4), 0.02), np.full((4, 4), 0.98)])).astype(np.float32)
    fused, fused_confidence = combine(channels, confidence, log_net, 1.0)
    assert (fused[:, :2] == 1).all() and (fused[:, 2:] == 0).all()
    assert ((fused_confidence > 0) & (fused_confidence <= 1)).all()
    # the full formula, p ∝ p_classic · p_net^w, at one pixel of each half
    for col, p in ((0, 0.6), (3, 0.999)):
        scores = np.array([p * 0.02, (1 - p) * 0.98])
        assert fused_confidence[0, col] == pytest.approx(scores.max() / scores.sum(), rel=1e-4)


def test_per_clip_learning_teaches_the_network_the_clip():
    """Trained on one frame's label for a few steps, the network labels another frame of the clip
    far better than chance."""
    clip = make_clip(n_frames=12, height=96, width=128, n_objects=2, seed=5)
    frames = LabeledFrames()
    ids = np.unique(clip.labels[0])
    for i in (0, 6):
        frames.add(clip.frames[i], np.searchsorted(ids, clip.labels[i]), (128, 96))
    torch.manual_seed(0)
    net = RefinerNet(len(ids))
    Fitter(net, frames, len(ids), Schedule(40, batch=4, crop=48), torch.device("cpu")).run()
    prediction = predict(net, clip.frames[3], torch.device("cpu")).argmax(0)
    accuracy = (ids[prediction] == clip.labels[3]).mean()
    assert accuracy > 0.8, accuracy


def test_learned_refiner_is_residual_and_repeatable():
    clip = make_clip(n_frames=11, height=48, width=64, n_objects=2, seed=2)
    keys = {0: clip.labels[0], 10: clip.labels[10]}
    classic, _ = propagate(clip.frames, keys, refiner=load_classic())
    # no say for the network: exactly the classic refiner's output
    off = PriorRefiner(tiny_weights(alpha=0.0), load_classic(), torch.device("cpu"))
    same, _ = propagate(clip.frames, keys, refiner=off)
    assert all((a == b).all() for a, b in zip(classic, same))
    runs = [propagate(clip.frames, keys, refiner=PriorRefiner(tiny_weights(), load_classic(), torch.device("cpu")))
            for _ in range(2)]
    assert all((a == b).all() for a, b in zip(runs[0][0], runs[1][0]))
    assert all((a == b).all() for a, b in zip(runs[0][1], runs[1][1]))


def test_weights_round_trip_and_bad_weights_are_one_error(tmp_path):
    weights = tiny_weights(alpha=0.5, class_ids=[1, 2])
    weights.save(tmp_path / "r.pt")
    loaded = load_weights(tmp_path / "r.pt")
    assert loaded.alpha(2) == 0.5 and loaded.class_ids == [1, 2]
    assert all(torch.equal(loaded.trunk[k], weights.trunk[k]) for k in weights.trunk)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="bad.pt: cannot load refiner weights"):
        load_weights(tmp_path / "bad.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not autolabel-learned-refiner"):
        load_weights(tmp_path / "other.pt")


def test_shipped_weights_load():
    weights = load_weights()
    assert weights.trained and set(weights.adapt_steps) == {"cpu", "cuda"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_missing_device_is_refused_before_any_work(small_clip, tmp_path):
    with pytest.raises(InputError, match="no CUDA device"):
        resolve_device("cuda")
    code, output = run_cli("propagate", "--video", small_clip / "frames", "--keyframes", small_clip / "keyframes",
                           "--out", tmp_path / "out", "--device", "cuda:0")
    assert code == 2 and "no CUDA device" in output and len(output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    code, output = run_cli("propagate", "--video", small_clip / "frames", "--keyframes", small_clip / "keyframes",
                           "--out", tmp_path / "out", "--device", "tpu")
    assert code == 2 and "device" in output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_refiner_runs_on_cuda_repeatably():
    clip = make_clip(n_frames=21, height=96, width=128, n_objects=2, seed=4)
    keys = {0: clip.labels[0], 10: clip.labels[10], 20: clip.labels[20]}
    runs = [propagate(clip.frames, keys, refiner=PriorRefiner(tiny_weights(), load_classic(), torch.device("cuda")))
            for _ in range(2)]
    assert all((a == b).all() for a, b in zip(runs[0][0], runs[1][0]))
    accuracy = np.mean([(runs[0][0][i] == clip.labels[i]).mean() for i in range(21)])
    assert accuracy > 0.9


def test_errors_in_least_confident_share():
    calibration = Calibration()
    confidence = np.linspace(0, 1, 1000, endpoint=False)
    correct = np.ones(1000, bool)
    correct[:40] = False          # 40 errors, all among the 50 least-confident pixels
    correct[500:510] = False      # 10 more in the middle
    calibration.add(confidence, correct)
    assert calibration.errors_in_least_confident(0.05) == pytest.approx(40 / 50)
    tie = Calibration()           # every pixel equally confident: 5 % of the errors, in proportion
    tie.add(np.full(1000, 0.9), correct)
    assert tie.errors_in_least_confident(0.05) == pytest.approx(0.05)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    for seed, name in ((1, "a"), (2, "b"), (3, "c")):
        clip = make_clip(n_frames=6, height=48, width=64, n_objects=2, seed=seed)
        write_clip(clip, root / name, label_format="gray")
        make_keyframes(root / name, 2, into=root / name / "sparse")
        (root / name / "labels").rename(root / name / "dense")
        (root / name / "sparse").rename(root / name / "labels")
    return root


def test_train_on_a_dataset_resumes_after_a_kill_to_the_same_weights(tiny_dataset, tmp_path):
    common = dict(steps=4, hold_out=["c"], from_scratch=True, checkpoint_every=2, batch=2, crop=32,
                  log=lambda message: None)
    whole = train_dataset(tiny_dataset, tmp_path / "whole.pt", **common)
    assert whole["held_out"]["frames"] == 3 and whole["frames"] == 6

    def killed(step, loss):
        if step == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train_dataset(tiny_dataset, tmp_path / "resumed.pt", progress=killed, **common)
    assert (tmp_path / ".resumed.pt.checkpoint").exists() and not (tmp_path / "resumed.pt").exists()
    train_dataset(tiny_dataset, tmp_path / "resumed.pt", **common)
    a, b = load_weights(tmp_path / "whole.pt"), load_weights(tmp_path / "resumed.pt")
    assert all(torch.equal(a.trunk[k], b.trunk[k]) for k in a.trunk)
    assert not (tmp_path / ".resumed.pt.checkpoint").exists()


def test_train_command_reports_and_refuses_unknown_clips(tiny_dataset, tmp_path):
    code, output = run_cli("train", tiny_dataset, "-o", tmp_path / "r.pt", "--steps", "2", "--from-scratch",
                           "--hold-out", "nope")
    assert code == 2 and "no clip named 'nope'" in output
    (tmp_path / "empty").mkdir()
    code, output = run_cli("train", tmp_path / "empty", "-o", tmp_path / "r.pt")
    assert code == 2 and "no clips found" in output and not (tmp_path / "r.pt").exists()
    code, output = run_cli("train", tiny_dataset, "-o", tmp_path / "r.pt", "--steps", "2", "--from-scratch",
                           "--hold-out", "c")
    assert code == 0, output
    assert "held out c" in output and load_weights(tmp_path / "r.pt").class_ids


def test_work_size_keeps_frames_small_and_aligned():
    assert work_size(854, 480) == (448, 256) and work_size(64, 48) == (64, 48)


def test_fit_trust_writes_a_weight_and_a_calibration_per_label_set_size(tmp_path):
    from autolabel.refiner.prior.trust import fit_trust

    clip = make_clip(n_frames=31, height=48, width=64, n_objects=2, seed=6)
    write_clip(clip, tmp_path / "clip", label_format="palette")
    summary = fit_trust([(tmp_path / "clip" / "frames", tmp_path / "clip" / "labels")], tiny_weights(),
                         tmp_path / "fitted.pt", every=10, steps=3, log=lambda message: None)
    assert summary["targets"] > 0
    fitted = load_weights(tmp_path / "fitted.pt")
    assert fitted.alpha(3) in (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
    table = fitted.calibration(3)
    accuracy = np.array(table["accuracy"])
    assert (np.diff(accuracy, axis=1) >= 0).all() and ((accuracy >= 0) & (accuracy <= 1)).all()
    assert fitted.trained["fusion"]["fit"]
