"""What a new user meets first: --help, option checking, and the edges of bad input (issue 11)."""
import json
import os

import pytest
from typer.testing import CliRunner

from autolabel import __version__
from autolabel.cli import app

from conftest import run_cli

COMMANDS = ["propagate", "evaluate", "demo", "bench", "train", "batch"]


def _help(*args):
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "100"})
    return result.exit_code, result.output


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_reads_like_a_well_kept_cli(command):
    for flag in ("-h", "--help"):
        code, output = _help(*([command] if command else []), flag)
        assert code == 0 and "Usage: " in output, output
        for oddity in ("<bool>", "list[", "<str>", "{"):
            assert oddity not in output, (command, oddity, output)


def test_version_has_a_short_flag():
    assert _help("-V") == (0, f"autolabel {__version__}\n")


def test_choices_are_shown_as_choices():
    assert "--refine --no-refine" in " ".join(_help("propagate", "-h")[1].split())
    assert "<dis|farneback>" in _help("batch", "-h")[1]
    assert "Usage: root batch [OPTIONS] DATASET" in " ".join(_help("batch", "-h")[1].split())


def test_batch_has_the_refiner_options_of_propagate(tmp_path):
    from autolabel.synth import make_clip, write_clip

    clip = write_clip(make_clip(n_frames=6, height=48, width=64, seed=4), tmp_path / "data" / "clip0")
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("00000.png", "00005.png"):
        (keys / name).write_bytes((clip / "labels" / name).read_bytes())
    out = tmp_path / "out"
    code, output = run_cli("batch", tmp_path / "data", "-o", out, "--keyframe-every", "5", "--refine", "-q")
    assert code == 0, output
    manifest = json.loads((out / "clip0" / "manifest.json").read_text())
    assert manifest["settings"]["refiner"] == "boundary:boundary.pt+refiner:refiner.json"
    code, output = run_cli("propagate", "-v", clip / "frames", "-k", keys, "-o", tmp_path / "single", "-q")
    assert code == 0, output
    for label in (tmp_path / "single" / "labels").iterdir():
        assert label.read_bytes() == (out / "clip0" / "labels" / label.name).read_bytes(), label.name
    # the refiner is part of the fingerprint: resuming without it redoes the clip
    code, output = run_cli("batch", tmp_path / "data", "-o", out, "--keyframe-every", "5", "--resume", "--no-refine")
    assert code == 0 and "1 ok, 0 skipped" in output, output
    code, output = run_cli("batch", tmp_path / "data", "-o", tmp_path / "out2", "--refiner", tmp_path / "nope.pt")
    assert code == 2 and "nope.pt: refiner weights not found" in output and not (tmp_path / "out2").exists()


def test_readme_lists_the_formats_frames_py_reads():
    from pathlib import Path

    from autolabel.io.frames import IMAGE_FORMATS, VIDEO_FORMATS

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert f"({IMAGE_FORMATS};" in readme and f"({VIDEO_FORMATS};" in readme


# ---- item 1: an output folder that cannot be written is one line, before any work ----------------

@pytest.mark.parametrize("command", ["propagate", "batch", "demo"])
def test_output_that_cannot_be_written_is_one_line(tmp_path, small_clip, command, monkeypatch):
    import os
    from pathlib import Path

    (tmp_path / "a-file").write_text("")
    targets = [tmp_path / "a-file" / "out"]
    if os.geteuid() != 0:  # root may write anywhere: only a file system that refuses shows it
        (tmp_path / "locked").mkdir(mode=0o555)
        targets.append(tmp_path / "locked" / "out")
    args = {"propagate": ["propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes", "-o"],
            "batch": ["batch", small_clip.parent, "-o"], "demo": ["demo"]}[command]
    for out in targets:
        code, output = run_cli(*args, out)
        errors = [line for line in output.splitlines() if line.startswith("error")]
        assert code == 2 and len(errors) == 1 and "cannot write the output folder" in errors[0], output
    # no permission: as the file system says it, whoever runs the tests
    real_mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self.name == ".autolabel-staging":
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    code, output = run_cli(*args, tmp_path / "new" / "out")
    assert code == 2 and "cannot write the output folder (Permission denied)" in output, output
    assert not (tmp_path / "new").exists()


# ---- item 3: every frame's header is checked before the run; item 6: duplicate stems named ---------

@pytest.mark.parametrize("damage", ["other size", "not an image"])
def test_a_bad_frame_is_found_before_the_run_starts(tmp_path, small_clip, damage):
    import shutil

    from PIL import Image

    from autolabel.errors import InputError
    from autolabel.io.frames import FrameSource

    frames = tmp_path / "frames"
    shutil.copytree(small_clip / "frames", frames)
    last = sorted(frames.iterdir())[-1]
    if damage == "other size":
        Image.new("RGB", (50, 40)).save(last)
    else:
        last.write_bytes(b"garbage")
    with pytest.raises(InputError, match=last.name):  # when the clip is opened, not when the frame is reached
        FrameSource(frames)
    code, output = run_cli("propagate", "-v", frames, "-k", small_clip / "keyframes", "-o", tmp_path / "out")
    assert code == 2 and output.startswith("error: ") and last.name in output and "keyframes" not in output, output
    if damage == "other size":
        assert "frame is 50x40, the first frame is 96x64" in output


def test_duplicate_stems_name_both_files(tmp_path, small_clip):
    import shutil

    frames = tmp_path / "frames"
    shutil.copytree(small_clip / "frames", frames)
    shutil.copy(frames / "00003.png", frames / "00003.jpg")
    code, output = run_cli("propagate", "-v", frames, "-k", small_clip / "keyframes", "-o", tmp_path / "out")
    assert code == 2 and "00003.jpg and 00003.png" in output, output


# ---- item 14: keyframe stems that equal a frame's number, leading zeros aside ----------------------

def test_davis_style_keyframes_match_a_video_by_number(tmp_path):
    import cv2
    from PIL import Image

    from autolabel.synth import make_clip

    clip = make_clip(n_frames=6, height=48, width=64, seed=13, motion="translate")
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for frame in clip.frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    keys = tmp_path / "keys"
    keys.mkdir()
    for index in (0, 5):
        Image.fromarray(clip.labels[index]).save(keys / f"{index:05d}.png")  # DAVIS: 5 digits; frames: 6
    code, output = run_cli("propagate", "-v", video, "-k", keys, "-o", tmp_path / "out")
    assert code == 0, output
    assert "2 keyframe labels matched to frames by number" in output and "00005.png -> 000005" in output, output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["keyframes"] == ["000000", "000005"]


def test_a_number_matching_several_frames_is_refused(tmp_path, small_clip):
    import shutil

    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("1.png", "01.png", "2.png"):
        shutil.copy(small_clip / "frames" / "00000.png", frames / name)
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(small_clip / "keyframes" / "00000.png", keys / "001.png")
    code, output = run_cli("propagate", "-v", frames, "-k", keys, "-o", tmp_path / "out")
    assert code == 2 and "001.png: label stem '001' matches several frames by number (01, 1)" in output, output


# ---- item 17: the manifest holds the command line, the start time and the colour table -----------

def test_manifest_alone_reproduces_a_colour_coded_run(tmp_path):
    from datetime import datetime, timedelta, timezone

    import numpy as np
    from PIL import Image

    from autolabel.synth import make_clip

    clip = make_clip(n_frames=6, height=48, width=64, n_objects=2, seed=7)
    frames, keys = tmp_path / "frames", tmp_path / "keys"
    frames.mkdir()
    keys.mkdir()
    colours = np.array([(10, 20, 30), (200, 0, 0), (0, 200, 0), (0, 0, 200)], np.uint8)
    for index, frame in enumerate(clip.frames):
        Image.fromarray(frame).save(frames / f"{index:05d}.png")
    for index in (0, 5):
        Image.fromarray(colours[clip.labels[index]], "RGB").save(keys / f"{index:05d}.png")
    code, output = run_cli("propagate", "-v", frames, "-k", keys, "-o", tmp_path / "a", "-q")
    assert code == 0, output
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["command"].startswith("autolabel ")
    started = datetime.strptime(manifest["started"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert timedelta(0) <= datetime.now(timezone.utc) - started < timedelta(minutes=5)
    table = manifest["color_table"]
    used = {tuple(c) for c in colours[np.unique(np.concatenate([clip.labels[0], clip.labels[5]]))].tolist()}
    assert table == [[i, *colour] for i, colour in enumerate(sorted(used))]
    (tmp_path / "table.csv").write_text("id,r,g,b\n" + "".join(",".join(map(str, row)) + "\n" for row in table))
    code, output = run_cli("propagate", "-v", frames, "-k", keys, "-o", tmp_path / "b", "-q",
                           "--color-table", tmp_path / "table.csv")
    assert code == 0, output
    for label in (tmp_path / "a" / "labels").iterdir():
        assert label.read_bytes() == (tmp_path / "b" / "labels" / label.name).read_bytes()
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["color_table"] == table


# ---- item 4: batch never takes autolabel's own results for clips, and says what it looked for ------

def test_batch_skips_autolabel_outputs_and_says_what_it_looked_for(tmp_path, small_clip):
    import shutil

    trial = tmp_path / "trial"
    for name in ("run1", "run2"):
        code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes",
                               "-o", trial / name, "-q")
        assert code == 0, output
    code, output = run_cli("batch", trial, "-o", tmp_path / "out")
    errors = [line for line in output.splitlines() if line.startswith("error")]
    assert code == 2 and len(errors) == 1, output
    for layout in ("generic: <clip>/frames/", "davis: JPEGImages/480p/", "cityscapes: leftImg8bit_sequence/",
                   "manifest: a CSV"):
        assert layout in errors[0], output
    shutil.copytree(small_clip, trial / "clip")  # a real clip beside the earlier results
    code, output = run_cli("batch", trial, "-o", tmp_path / "out", "--dry-run")
    assert code == 0 and "1 clip" in output and "run1" not in output, output
    (tmp_path / "empty").mkdir()
    code, output = run_cli("batch", tmp_path / "empty", "-o", tmp_path / "out", "--layout", "generic")
    assert code == 2 and "no clips found in the generic layout (<clip>/frames/" in output, output


# ---- item 5: the Python API raises InputError with the CLI's one-line messages ---------------------

def test_python_api_raises_input_error_with_one_line_messages():
    import numpy as np

    import autolabel
    from autolabel.synth import make_clip

    clip = make_clip(n_frames=8, height=32, width=48, seed=1)
    good = clip.labels[0]
    cases = {
        "keyframe 8: matches no frame (frames are 0 … 7)": (clip.frames, {0: good, 8: good}),
        "keyframe 3: label is 10x12 but frames are 48x32": (clip.frames, {0: good, 3: np.zeros((12, 10), np.uint8)}),
        "keyframe 0: labels are integer ids, this one is float32": (clip.frames, {0: good.astype(np.float32)}),
        "frame 2: frames are HxWx3 uint8 RGB arrays, this one is 32x48x3 float64":
            ([*clip.frames[:2], clip.frames[2] / 255.0, *clip.frames[3:]], {0: good}),
        "frame 5: frame is 40x32, the first frame is 48x32":
            ([*clip.frames[:5], clip.frames[5][:, :40], *clip.frames[6:]], {0: good}),
        "keyframes: no keyframes": (clip.frames, {}),
        "frames: no frames": ([], {0: good}),
    }
    for message, (frames, keyframes) in cases.items():
        with pytest.raises(autolabel.InputError) as raised:
            autolabel.propagate(frames, keyframes)
        assert str(raised.value) == message
    labels, confidences = autolabel.propagate(clip.frames, {0: good, 7: clip.labels[7]})
    assert labels[3].dtype == np.int64 and labels[3].shape == (32, 48) and np.array_equal(labels[0], good)
    assert confidences[3].dtype == np.float32 and 0 <= confidences[3].min() <= confidences[3].max() <= 1


# ---- item 13: progress log lines give the rate and the time left -----------------------------------

def test_progress_lines_without_a_terminal_give_rate_and_time_left(monkeypatch, capsys):
    from autolabel import progress

    clock = iter([100.0, 102.0, 104.0, 200.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    with progress.Reporter("propagating", log_every_s=0) as reporter:
        for done in (1, 6, 7, 10):
            reporter.frames(done, 10)
    assert capsys.readouterr().err.splitlines() == [
        "propagating: 1/10", "propagating: 6/10, 2.5/s, 2s left", "propagating: 7/10, 1.5/s, 2s left",
        "propagating: 10/10, 0.1/s"]


# ---- item 15: sizes are W x H everywhere, and counts agree with their nouns ------------------------

def test_sizes_are_width_by_height_and_one_is_singular(tmp_path, small_clip):
    import shutil

    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(small_clip / "keyframes" / "00005.png", keys)
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", keys, "-o", tmp_path / "out")
    assert code == 0 and "16 frames, 96x64, 1 keyframe, labels:" in output, output  # the clip is 96 wide
    from autolabel.progress import counted

    assert (counted(1, "frame"), counted(0, "clip"), counted(2, "keyframe label")) == (
        "1 frame", "0 clips", "2 keyframe labels")
