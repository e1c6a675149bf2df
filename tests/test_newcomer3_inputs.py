"""The third newcomer pass (issue 20, sections 2 and 4): inputs that reached the user as an internal
error now get one line naming the file and the problem (exit 2, nothing written), or work."""
import pickle

import numpy as np
import pytest
import torch

from autolabel.synth import make_clip, write_clip

from conftest import run_cli, write_slow_clip


def _propagate(clip, out, *options):
    return run_cli("propagate", "-v", clip / "frames", "-k", clip / "keyframes", "-o", out, "-q", *options)


def _one_error_line(code, output, starts):
    assert code == 2, output
    assert output.count("\n") == 1 and output.startswith(f"error: {starts}"), output
    assert "internal error" not in output and "\x1b[" not in output, output


# ---- refiner weights that are not weights: said in our words -----------------------------------

def _not_weights(tmp_path):
    """name -> (file, what the message says it is)."""
    files = {"empty.pt": (b"", "the file is empty"),
             "text.pt": (b"not a checkpoint", "not a PyTorch file"),
             "pickle.pt": (pickle.dumps({"a": 1}, protocol=4), "holds Python objects")}
    for name, (content, _) in files.items():
        (tmp_path / name).write_bytes(content)
    torch.save({"net": torch.nn.Linear(2, 2)}, tmp_path / "module.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "module.pt").read_bytes()[:300])
    return {**{name: said for name, (_, said) in files.items()}, "module.pt": "holds Python objects",
            "other.pt": "not autolabel-learned-refiner/1 weights", "cut.pt": "damaged or truncated"}


def test_files_that_are_not_refiner_weights_are_named_in_our_words(small_clip, tmp_path):
    for name, said in _not_weights(tmp_path).items():
        code, output = _propagate(small_clip, tmp_path / "out", "--refiner", tmp_path / name)
        _one_error_line(code, output, f"{tmp_path / name}: cannot load refiner weights: ")
        assert said in output, output
        assert "weights_only" not in output and "Warning" not in output, output
        assert not (tmp_path / "out").exists()


def test_train_init_with_an_empty_file_is_one_line(tmp_path):
    write_clip(make_clip(n_frames=4, height=32, width=48, seed=1), tmp_path / "data" / "clip0")
    (tmp_path / "empty.pt").write_bytes(b"")
    code, output = run_cli("train", tmp_path / "data", "--init", tmp_path / "empty.pt", "-o", tmp_path / "r.pt",
                           "--steps", 1)
    _one_error_line(code, output, f"{tmp_path / 'empty.pt'}: cannot load refiner weights: the file is empty")
    assert not (tmp_path / "r.pt").exists()


# ---- any number of classes: OpenCV takes at most 128 channels a call (4 at fractional scales) --

def _many_class_clip(root, n_classes, height=48, width=64, n_frames=6):
    """Tiles of `n_classes` grey ids, each a colour of its own, sliding one pixel a frame."""
    from PIL import Image

    (root / "frames").mkdir(parents=True)
    (root / "keyframes").mkdir()
    rows, cols = np.mgrid[0:height, 0:width]
    ids = ((rows // 8) * 8 + cols // 8) % n_classes
    colours = np.random.default_rng(0).integers(0, 256, (n_classes, 3), dtype=np.uint8)
    for t in range(n_frames):
        moved = np.roll(ids, t, axis=1)
        Image.fromarray(colours[moved]).save(root / "frames" / f"{t:05d}.png")
        if t in (0, n_frames - 1):
            Image.fromarray(moved.astype(np.uint8), mode="L").save(root / "keyframes" / f"{t:05d}.png")
    return root


@pytest.mark.parametrize("refiner", ["classic", "default"])
def test_keyframes_with_many_classes_are_refined(tmp_path, refiner):
    from PIL import Image

    clip = _many_class_clip(tmp_path / "clip", 40)
    code, output = _propagate(clip, tmp_path / "out", "--refiner", refiner)
    assert code == 0, output
    written = np.asarray(Image.open(tmp_path / "out" / "labels" / "00002.png"))
    assert len(np.unique(written)) > 34


def test_many_classes_at_a_frame_size_that_is_no_multiple_of_the_work_step(tmp_path):
    from autolabel.core.refine import subsample_of

    assert subsample_of(40, 725) == 2 and 725 % (725 // 2)   # the cues work at a fractional scale
    clip = _many_class_clip(tmp_path / "clip", 6, height=40, width=725, n_frames=3)
    code, output = _propagate(clip, tmp_path / "out", "--refiner", "classic")
    assert code == 0, output


def test_channels_in_chunks_are_what_one_call_gives():
    import cv2

    from autolabel.core.warp import by_channels

    image = np.random.default_rng(1).random((20, 30, 100), dtype=np.float32)
    box = lambda part: cv2.boxFilter(part, -1, (5, 5), borderType=cv2.BORDER_REFLECT)  # noqa: E731
    assert np.array_equal(by_channels(box, image, most=32), box(image))


# ---- a label file named .png must hold a PNG ----------------------------------------------------

@pytest.mark.parametrize("refine", [["--no-refine"], ["--refiner", "classic"]])
def test_jpeg_bytes_named_png_are_refused(small_clip, tmp_path, refine):
    from PIL import Image

    keys = tmp_path / "keys"
    keys.mkdir()
    for path in sorted((small_clip / "keyframes").iterdir()):
        Image.open(path).convert("L").save(keys / path.name, format="JPEG")
    out = tmp_path / "out"
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", keys, "-o", out, "-q", *refine)
    _one_error_line(code, output, f"{keys / '00000.png'}: named .png but holds JPEG data")
    assert not out.exists()


# ---- --color-table: a bad row is named by file and line ------------------------------------------

def _rgb_keyframes(small_clip, tmp_path):
    from PIL import Image

    colours = np.array([[0, 0, 0], [200, 0, 0], [0, 128, 64], [40, 60, 220]], np.uint8)
    keys = tmp_path / "rgb-keys"
    keys.mkdir()
    for path in sorted((small_clip / "keyframes").iterdir()):
        Image.fromarray(colours[np.asarray(Image.open(path)).astype(int) % 4]).save(keys / path.name)
    return keys


@pytest.mark.parametrize("row, problem", [("1,200,30", "3 values"),
                                          ("1,300,30,40", "r, g and b must be 0 to 255"),
                                          ("foo,1,2,3", "id 'foo' is not a whole number")])
def test_a_bad_colour_table_row_names_the_file_line_and_problem(small_clip, tmp_path, row, problem):
    table = tmp_path / "table.csv"
    table.write_text(f"id,r,g,b,name\n0,0,0,0,background\n{row}\n")
    out = tmp_path / "out"
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", _rgb_keyframes(small_clip, tmp_path),
                           "-o", out, "-q", "--no-refine", "--color-table", table)
    _one_error_line(code, output, f"{table}: line 3 ({row}): {problem}; rows are id,r,g,b[,name]")
    assert not out.exists()


# ---- --label-format that doesn't fit the labels: the option is named, not "other keyframes" ------

def _recoded(small_clip, tmp_path, mode):
    from PIL import Image

    keys = tmp_path / f"keys-{mode}"
    keys.mkdir()
    for path in sorted((small_clip / "keyframes").iterdir()):
        Image.open(path).convert("L").convert(mode).save(keys / path.name)
    return keys


@pytest.mark.parametrize("mode, option, said", [
    ("L", "rgb", "a grayscale PNG ('L' mode), but --label-format rgb reads RGB PNGs"),
    ("P", "rgb", "a palette PNG ('P' mode), but --label-format rgb reads RGB PNGs"),
    ("L", "palette", "a grayscale PNG ('L' mode), but --label-format palette reads palette PNGs")])
def test_a_label_format_that_does_not_fit_blames_the_option(small_clip, tmp_path, mode, option, said):
    keys = small_clip / "keyframes" if mode == "P" else _recoded(small_clip, tmp_path, mode)
    out = tmp_path / "out"
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", keys, "-o", out, "-q", "--no-refine",
                           "--label-format", option)
    _one_error_line(code, output, f"{keys / '00000.png'}: label is {said}; leave the option out")
    assert "other keyframes" not in output and not out.exists()


def test_label_format_rgb_reads_grey_colours_as_colours(small_clip, tmp_path):
    from PIL import Image

    keys = _recoded(small_clip, tmp_path, "RGB")
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", keys, "-o", tmp_path / "out", "-q",
                           "--no-refine", "--label-format", "rgb")
    assert code == 0, output
    assert Image.open(tmp_path / "out" / "labels" / "00002.png").mode == "RGB"


# ---- a full disk: one line naming the file, exit 2, nothing left behind ---------------------------

def _disk_full_after(monkeypatch, images: int):
    """PIL's PNG writes fail with ENOSPC after `images` of them, having written half a file."""
    import errno

    from PIL import Image

    save, written = Image.Image.save, []

    def save_until_full(self, fp, *args, **kwargs):
        if len(written) >= images:
            open(fp, "wb").write(b"\x89PNG half")
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(fp)
        return save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_until_full)


def test_a_full_disk_names_the_file_and_leaves_nothing(small_clip, tmp_path, monkeypatch):
    _disk_full_after(monkeypatch, 5)
    out = tmp_path / "out"
    code, output = _propagate(small_clip, out, "--no-refine")
    _one_error_line(code, output, f"{out}/.autolabel-staging/")
    assert output.rstrip().endswith(".png: no space left on device while writing it"), output
    assert not out.exists()


def test_a_full_disk_keeps_the_previous_results(small_clip, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert _propagate(small_clip, out, "--no-refine")[0] == 0
    before = {path.name: path.read_bytes() for path in (out / "labels").iterdir()}
    _disk_full_after(monkeypatch, 3)
    code, output = _propagate(small_clip, out, "--no-refine", "--overwrite")
    assert code == 2 and "no space left on device" in output, output
    assert {path.name: path.read_bytes() for path in (out / "labels").iterdir()} == before
    assert sorted(path.name for path in out.iterdir()) == ["confidence", "labels", "manifest.json"]


def test_a_full_disk_where_no_write_is_wrapped_is_still_bad_input(small_clip, tmp_path, monkeypatch):
    import errno

    import autolabel.io.output

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "x"))

    monkeypatch.setattr(autolabel.io.output, "run_clip", full)
    code, output = _propagate(small_clip, tmp_path / "out", "--no-refine")
    _one_error_line(code, output, f"{tmp_path / 'out' / 'x'}: no space left on device while writing it")


# ---- train checks where it will write before it trains ----------------------------------------------

@pytest.mark.parametrize("mode", [[], ["--classic"], ["--fit-trust"]])
def test_train_refuses_an_output_in_a_missing_folder_before_any_work(tmp_path, monkeypatch, mode):
    import autolabel.refiner.prior.train

    def trained(*args, **kwargs):
        raise AssertionError("trained before checking the output")

    monkeypatch.setattr(autolabel.refiner.prior.train, "train_dataset", trained)
    write_clip(make_clip(n_frames=4, height=32, width=48, seed=1), tmp_path / "data" / "clip0")
    out = tmp_path / "missing" / "sub" / "x.pt"
    code, output = run_cli("train", tmp_path / "data", "-o", out, *mode)
    _one_error_line(code, output, f"{out}: the folder {out.parent} does not exist")
    assert not (tmp_path / "missing").exists()


# ---- SIGTERM is stopped as Ctrl-C is: a line, exit 143 (128 + SIGTERM), nothing half-written -------

@pytest.fixture(scope="module")
def slow_frames(tmp_path_factory):
    """A clip that takes some seconds to propagate (Farneback flow on 60 frames)."""
    return write_slow_clip(tmp_path_factory.mktemp("slow"), 60)


def test_sigterm_is_stopped_as_ctrl_c_is(slow_frames, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "autolabel", "propagate", "-v", str(slow_frames / "frames"),
                                "-k", str(slow_frames / "keys"), "-o", str(out), "--flow", "farneback"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    for line in process.stderr:  # the work has started
        if ", labels:" in line:
            break
    for _ in range(10):  # as `timeout` would, again while it hasn't ended (see test_interrupts on load)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=2)
            break
        except subprocess.TimeoutExpired:
            pass
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 143, rest
    assert rest.strip().splitlines()[-1] == "terminated: no results written", rest
    assert "Traceback" not in rest and not out.exists()


def test_sigterm_ends_a_command_without_a_clean_up_of_its_own(tmp_path, monkeypatch):
    import os
    import signal

    import autolabel.evaluation.evaluate

    def outside(signum, frame):   # what the test process does with a SIGTERM the command doesn't take
        raise RuntimeError("SIGTERM reached the caller")

    monkeypatch.setattr(autolabel.evaluation.evaluate, "evaluate",
                        lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGTERM))
    before = signal.signal(signal.SIGTERM, outside), signal.getsignal(signal.SIGINT)
    try:
        code, output = run_cli("evaluate", "-p", tmp_path, "-g", tmp_path)
        assert signal.getsignal(signal.SIGTERM) is outside   # restored for in-process callers
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])
    assert code == 143 and output == "terminated\n", output


# ---- hidden files in the frames folder are skipped ------------------------------------------------

def test_hidden_files_among_the_frames_are_skipped(small_clip, tmp_path):
    import shutil

    frames = tmp_path / "frames"
    shutil.copytree(small_clip / "frames", frames)
    (frames / "._00003.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    (frames / ".hidden.jpg").write_bytes(b"not an image")
    clean = run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes", "-o",
                    tmp_path / "clean", "-q", "--no-refine")
    code, output = run_cli("propagate", "-v", frames, "-k", small_clip / "keyframes", "-o", tmp_path / "out", "-q",
                           "--no-refine")
    assert clean[0] == 0 and code == 0, output
    labels = lambda out: {p.name: p.read_bytes() for p in (out / "labels").iterdir()}  # noqa: E731
    assert labels(tmp_path / "out") == labels(tmp_path / "clean")
