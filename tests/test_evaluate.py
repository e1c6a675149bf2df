import json

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from autolabel.errors import InputError
from autolabel.evaluation.evaluate import evaluate
from autolabel.evaluation.report import report_table
from autolabel.evaluation.metrics import Scorer, boundary_tolerance


def write_ids(folder, stem, ids):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(ids, dtype=np.uint8), mode="L").save(folder / f"{stem}.png")


def write_palette(folder, stem, ids):
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.asarray(ids, dtype=np.uint8), mode="L")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (768 - 9))
    image.save(folder / f"{stem}.png")


def halves(height=8, width=8, left=0, right=1):
    ids = np.full((height, width), left, np.uint8)
    ids[:, width // 2:] = right
    return ids


def square(top, left, size=20, shape=(100, 100)):
    ids = np.zeros(shape, np.uint8)
    ids[top:top + size, left:left + size] = 1
    return ids


def test_perfect_prediction_scores_100_and_certain_confidence_has_no_calibration_error(tmp_path):
    gt = halves()
    gt[2:5, 1:3] = 2
    for stem in ("0001", "0002"):
        write_ids(tmp_path / "gt", stem, gt)
        write_ids(tmp_path / "pred", stem, gt)
        write_ids(tmp_path / "conf", stem, np.full(gt.shape, 255))
    report = evaluate(tmp_path / "pred", tmp_path / "gt", confidence_dir=tmp_path / "conf")
    assert report["metric"] == "mIoU"
    assert report["score"] == 100 and report["boundary_f"] == 100
    assert report["per_class"] == {"0": 100, "1": 100, "2": 100}
    assert report["ece"] == 0 and report["frames_scored"] == 2
    assert report["calibration"][9] == {"lo": 0.9, "hi": 1.0, "count": 128, "confidence": 1.0, "accuracy": 1.0}
    json.dumps(report)


def test_iou_per_class_and_miou_by_hand():
    scorer = Scorer(object_format=False, ignore_index=255)
    scorer.add(np.array([[0, 1, 1, 1]]), np.array([[0, 0, 1, 1]]))
    result = scorer.result()
    assert result["per_class"] == pytest.approx({"0": 50.0, "1": 200 / 3})
    assert result["score"] == pytest.approx((50 + 200 / 3) / 2)


def test_j_leaves_out_background():
    scorer = Scorer(object_format=True, ignore_index=255)
    scorer.add(np.array([[0, 1, 1, 1]]), np.array([[0, 0, 1, 1]]))
    result = scorer.result()
    assert result["metric"] == "J"
    assert result["per_class"] == pytest.approx({"1": 200 / 3})
    assert result["score"] == pytest.approx(200 / 3)


def test_miou_leaves_out_ignore_pixels_but_predicting_ignore_is_a_miss():
    scorer = Scorer(object_format=False, ignore_index=255)
    # pixel 1 is unlabeled in GT (not scored); pixel 3 predicts ignore where GT says 1.
    scorer.add(np.array([[0, 0, 1, 255]]), np.array([[0, 255, 1, 1]]))
    result = scorer.result()
    assert result["per_class"] == pytest.approx({"0": 100.0, "1": 50.0})
    assert result["score"] == pytest.approx(75.0)


def test_j_is_accumulated_over_the_clip_and_the_frame_mean_is_reported_too():
    scorer = Scorer(object_format=True, ignore_index=None)
    scorer.add(np.array([[1, 0, 0, 0]]), np.array([[1, 1, 0, 0]]))   # IoU 1/2
    scorer.add(np.full((2, 4), 1), np.full((2, 4), 1))               # IoU 8/8
    result = scorer.result()
    assert result["score"] == pytest.approx(100 * 9 / 10)
    assert result["frame_mean_score"] == pytest.approx(75.0)


def test_binary_masks_score_j_of_the_255_object(tmp_path):
    gt = np.zeros((8, 8), np.uint8)
    gt[:, :4] = 255
    pred = np.zeros((8, 8), np.uint8)
    pred[:, :2] = 255
    write_ids(tmp_path / "gt", "a", gt)
    write_ids(tmp_path / "pred", "a", pred)
    report = evaluate(tmp_path / "pred", tmp_path / "gt")
    assert report["metric"] == "J" and report["format"].startswith("binary")
    assert report["per_class"] == {"255": 50.0}


def test_palette_objects_score_j_over_objects(tmp_path):
    gt = halves(left=1, right=2)
    gt[:, :2] = 0
    pred = gt.copy()
    pred[:, 4] = 1  # object 1 grows into object 2: I 16/U 24 for 1, I 24/U 32 for 2
    write_palette(tmp_path / "gt", "a", gt)
    write_palette(tmp_path / "pred", "a", pred)
    report = evaluate(tmp_path / "pred", tmp_path / "gt")
    assert report["metric"] == "J"
    assert report["per_class"] == pytest.approx({"1": 100 * 16 / 24, "2": 100 * 24 / 32})


def test_boundary_f_is_100_for_identical_and_within_tolerance_and_lower_when_shifted():
    assert boundary_tolerance(100, 100) == 1
    assert boundary_tolerance(480, 854) == 8
    results = {}
    for shift in (0, 1, 6):
        scorer = Scorer(object_format=True, ignore_index=None)
        scorer.add(square(10, 10 + shift), square(10, 10))
        results[shift] = scorer.result()["boundary_f"]
    assert results[0] == 100 and results[1] == 100
    assert 0 < results[6] < 100


def test_boundary_f_of_an_object_missing_from_the_prediction_is_0():
    scorer = Scorer(object_format=True, ignore_index=None)
    scorer.add(np.zeros((100, 100), np.uint8), square(10, 10))
    assert scorer.result()["boundary_f"] == 0


@pytest.mark.parametrize("confidence, correct_share, ece", [(0.8, 0.8, 0.0), (1.0, 0.5, 0.5)])
def test_expected_calibration_error(confidence, correct_share, ece):
    gt = np.ones((1, 10), np.int32)
    pred = gt.copy()
    pred[0, int(10 * correct_share):] = 0
    scorer = Scorer(object_format=False, ignore_index=255)
    scorer.add(pred, gt, confidence=np.full(gt.shape, confidence, np.float32))
    result = scorer.result()
    assert result["ece"] == pytest.approx(ece, abs=1e-6)
    filled = [row for row in result["calibration"] if row["count"]]
    assert len(filled) == 1 and filled[0]["count"] == 10
    assert filled[0]["accuracy"] == pytest.approx(correct_share)


def test_keyframes_are_not_scored(tmp_path):
    for stem in ("0001", "0002", "0003"):
        write_ids(tmp_path / "gt", stem, halves())
        write_ids(tmp_path / "pred", stem, halves() if stem != "0002" else halves(left=1, right=0))
    write_ids(tmp_path / "keys", "0002", halves())
    report = evaluate(tmp_path / "pred", tmp_path / "gt", keyframes_dir=tmp_path / "keys")
    assert report["score"] == 100
    assert report["frames_scored"] == 2 and report["keyframes_excluded"] == 1


def test_scores_grouped_by_distance_from_keyframe_stems_in_natural_order(tmp_path):
    stems = [f"frame{i}" for i in range(1, 11)]  # keyframes frame1 and frame10
    for stem in stems:
        wrong = stem in ("frame5", "frame6")  # 4 frames from either keyframe
        write_ids(tmp_path / "gt", stem, halves())
        write_ids(tmp_path / "pred", stem, halves(left=1, right=0) if wrong else halves())
    for stem in ("frame1", "frame10"):
        write_ids(tmp_path / "keys", stem, halves())
    report = evaluate(tmp_path / "pred", tmp_path / "gt", keyframes_dir=tmp_path / "keys")
    assert report["by_distance"] == {"1": 100, "2": 100, "3": 100, "4": 0}
    assert report["frames_by_distance"] == {"1": 2, "2": 2, "3": 2, "4": 2}
    assert report["score"] == pytest.approx(100 * 6 / 10)


def test_manifest_beside_the_labels_gives_keyframes_and_distances(tmp_path):
    out = tmp_path / "out"
    frames = [{"stem": "a", "keyframe": True, "distance": 0}, {"stem": "b", "keyframe": False, "distance": 1},
              {"stem": "c", "keyframe": False, "distance": 2}]
    for frame in frames:
        write_ids(tmp_path / "gt", frame["stem"], halves())
        write_ids(out / "labels", frame["stem"], halves(left=1, right=0) if frame["stem"] in "ac" else halves())
    (out / "manifest.json").write_text(json.dumps({"frames": frames}))
    report = evaluate(out / "labels", tmp_path / "gt")
    assert report["frames_scored"] == 2
    assert report["by_distance"] == {"1": 100, "2": 0}


def test_ground_truth_without_prediction_is_an_error_naming_the_file(tmp_path):
    for stem in ("0001", "0002"):
        write_ids(tmp_path / "gt", stem, halves())
    write_ids(tmp_path / "pred", "0001", halves())
    with pytest.raises(InputError, match="0002.png") as error:
        evaluate(tmp_path / "pred", tmp_path / "gt")
    assert "\n" not in str(error.value)


def test_size_mismatch_is_an_error_naming_the_prediction(tmp_path):
    write_ids(tmp_path / "gt", "0001", halves())
    write_ids(tmp_path / "pred", "0001", halves(width=10))
    with pytest.raises(InputError) as error:
        evaluate(tmp_path / "pred", tmp_path / "gt")
    assert error.value.path.endswith("0001.png") and "pred" in error.value.path


def test_predictions_without_ground_truth_are_skipped_and_counted(tmp_path):
    write_ids(tmp_path / "gt", "0001", halves())
    for stem in ("0001", "0002", "0003"):
        write_ids(tmp_path / "pred", stem, halves())
    report = evaluate(tmp_path / "pred", tmp_path / "gt")
    assert report["skipped_predictions"] == 2 and report["frames_scored"] == 1


def test_report_tables_render(tmp_path):
    for stem in ("1", "2", "3"):
        write_ids(tmp_path / "gt", stem, halves())
        write_ids(tmp_path / "pred", stem, halves())
        write_ids(tmp_path / "conf", stem, np.full((8, 8), 204))
    write_ids(tmp_path / "keys", "1", halves())
    report = evaluate(tmp_path / "pred", tmp_path / "gt", keyframes_dir=tmp_path / "keys",
                      confidence_dir=tmp_path / "conf")
    tables = report_table(report)
    assert len(tables) == 4
    console = Console(record=True, width=100)
    for table in tables:
        console.print(table)
    text = console.export_text()
    assert "mIoU" in text and "0.8–0.9" in text
