"""`evaluate --protocol`: Cityscapes against cityscapesScripts itself, DAVIS against numbers worked out by
hand with the official definitions (davis2017-evaluation is not a package; the note issue9.md compares
it on real clips), several ignore ids, class names, classes that no keyframe holds."""
import copy
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from autolabel.cli import app
from autolabel.io.classnames import CITYSCAPES_EVALUATED, CITYSCAPES_LABELS
from autolabel.evaluation.evaluate import evaluate
from autolabel.interop.export import export
from autolabel.evaluation.protocols import davis_statistics


def save(path, ids, palette=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.asarray(ids, np.uint8), mode="L")
    if palette:
        image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (768 - 9))
    image.save(path)


def test_cityscapes_table_is_cityscapesscripts_own():
    pytest.importorskip("cityscapesscripts", reason="the interop extra: pip install -e '.[interop]'")
    from cityscapesscripts.helpers.labels import labels

    theirs = {(label.id, label.name, label.trainId, label.ignoreInEval, label.color)
              for label in labels if label.id >= 0}
    assert theirs == {tuple(label) for label in CITYSCAPES_LABELS}
    assert len(CITYSCAPES_EVALUATED) == 19


def cityscapes_case(root, n_frames=6, seed=0):
    """Labels with ego vehicle (1) at the bottom, other ignored ids about, and noisy predictions that also
    predict ignored ids; predictions named like our labels (…_leftImg8bit), ground truth like gtFine."""
    rng = np.random.default_rng(seed)
    ids = np.array([0, 4, 7, 8, 11, 17, 21, 23, 24, 26, 9, 14])
    for frame in range(n_frames):
        gt = ids[rng.integers(0, len(ids), (6, 8))].repeat(8, 0).repeat(8, 1).astype(np.uint8)
        gt[-10:] = 1                                    # ego vehicle, as real gtFine has it
        pred = gt.copy()
        flip = rng.random(gt.shape) < 0.25
        pred[flip] = ids[rng.integers(0, len(ids), flip.sum())]
        stem = f"ulm_000042_{frame:06d}"
        save(root / "gt" / f"{stem}_gtFine_labelIds.png", gt)
        save(root / "gt" / f"{stem}_gtFine_instanceIds.png", gt)   # a real gtFine folder has these too
        Image.fromarray(np.stack([gt] * 3, axis=2)).save(root / "gt" / f"{stem}_gtFine_color.png")
        save(root / "out" / "ulm_000042" / "labels" / f"{stem}_leftImg8bit.png", pred)
    manifest = {"settings": {"label_format": "ids", "ignore_index": 255}, "class_ids": ids.tolist(),
                "frames": [{"stem": f"ulm_000042_{frame:06d}_leftImg8bit"} for frame in range(n_frames)]}
    (root / "out" / "ulm_000042" / "manifest.json").write_text(json.dumps(manifest))
    return root


def official_cityscapes_miou(results_dir, gt_files):
    """cityscapesScripts' pixel-level evaluation, finding each prediction in results_dir as it does for
    CITYSCAPES_RESULTS. Instance-level scores are off: they need gtFine instanceIds files, are not mIoU,
    and use np.in1d, which numpy 2.4 removed (cityscapesScripts 2.3.0 still calls it)."""
    pytest.importorskip("cityscapesscripts", reason="the interop extra: pip install -e '.[interop]'")
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    args = copy.copy(official.args)
    args.predictionPath, args.predictionWalk = str(results_dir), None
    args.evalInstLevelScore, args.JSONOutput, args.quiet = False, False, True
    predictions = [official.getPrediction(args, str(path)) for path in gt_files]
    return 100 * official.evaluateImgLists(predictions, [str(path) for path in gt_files], args)["averageScoreClasses"]


def test_cityscapes_protocol_equals_cityscapesscripts_with_ignored_ids_and_a_keyframe(tmp_path):
    root = cityscapes_case(tmp_path)
    keyframes = tmp_path / "keys"
    save(keyframes / "ulm_000042_000002_leftImg8bit.png", np.zeros((48, 64)))
    export(root / "out", root / "results", "cityscapes")
    gt_files = sorted((root / "gt").glob("*_gtFine_labelIds.png"))
    scored = [path for path in gt_files if "_000002_" not in path.name]
    official = official_cityscapes_miou(root / "results", scored)

    ours = evaluate(root / "out" / "ulm_000042" / "labels", root / "gt", protocol="cityscapes", keyframes_dir=keyframes)
    assert ours["keyframes_excluded"] == 1 and ours["frames_scored"] == 5
    assert abs(ours["mIoU"] - official) < 0.01 and ours["headline"] == {"name": "mIoU", "value": ours["mIoU"]}
    assert set(ours["per_class"]) <= {str(i) for i in CITYSCAPES_EVALUATED} and "1" not in ours["per_class"]
    assert ours["class_names"]["26"] == "car"
    from_export = evaluate(root / "results", root / "gt", protocol="cityscapes", keyframes_dir=keyframes)
    assert from_export["mIoU"] == ours["mIoU"]
    plain = evaluate(root / "out" / "ulm_000042" / "labels", root / "gt", keyframes_dir=keyframes)
    assert "1" in plain["per_class"] and plain["score"] < official - 5   # ego vehicle as a class: the bug


def test_cityscapes_protocol_in_the_cli_names_its_headline_and_classes(tmp_path):
    root = cityscapes_case(tmp_path, n_frames=3)
    args = ["evaluate", "-p", root / "out" / "ulm_000042" / "labels", "-g", root / "gt", "--protocol", "cityscapes"]
    table = CliRunner().invoke(app, [*map(str, args)])
    assert table.exit_code == 0 and "mIoU (%), the headline" in table.output and "traffic" not in table.output
    assert "vegetation" in table.output and "ego vehicle" not in table.output
    report = json.loads(CliRunner().invoke(app, [*map(str, args), "--json"]).output)
    assert report["protocol"] == "cityscapes" and report["mIoU"] == report["headline"]["value"]


def test_several_ignore_ids_leave_those_pixels_out(tmp_path):
    gt = np.array([[0, 1, 2, 3]] * 4)
    pred = np.array([[5, 5, 2, 2]] * 4)
    save(tmp_path / "gt" / "a.png", gt)
    save(tmp_path / "pred" / "a.png", pred)
    result = CliRunner().invoke(app, ["evaluate", "-p", str(tmp_path / "pred"), "-g", str(tmp_path / "gt"),
                                      "--ignore-index", "0,1", "--ignore-index", "255", "--json"])
    report = json.loads(result.output)
    assert report["per_class"] == {"2": 50.0, "3": 0.0} and report["score"] == 25.0
    bad = CliRunner().invoke(app, ["evaluate", "-p", str(tmp_path / "pred"), "-g", str(tmp_path / "gt"),
                                   "--ignore-index", "x"])
    assert bad.exit_code == 2 and bad.output.startswith("error: --ignore-index")


def test_classes_in_no_keyframe_are_named_and_cap_the_score(tmp_path):
    gt = np.array([[7, 8, 26, 26]] * 4)
    save(tmp_path / "gt" / "aachen_000001_000005_gtFine_labelIds.png", gt)
    save(tmp_path / "pred" / "aachen_000001_000005_leftImg8bit.png", np.array([[7, 8, 8, 8]] * 4))
    save(tmp_path / "keys" / "aachen_000001_000000_leftImg8bit.png", np.array([[7, 8, 8, 7]] * 4))
    report = evaluate(tmp_path / "pred", tmp_path / "gt", keyframes_dir=tmp_path / "keys")
    assert report["not_in_keyframes"] == [26] and report["max_reachable"] == pytest.approx(200 / 3)
    assert report["class_names"] == {"7": "road", "8": "sidewalk", "26": "car"}
    names = tmp_path / "names.csv"
    names.write_text("id,name\n7,asphalt\n")
    assert evaluate(tmp_path / "pred", tmp_path / "gt", names=names)["class_names"] == {"7": "asphalt"}


def test_davis_statistics_are_the_official_ones_on_a_short_window():
    # window of 3: bin edges round(linspace(1, 3, 5) + 1e-10) - 1 = [0, 1, 1, 2, 2], so the first bin is
    # values[0:2] and the last values[2:3]: Decay = mean(v0, v1) - v2
    assert davis_statistics([1.0, 0.5, 0.0]) == (0.5, pytest.approx(1 / 3), 0.75)


def square(top, left, size=10, shape=(100, 100), value=1):
    ids = np.zeros(shape, np.uint8)
    ids[top:top + size, left:left + size] = value
    return ids


def test_davis_protocol_by_hand(tmp_path):
    """5 frames, 2 objects; scored: frames 1-3 (not the first and last, keyframes or not).

    object 1: frame 1 exact (J 1, F 1); frame 2 shifted 1 px (J 90/110, F 1: within the
    ceil(0.008 * 141.4) = 2 px tolerance); frame 3 missed (J 0, F 0).
    object 2: exact in every frame (J 1, F 1). Frames 0 and 4 are wrong and do not count.
    """
    for frame in range(5):
        gt = square(20, 20) + square(60, 60, value=2)
        pred = {1: gt, 2: square(20, 21) + square(60, 60, value=2), 3: square(60, 60, value=2)}.get(frame, gt * 0)
        save(tmp_path / "gt" / f"{frame:05d}.png", gt, palette=True)
        save(tmp_path / "pred" / f"{frame:05d}.png", pred, palette=True)
    report = evaluate(tmp_path / "pred", tmp_path / "gt", protocol="davis")
    j1, f1 = (1 + 9 / 11 + 0) / 3, 2 / 3
    assert report["frames_scored"] == 3 and report["objects"] == 2
    assert report["per_object"]["1"]["J-Mean"] == pytest.approx(100 * j1)
    assert report["per_object"]["1"]["F-Mean"] == pytest.approx(100 * f1)
    assert report["per_object"]["1"]["J-Recall"] == pytest.approx(100 * 2 / 3)
    assert report["per_object"]["1"]["J-Decay"] == pytest.approx(100 * ((1 + 9 / 11) / 2 - 0))
    assert report["J-Mean"] == pytest.approx(100 * (j1 + 1) / 2)
    assert report["F-Mean"] == pytest.approx(100 * (f1 + 1) / 2)
    assert report["J&F-Mean"] == pytest.approx(100 * ((j1 + 1) / 2 + (f1 + 1) / 2) / 2)
    assert report["headline"] == {"name": "J&F-Mean", "value": report["J&F-Mean"]}
    table = CliRunner().invoke(app, ["evaluate", "-p", str(tmp_path / "pred"), "-g", str(tmp_path / "gt"),
                                     "--protocol", "davis"])
    assert table.exit_code == 0 and "J&F-Mean (%), the headline" in table.output
    assert f"{report['J&F-Mean']:.2f}" in table.output and "00001 … 00003" in table.output


def test_davis_protocol_reads_binary_ground_truth_as_object_1_and_our_binary_or_exported_output(tmp_path):
    for frame in range(4):
        save(tmp_path / "gt" / f"{frame:05d}.png", square(10, 10, value=255))
        save(tmp_path / "ours" / f"{frame:05d}.png", square(10, 12 if frame == 2 else 10, value=255))
        save(tmp_path / "export" / f"{frame:05d}.png", square(10, 12 if frame == 2 else 10), palette=True)
    ours = evaluate(tmp_path / "ours", tmp_path / "gt", protocol="davis")
    exported = evaluate(tmp_path / "export", tmp_path / "gt", protocol="davis")
    assert ours["objects"] == 1 and ours["J-Mean"] == exported["J-Mean"] == pytest.approx(100 * (1 + 80 / 120) / 2)
