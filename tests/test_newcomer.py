"""The second newcomer pass (issue 16): errors that name the right culprit, commands that use what
the manifest knows, review's pictures, install housekeeping."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from autolabel.cli import app

from conftest import run_cli


def _boom(*args, **kwargs):
    raise ValueError("cannot reshape array of size 6 into shape (2,2)")


# ---- item 2: only InputError is bad input; our bugs say so, exit 1, --debug shows the traceback ----

def test_a_bug_is_an_internal_error_not_bad_input(small_clip, tmp_path, monkeypatch):
    import autolabel.io.output

    monkeypatch.setattr(autolabel.io.output, "run_clip", _boom)
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes",
                           "-o", tmp_path / "out", "-q")
    assert code == 1, output
    assert output.strip() == ("internal error: ValueError: cannot reshape array of size 6 into shape (2,2); "
                              "rerun with --debug for the traceback"), output
    assert "Traceback" not in output


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_shows_the_traceback(small_clip, tmp_path, monkeypatch, how):
    import autolabel.io.output

    monkeypatch.setattr(autolabel.io.output, "run_clip", _boom)
    args = ["propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes", "-o", tmp_path / "out", "-q"]
    if how == "flag":
        code, output = run_cli("--debug", *args)
    else:
        result = CliRunner().invoke(app, [str(a) for a in args], env={"AUTOLABEL_DEBUG": "1"})
        code, output = result.exit_code, result.output
    assert code == 1 and output.startswith("internal error: ValueError: cannot reshape"), output
    assert "Traceback (most recent call last)" in output and "_boom" in output
    assert os.environ.get("AUTOLABEL_DEBUG") is None  # --debug does not outlive the command


def test_every_command_goes_through_the_same_path(tmp_path, monkeypatch):
    import autolabel.evaluation.evaluate

    monkeypatch.setattr(autolabel.evaluation.evaluate, "evaluate", _boom)
    code, output = run_cli("evaluate", "-p", tmp_path, "-g", tmp_path)
    assert code == 1 and output.startswith("internal error: ValueError"), output


def test_a_batch_workers_bug_is_worded_as_an_internal_error(tmp_path, monkeypatch):
    from autolabel.synth import make_clip, write_clip
    import autolabel.datasets.batch

    write_clip(make_clip(n_frames=4, height=32, width=48, seed=1), tmp_path / "data" / "clip0")
    monkeypatch.setattr(autolabel.datasets.batch, "run_clip", _boom)
    code, output = run_cli("batch", tmp_path / "data", "-o", tmp_path / "out", "-q")
    assert code == 1, output
    line = json.loads((tmp_path / "out" / "batch-report.jsonl").read_text())
    assert line["error"] == ("internal error: ValueError: cannot reshape array of size 6 into shape (2,2); "
                             "rerun with --debug for the traceback")
    code, output = run_cli("--debug", "batch", tmp_path / "data", "-o", tmp_path / "out2", "-q")
    line = json.loads((tmp_path / "out2" / "batch-report.jsonl").read_text())
    assert code == 1 and "Traceback (most recent call last)" in line["error"], line


def test_bad_input_is_still_one_line_and_exit_2(tmp_path):
    code, output = run_cli("propagate", "-v", tmp_path / "nope", "-k", tmp_path, "-o", tmp_path / "out")
    assert code == 2 and output.startswith("error: ") and "internal" not in output, output


# ---- item 14: `autolabel` alone prints the help and succeeds -------------------------------------

def test_bare_autolabel_prints_help_and_exits_0():
    code, output = run_cli()
    assert code == 0 and "Usage: " in output and "propagate" in output, output


# ---- item 1: anti-aliased colour labels are named as such; unknown colours name the keyframe --------

COLOURS = np.array([[0, 0, 0], [200, 0, 0], [0, 128, 64], [40, 60, 220]], np.uint8)


def _rgb_clip(small_clip, tmp_path, smooth: bool):
    """small_clip's keyframes as RGB colour codes, optionally smoothed the way a bilinear resize does."""
    keys = tmp_path / "rgb-keys"
    keys.mkdir()
    for path in sorted((small_clip / "keyframes").iterdir()):
        ids = np.asarray(Image.open(path)).astype(int) % len(COLOURS)
        image = Image.fromarray(COLOURS[ids])
        if smooth:
            image = image.resize((image.width * 4, image.height * 4), Image.BILINEAR).resize(image.size,
                                                                                               Image.BICUBIC)
        image.save(keys / path.name)
    return keys


def test_antialiased_colour_labels_are_refused_in_one_line_before_any_work(small_clip, tmp_path):
    keys = _rgb_clip(small_clip, tmp_path, smooth=True)
    out = tmp_path / "out"
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", keys, "-o", out, "-q")
    assert code == 2, output
    assert output.count("\n") == 1 and output.startswith(f"error: {keys / '00000.png'}: RGB colour-coded label "
                                                         "with "), output
    assert "almost certainly anti-aliased" in output and "--color-table" in output
    assert not out.exists()


def test_exact_colour_labels_with_many_colours_are_not_taken_for_antialiased(tmp_path):
    from autolabel.io.labels import detect_format

    rng = np.random.default_rng(0)
    ids = np.zeros((120, 160), int)
    for i in range(300):  # 300 instances, each a block with an inside
        y, x = rng.integers(0, 114), rng.integers(0, 154)
        ids[y:y + 6, x:x + 6] = i + 1
    colours = rng.integers(0, 256, (301, 3)).astype(np.uint8)
    Image.fromarray(colours[ids]).save(tmp_path / "0.png")
    fmt = detect_format([tmp_path / "0.png"])
    assert fmt.kind == "rgb" and len(fmt.colors) == len(np.unique(ids))


def test_a_colour_not_in_the_table_names_the_keyframe_and_the_pixel(small_clip, tmp_path):
    keys = _rgb_clip(small_clip, tmp_path, smooth=False)
    table = tmp_path / "table.csv"
    table.write_text("id,r,g,b\n" + "".join(f"{i},{r},{g},{b}\n" for i, (r, g, b) in enumerate(COLOURS[:2])))
    first = next(path for path in sorted(keys.iterdir())
                 if (np.asarray(Image.open(path)) == COLOURS[2]).all(axis=2).any())
    y, x = np.argwhere((np.asarray(Image.open(first)) == COLOURS[2]).all(axis=2))[0]
    out = tmp_path / "out"
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", keys, "-o", out, "--color-table", table)
    assert code == 2 and not out.exists(), output
    assert output.startswith(f"error: {first}: colour (0, 128, 64) at x={x}, y={y} is not in the colour table "
                             "table.csv"), output


# ---- items 4, 5: evaluate uses the manifest's ignore id and confidence, matches frames by number ----

@pytest.fixture(scope="module")
def ignoring_one(small_clip, tmp_path_factory):
    """small_clip propagated with object 1 as the ignore id (as CamVid's void would be)."""
    out = tmp_path_factory.mktemp("ignore") / "out"
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes", "-o", out,
                           "--ignore-index", "1", "--no-refine", "-q")
    assert code == 0, output
    return out


def test_evaluate_takes_the_ignore_id_and_confidence_from_the_manifest(small_clip, ignoring_one):
    from autolabel.evaluation.evaluate import evaluate

    report = evaluate(ignoring_one / "labels", small_clip / "labels")
    assert "1" not in {str(i) for i in report["per_class"]}, report["per_class"]
    assert f"ignore id 1: from {ignoring_one.resolve() / 'manifest.json'} (--ignore-index overrides it)" \
        in report["notes"]
    assert report["ece"] is not None and any("confidence:" in note for note in report["notes"])
    given = evaluate(ignoring_one / "labels", small_clip / "labels", ignore_index=[255])
    assert "1" in {str(i) for i in given["per_class"]}
    code, output = run_cli("evaluate", "-p", ignoring_one / "labels", "-g", small_clip / "labels")
    assert code == 0 and "ignore id 1: from" in output, output


def test_evaluate_matches_ground_truth_to_predictions_by_frame_number(small_clip, ignoring_one, tmp_path):
    from autolabel.evaluation.evaluate import evaluate

    pred = tmp_path / "video-out" / "labels"   # as from a video file: 000000.png, …
    pred.mkdir(parents=True)
    for path in (ignoring_one / "labels").iterdir():
        shutil.copy(path, pred / f"{int(path.stem):06d}.png")
    report = evaluate(pred, small_clip / "labels", keyframes_dir=small_clip / "keyframes", ignore_index=[1])
    direct = evaluate(ignoring_one / "labels", small_clip / "labels", ignore_index=[1])
    assert report["score"] == direct["score"] and report["frames_scored"] == direct["frames_scored"]
    assert "16 ground-truth files matched to predictions by frame number (leading zeros aside)" in report["notes"]


# ---- item 6: one list of name sets; review finds the names the manifest recorded -----------------

def test_review_takes_the_builtin_names_evaluate_takes(ignoring_one):
    code, output = run_cli("review", ignoring_one, "--names", "camvid", "-q", "--overwrite")
    assert code == 0, output
    for command in ("review", "evaluate"):
        assert "cityscapes|camvid|CSV" in " ".join(run_cli(command, "--help")[1].split())


def test_review_finds_the_names_file_the_manifest_recorded(small_clip, tmp_path):
    from autolabel.io.labels import LabelFormat
    from autolabel.loop.review.run import _class_names

    keys = tmp_path / "labels-dir" / "keys"
    shutil.copytree(small_clip / "keyframes", keys)
    (keys / "names.csv").write_text("id,name\n1,café\n2,dog\n")
    out = tmp_path / "out"
    assert run_cli("propagate", "-v", small_clip / "frames", "-k", keys, "-o", out, "--no-refine", "-q")[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["keyframes_dir"] == str(keys) and manifest["names"] == str(keys / "names.csv")
    assert _class_names(None, None, LabelFormat("palette"), {0, 1, 2}, manifest) == {1: "café", 2: "dog"}


# ---- item 7: --overwrite takes what was made from the old results along ---------------------------

def test_overwrite_removes_the_old_review(small_clip, tmp_path):
    out = tmp_path / "out"
    args = ["propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes", "-o", out, "--no-refine", "-q"]
    assert run_cli(*args)[0] == 0
    assert run_cli("review", out, "-q")[0] == 0 and (out / "review").is_dir()
    assert run_cli(*args, "--overwrite")[0] == 0
    assert not (out / "review").exists()
    assert run_cli("review", out, "-q")[0] == 0  # no --overwrite needed for pictures of results now gone


# ---- items 9, 10, 11: review's pictures --------------------------------------------------------

def test_review_says_what_the_sheet_shows_and_ranks_by_expected_score(small_clip, ignoring_one, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(ignoring_one, out, ignore=shutil.ignore_patterns("review"))
    code, output = run_cli("review", out, "--gt", small_clip / "labels", "-n", "2", "-q")
    assert code == 0, output
    summary = json.loads((out / "review" / "review.json").read_text())
    assert summary["sections"] == ["lowest J: 2 frames, the worst frame of each dip (frames at least 4 apart)",
                                   "lowest expected J (from the confidence, without ground truth): 2 frames, the "
                                   "worst frame of each dip (frames at least 4 apart)"]
    expected = {frame["stem"]: frame["expected_score"] for frame in summary["per_frame"]}
    keyframes = set(summary["keyframes"])
    assert expected[summary["lowest_expected_score"][0]] == min(value for stem, value in expected.items()
                                                                if stem not in keyframes and value is not None)


def test_expected_score_is_the_confidence_weighted_iou_per_labeled_class():
    from autolabel.loop.review.run import expected_score

    label = np.array([[0, 0, 1, 1]])
    confidence = np.array([[1.0, 1.0, 1.0, 0.5]], np.float32)
    # object 1: S = 1.5 of 2 pixels -> 1.5 / (4 - 1.5) = 0.6; background is not an object
    assert expected_score(label, confidence, True, 255) == pytest.approx(0.6)
    # classes: background too (S = 2 of 2 -> 1.0), mean 0.8
    assert expected_score(label, confidence, False, 255) == pytest.approx(0.8)
    assert np.isnan(expected_score(np.zeros((2, 2), int), np.ones((2, 2), np.float32), True, 255))


def test_spearman_rank_correlation():
    from autolabel.loop.review.rank_bench import ranks, spearman

    assert list(ranks(np.array([3.0, 1.0, 2.0, 2.0]))) == [3.0, 0.0, 1.5, 1.5]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_missed_and_extra_pixels_differ_and_are_in_the_legend(tmp_path):
    from autolabel.io.labels import LabelFormat
    from autolabel.loop.review import draw
    from autolabel.loop.review.palette import ClassColors
    from autolabel.loop.review.sheet import contact_sheet

    truth = np.zeros((20, 20), int)
    truth[5:15, 5:15] = 1
    label = np.zeros((20, 20), int)
    label[8:18, 8:18] = 1
    missed, extra = draw.wrong_pixels(label, truth, object_format=True, ignore_index=255)
    assert missed.sum() == (truth.astype(bool) & ~label.astype(bool)).sum() and missed[5, 5] and not missed[17, 17]
    assert extra.sum() == (label.astype(bool) & ~truth.astype(bool)).sum() and extra[17, 17]
    picture = draw.errors(np.zeros((20, 20, 3), np.uint8), missed, extra)
    assert tuple(picture[5, 5]) == draw.MISSED and tuple(picture[17, 17]) == draw.EXTRA
    colors = ClassColors.for_labels(LabelFormat("palette", ignore_index=255), {0, 1})
    sheet = np.asarray(contact_sheet("t", [("h", [("c", [picture])])], ["x"], colors, None, {1},
                                     [(draw.MISSED, "missed"), (draw.EXTRA, "extra")]))
    legend = sheet[-120:]
    for colour in (draw.MISSED, draw.EXTRA):
        assert (legend == colour).all(axis=2).sum() >= 100, colour   # a swatch, not a stray pixel


def test_the_labels_column_uses_the_legend_colours():
    from autolabel.io.labels import LabelFormat
    from autolabel.loop.review import draw
    from autolabel.loop.review.palette import ClassColors

    colors = ClassColors.for_labels(LabelFormat("palette", ignore_index=255), {0, 1})
    label = np.zeros((10, 10), int)
    label[2:8, 2:8] = 1
    painted = draw.label_column(np.full((10, 10, 3), 90, np.uint8), label, colors, np.ones((10, 10)))
    swatch = tuple(int(c) for c in colors.colors[colors.index(np.array([1]))][0])
    assert tuple(painted[4, 4]) == swatch


def test_characters_no_font_draws_become_question_marks_and_are_reported():
    from autolabel.loop.review import fonts

    if fonts.font_file() is None:
        pytest.skip("no system font: Pillow's own font is used")
    fonts.missing()
    assert fonts.printable("café") == "café"          # DejaVu and the like have accents
    text = fonts.printable("\U000f0000 x")              # a private-use character no font draws
    assert text == "? x" and fonts.missing() == ["\U000f0000"]


def test_review_names_its_video_codec(ignoring_one, tmp_path):
    import cv2

    out = tmp_path / "out"
    shutil.copytree(ignoring_one, out, ignore=shutil.ignore_patterns("review"))
    code, output = run_cli("review", out)
    assert code == 0, output
    summary = json.loads((out / "review" / "review.json").read_text())
    capture = cv2.VideoCapture(str(out / "review" / "overlay.mp4"))
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    capture.release()
    codecs = {"avc1": "H.264", "h264": "H.264", "mp4v": "MPEG-4 Part 2", "FMP4": "MPEG-4 Part 2"}
    assert codecs[fourcc] == summary["video_codec"]
    assert f"overlay.mp4 ({summary['video_codec']})" in output


# ---- item 8: exports named after the video, --name, frames counted, DIR in the help, CVAT names -----

def test_export_names_a_single_clip_after_its_video_and_counts_frames(ignoring_one, small_clip, tmp_path):
    code, output = run_cli("export", ignoring_one, tmp_path / "d", "--to", "davis")
    assert code == 0, output
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["clip"]     # small_clip's video is clip/frames
    assert "wrote 16 frames of 1 clip (davis)" in output, output
    code, output = run_cli("export", ignoring_one, tmp_path / "c", "--to", "cvat", "--name", "dog", "-q")
    assert code == 0 and [p.name for p in (tmp_path / "c").iterdir()] == ["dog.zip"], output
    code, output = run_cli("export", ignoring_one, tmp_path / "x", "--to", "cvat", "--name", "a/b")
    assert code == 2 and "is not a plain file name" in output and not (tmp_path / "x").exists()
    assert "OUT DIR" in " ".join(run_cli("export", "--help")[1].split())


def test_cvat_export_names_classes_and_keeps_the_ignore_id_a_label(tmp_path):
    import zipfile

    from autolabel.io.labels import LabelFormat
    from autolabel.io.results import ClipResult
    from autolabel.interop.cvat import cvat_labels

    clip = ClipResult("c", tmp_path, {"class_ids": [0, 3, 8], "frames": [{"stem": "0001"}]})
    labels, numbers = cvat_labels(clip, LabelFormat("ids", ignore_index=11), "camvid")
    assert labels == ["background", "sky", "road", "car", "void"] and numbers[11] == 4
    labels, _ = cvat_labels(clip, LabelFormat("ids", ignore_index=11))
    assert labels == ["background", "class 0", "class 3", "class 8", "unlabeled 11"]


# ---- item 12: batch --check says which input or setting changed; its summary agrees with its table ----

def test_check_names_the_changed_file_or_setting_and_counts_missing_apart(tmp_path):
    from autolabel.synth import make_clip, write_clip

    data, out = tmp_path / "data", tmp_path / "out"
    for seed, name in enumerate(("clip0", "clip1")):
        write_clip(make_clip(n_frames=6, height=32, width=48, seed=seed), data / name)
    assert run_cli("batch", data, "-o", out, "--keyframe-every", "5", "--no-refine", "-q")[0] == 0

    def reasons(*extra):
        code, output = run_cli("batch", data, "-o", out, "--keyframe-every", "5", "--no-refine", "--check",
                               "--json", *extra)
        return code, {line["clip"]: line["reason"] for line in map(json.loads, output.splitlines())}

    code, found = reasons("--fusion", "distance")
    assert code == 1 and found["clip0"] == "setting fusion: reliability then, distance now", found
    frame = sorted((data / "clip1" / "frames").iterdir())[3]
    os.utime(frame, ns=(frame.stat().st_atime_ns, frame.stat().st_mtime_ns + 1_000_000))
    code, found = reasons()
    assert found == {"clip0": None, "clip1": f"frame {frame.name} changed (modification time)"}, found
    shutil.rmtree(out / "clip0")
    code, output = run_cli("batch", data, "-o", out, "--keyframe-every", "5", "--no-refine", "--check")
    assert output.splitlines()[-1] == "0 current, 1 stale, 1 missing (stale: clip1; missing: clip0)", output


# ---- item 13: black-and-white RGB keyframes come back as RGB -------------------------------------

def test_grey_rgb_keyframes_are_written_back_as_rgb(small_clip, tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    for path in sorted((small_clip / "keyframes").iterdir()):
        mask = np.where(np.asarray(Image.open(path)) == 1, 255, 0).astype(np.uint8)
        Image.fromarray(np.stack([mask] * 3, axis=2)).save(keys / path.name)
    out = tmp_path / "out"
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", keys, "-o", out, "--no-refine")
    assert code == 0 and "binary mask (0 background, 255 object), stored as grey RGB" in output, output
    for path in (out / "labels").iterdir():
        with Image.open(path) as image:
            assert image.mode == "RGB", path
            pixels = np.asarray(image)
        assert set(np.unique(pixels).tolist()) <= {0, 255} and (pixels[..., 0] == pixels[..., 2]).all()
    with Image.open(out / "labels" / "00000.png") as written, Image.open(keys / "00000.png") as given:
        assert np.array_equal(np.asarray(written), np.asarray(given))


# ---- item 3: a video cut short is refused in one line, or used with --accept-short-video -----------

def test_a_truncated_video_is_refused_unless_accepted(small_clip, tmp_path):
    import subprocess
    import sys

    import cv2

    writer = cv2.VideoWriter(str(tmp_path / "full.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for path in sorted((small_clip / "frames").iterdir()):
        writer.write(cv2.imread(str(path)))
    writer.release()
    data = (tmp_path / "full.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[:len(data) // 2])
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(small_clip / "keyframes" / "00000.png", keys / "000000.png")
    out = tmp_path / "out"
    # a real process: FFmpeg's own lines go to file descriptor 2, which CliRunner does not capture
    command = [sys.executable, "-m", "autolabel", "propagate", "-v", tmp_path / "cut.avi", "-k", keys, "-o", out,
               "--no-refine", "-q"]
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True)
    assert result.returncode == 2 and not out.exists(), result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'cut.avi'}: decodes to "), result.stderr
    assert "of the 16 frames its container lists (cut short or damaged); pass --accept-short-video" in lines[0]
    result = subprocess.run([str(c) for c in command] + ["--accept-short-video"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert 0 < manifest["n_frames"] < 16 and manifest["accept_short_video"] is True


# ---- item 14: the flow cache can be measured and pruned, least recently used first ---------------

def test_flow_cache_prunes_least_recently_used_entries(tmp_path):
    from autolabel.datasets.flowcache import FlowCache

    cache = FlowCache(tmp_path / "cache")
    grays = [np.full((30, 40), value, np.uint8) for value in range(4)]
    flow = np.zeros((30, 40, 2), np.float32)
    for a, b in zip(grays, grays[1:]):
        cache.save(a, b, "k", flow, flow)
    entry = cache.entries()[0][1]
    assert entry == 128 + 8 * 30 * 40           # .npy header + 8 bytes a pixel
    for age, (_, _, path) in enumerate(cache.entries()):
        os.utime(path, (1000 + age, 1000 + age))
    assert cache.load(grays[0], grays[1], "k") is not None   # a hit makes the oldest the most recent
    code, output = run_cli("flow-cache", tmp_path / "cache", "--max-size", str(2 * entry))
    assert code == 0 and "removed 1 least recently used" in output, output
    assert cache.load(grays[0], grays[1], "k") is not None and cache.load(grays[1], grays[2], "k") is None
    assert run_cli("flow-cache", tmp_path / "cache", "--max-size", "lots")[0] == 2
    code, output = run_cli("flow-cache", tmp_path / "cache")
    assert code == 0 and "2 entries (frame pairs)" in output, output
