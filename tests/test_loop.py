"""The labeling loop: `autolabel suggest` (which frames to label) and `autolabel review` (what came out)."""
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from autolabel.io.output import run_clip
from autolabel.loop.review.draw import worst_region
from autolabel.loop.review.palette import ClassColors
from autolabel.loop.suggest import EVIDENCE, PLACEMENT_COST, ClipScan, add_keyframes, choose_keyframes, place_keyframes
from autolabel.synth import make_clip

from conftest import run_cli

LABEL_KINDS = ("palette", "ids", "binary", "rgb")


def _stems_printed(output):
    return [line for line in output.splitlines() if line.strip()]


# ---------------------------------------------------------------- suggest: placement

def test_constant_costs_give_the_centred_placement():
    positions = np.arange(93, dtype=float)           # ends weigh like the rest: plain 1-D k-median
    assert place_keyframes(positions, 3, one_sided=1.0) == [15, 46, 77]   # int((i + 0.5) * 93 / 3)


def test_keyframes_move_towards_where_reliability_runs_out():
    deformation = np.zeros(89)
    deformation[60:75] = 0.5        # a hard stretch late in the clip: bodies bending, flow torn
    scan = ClipScan(np.zeros(89), np.zeros(89), deformation)
    plan = place_keyframes(scan.positions(), 3, one_sided=1.5)
    even = place_keyframes(np.arange(90, dtype=float), 3, one_sided=1.5)
    assert even[0] < 15 and even[2] > 75               # one-sided ends count more: outer keyframes move out
    assert plan[1] >= even[1] + 3 and plan[2] - plan[1] < even[2] - even[1]   # closing in on the hard stretch


def test_without_content_to_go_on_suggest_keeps_the_centred_placement():
    # a 49-frame clip of even content: the end-weighted model alone would place 9 and 38 (what cost
    # an unseen clip of a running dog 12.8 J against centred's 12 and 36)
    even = ClipScan(np.zeros(48), np.zeros(48), np.zeros(48))
    assert place_keyframes(even.positions(), 2, one_sided=1.5) == [9, 38]
    assert choose_keyframes(even, 2) == ([12, 36], 0.0)


def test_clear_content_moves_the_keyframes_off_the_centres():
    deformation = np.zeros(89)
    deformation[60:75] = 0.5
    scan = ClipScan(np.zeros(89), np.zeros(89), deformation)
    plan, evidence = choose_keyframes(scan, 3)
    assert evidence >= EVIDENCE and plan == place_keyframes(scan.positions(PLACEMENT_COST), 3) != [15, 45, 75]
    assert choose_keyframes(scan, 3, evidence=evidence + 1e-6)[0] == [15, 45, 75]   # weaker: centred


def test_fixed_keyframes_are_kept():
    positions = np.arange(60, dtype=float)
    plan = place_keyframes(positions, 4, fixed=(0, 30))
    assert {0, 30} <= set(plan) and len(set(plan)) == 4


def test_add_goes_where_the_propagation_is_least_sure():
    positions = np.arange(61, dtype=float)
    uncertainty = np.minimum(np.abs(np.arange(61) - 0), np.abs(np.arange(61) - 30)) * 0.001
    uncertainty[40:55] += 0.05       # the propagation doubts this stretch
    picks = add_keyframes(positions, uncertainty, [0, 30], 1)
    assert len(picks) == 1 and 40 <= picks[0][0] <= 55 and picks[0][1] > 0


# ---------------------------------------------------------------- suggest: the command

def test_suggest_prints_existing_unique_stems_in_order(small_clip):
    code, output = run_cli("suggest", "--video", small_clip / "frames", "--budget", 4, "-q")
    assert code == 0, output
    stems = _stems_printed(output)
    frames = [p.stem for p in sorted((small_clip / "frames").iterdir())]
    assert len(stems) == 4 and len(set(stems)) == 4
    assert set(stems) <= set(frames) and stems == sorted(stems, key=frames.index)


def test_suggest_add_keeps_the_keyframes_and_adds_new_ones(small_clip, tmp_path):
    keyframes = {p.stem for p in (small_clip / "keyframes").iterdir()}
    code, output = run_cli("suggest", "-v", small_clip / "frames", "-k", small_clip / "keyframes", "--add", 3,
                           "--json", "-q")
    assert code == 0, output
    result = json.loads(output)
    stems = [frame["stem"] for frame in result["suggested"]]
    assert len(set(stems)) == 3 and not set(stems) & keyframes
    assert set(stems) <= {p.stem for p in (small_clip / "frames").iterdir()}
    assert {"motion", "occlusion", "reliability", "gain"} <= set(result["suggested"][0])
    # from a propagation output folder: the same frames, without propagating again
    run_clip(small_clip / "frames", small_clip / "keyframes", tmp_path / "out")
    code, output = run_cli("suggest", "-v", small_clip / "frames", "--from", tmp_path / "out", "--add", 3, "-q")
    assert code == 0, output
    assert _stems_printed(output) == stems


@pytest.mark.parametrize("budget", [0, 17, -1])
def test_suggest_budget_out_of_bounds_is_one_error_line(small_clip, budget):
    code, output = run_cli("suggest", "-v", small_clip / "frames", "--budget", budget)
    assert code == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--budget must be between 1 and 16" in lines[0]


def test_suggest_needs_budget_or_add(small_clip):
    code, output = run_cli("suggest", "-v", small_clip / "frames")
    assert code == 2 and output.startswith("error: ") and len(output.strip().splitlines()) == 1
    code, output = run_cli("suggest", "-v", small_clip / "frames", "--add", 2)
    assert code == 2 and "--keyframes" in output


def test_suggest_flow_cache_is_reused_by_propagate(small_clip, tmp_path):
    cache = tmp_path / "cache"
    assert run_cli("suggest", "-v", small_clip / "frames", "-n", 3, "--flow-cache", cache, "-q")[0] == 0
    entries = sorted(cache.rglob("*.npy"))
    assert len(entries) == 15                     # one per pair of neighbouring frames
    inodes = [p.stat().st_ino for p in entries]  # a rewrite replaces the file; a hit only touches it
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes",
                           "-o", tmp_path / "out", "--flow-cache", cache, "-q")
    assert code == 0, output
    assert sorted(cache.rglob("*.npy")) == entries and [p.stat().st_ino for p in entries] == inodes
    uncached = tmp_path / "uncached"
    assert run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes", "-o", uncached,
                   "-q")[0] == 0
    for path in (tmp_path / "out" / "labels").iterdir():
        assert path.read_bytes() == (uncached / "labels" / path.name).read_bytes()


# ---------------------------------------------------------------- review

def _clip_in_format(root, kind):
    """A 14-frame clip whose labels (all of them: keyframes and ground truth) are in `kind`."""
    clip = make_clip(n_frames=14, height=48, width=64, n_objects=3, seed=5)
    (root / "frames").mkdir(parents=True)
    (root / "gt").mkdir()
    (root / "keys").mkdir()
    colors = np.array([(10, 20, 30), (200, 0, 0), (0, 200, 0), (0, 0, 200)], np.uint8)
    for index, (frame, ids) in enumerate(zip(clip.frames, clip.labels)):
        Image.fromarray(frame).save(root / "frames" / f"{index:05d}.png")
        if kind == "palette":
            image = Image.fromarray(ids.astype(np.uint8), "L")
            image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * 756)
        elif kind == "ids":      # Cityscapes labelIds: road, building, vegetation, sky, car
            image = Image.fromarray(np.array([7, 11, 21, 23, 26], np.uint8)[np.minimum(ids, 4)], "L")
        elif kind == "binary":
            image = Image.fromarray((ids > 0).astype(np.uint8) * 255, "L")
        else:
            image = Image.fromarray(colors[np.minimum(ids, 3)], "RGB")
        image.save(root / "gt" / f"{index:05d}.png")
        if index % 6 == 0:
            image.save(root / "keys" / f"{index:05d}.png")
    run_clip(root / "frames", root / "keys", root / "out")
    return root


@pytest.mark.parametrize("kind", LABEL_KINDS)
def test_review_writes_its_pictures_for_every_format(tmp_path, kind):
    root = _clip_in_format(tmp_path, kind)
    code, output = run_cli("review", root / "out", "--gt", root / "gt", "-q")
    assert code == 0, output
    review = root / "out" / "review"
    assert sorted(p.name for p in review.iterdir()) == ["contact-sheet.png", "overlay.mp4", "review.json",
                                                        "timeline.png"]
    capture = cv2.VideoCapture(str(review / "overlay.mp4"))
    decoded = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        decoded += 1
        assert frame.shape[:2] == (48, 64)
    capture.release()
    assert decoded == 14
    for name in ("contact-sheet.png", "timeline.png"):
        with Image.open(review / name) as image:
            assert image.mode == "RGB" and image.width > 400
    summary = json.loads((review / "review.json").read_text())
    assert summary["lowest_score"] and summary["lowest_expected_score"]
    assert not {"00000", "00006", "00012"} & set(summary["lowest_expected_score"])   # keyframes are not "worst"
    assert len(summary["per_frame"]) == 14


def test_review_colours_every_class_distinctly():
    from autolabel.io.labels import LabelFormat

    ids = list(range(30))                        # a 30-class id map that looks black on disk
    colors = ClassColors.for_labels(LabelFormat("ids", ignore_index=255), ids + [255])
    painted = colors.colors[colors.painted]
    assert len(painted) == 30 and len({tuple(c) for c in painted}) == 30
    assert all(int(c.max()) - int(c.min()) > 20 or c.max() > 90 for c in painted)   # no near-black greys
    binary = ClassColors.for_labels(LabelFormat("binary"), [0, 255])
    assert binary.painted.tolist() == [False, True]


def test_review_names_from_a_csv_appear_in_the_legend(tmp_path):
    root = _clip_in_format(tmp_path, "binary")
    names = tmp_path / "names.csv"
    names.write_text("id,name\n0,background\n255,camel\n")
    assert run_cli("review", root / "out", "--names", names, "-q")[0] == 0
    assert run_cli("review", root / "out", "--names", names, "-q")[0] == 2     # review/ exists: refused
    names.write_text("id\n3\n")
    code, output = run_cli("review", root / "out", "--names", names, "--overwrite", "-q")
    assert code == 2 and output.startswith("error: ") and "names.csv" in output


def test_review_is_byte_identical_across_runs(tmp_path):
    root = _clip_in_format(tmp_path, "palette")
    assert run_cli("review", root / "out", "-q")[0] == 0
    first = {p.name: p.read_bytes() for p in (root / "out" / "review").iterdir()}
    assert run_cli("review", root / "out", "-q", "--overwrite")[0] == 0
    assert first == {p.name: p.read_bytes() for p in (root / "out" / "review").iterdir()}


def test_worst_region_boxes_the_densest_errors():
    mask = np.zeros((120, 240), bool)
    mask[::7, ::9] = True                       # scattered noise
    mask[70:100, 180:220] = True                # the wrong region
    x0, y0, x1, y1 = worst_region(mask)
    assert x0 <= 185 and x1 >= 215 and y0 <= 75 and y1 >= 95


def test_cityscapes_label_ids_get_cityscapes_names_and_colours(tmp_path):
    from autolabel.io.labels import LabelFormat
    from autolabel.loop.review.run import _class_names

    fmt = LabelFormat("ids", ignore_index=255)
    ids = {7, 8, 11, 21, 23, 24, 26, 255}
    names = _class_names(None, None, fmt, ids, {})
    assert names[7] == "road" and names[26] == "car"
    colors = ClassColors.for_labels(fmt, ids, cityscapes=True)
    assert tuple(colors.colors[colors.index(np.array([7]))][0]) == (128, 64, 128)
    assert _class_names(None, None, fmt, {1, 2, 3}, {}) is None            # plain ids: no names invented
    (tmp_path / "keys").mkdir()
    (tmp_path / "names.csv").write_text("1,cat\n2,dog\n")
    assert _class_names(None, tmp_path / "keys", fmt, {1, 2}, {}) == {1: "cat", 2: "dog"}   # beside the keyframes


def test_demo_writes_scores_and_reviews_its_worst_frames(tmp_path):
    from autolabel.demo import run_demo

    report = run_demo(tmp_path / "demo", keyframe_every=10, n_frames=20)
    scores = json.loads((tmp_path / "demo" / "scores.json").read_text())
    assert scores["score"] == report["score"] and scores["metric"] == "J"
    review = tmp_path / "demo" / "result" / "review"
    summary = json.loads((review / "review.json").read_text())
    worst = min((f for f in summary["per_frame"] if f["score"] is not None), key=lambda f: f["score"])
    assert summary["lowest_score"][0] == worst["stem"]          # the sheet starts with the worst frame
    assert (review / "contact-sheet.png").is_file() and not (tmp_path / "demo" / "preview.png").exists()


def test_bench_baseline_takes_the_midpoints_of_the_longest_gaps():
    from autolabel.loop.suggest_bench import centred, gap_midpoints

    assert gap_midpoints(90, [0, 30, 60], 3) == [15, 45, 75]     # the end gap is closed by the clip's end
    assert gap_midpoints(80, [0, 30, 60], 3) == [15, 45, 70]
    assert gap_midpoints(30, [0], 3) == [7, 15, 22]              # fewer gaps than frames: split again
    assert centred(90, 3) == [15, 45, 75]
