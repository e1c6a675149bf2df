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
