"""`autolabel propagate` as users meet it: formats in and out, bad input, determinism."""
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from autolabel.io.output import run_clip
from autolabel.synth import davis_palette, make_clip

from conftest import make_keyframes, run_cli


def _outputs(out):
    return sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")


def test_propagate_writes_every_frame_and_a_manifest(small_clip, tmp_path):
    out = tmp_path / "out"
    code, output = run_cli("propagate", "--video", small_clip / "frames", "--keyframes",
                           small_clip / "keyframes", "--out", out)
    assert code == 0, output
    assert "palette" in output  # says what it detected
    stems = sorted(p.stem for p in (small_clip / "frames").iterdir())
    assert sorted(p.stem for p in (out / "labels").iterdir()) == stems
    assert sorted(p.stem for p in (out / "confidence").iterdir()) == stems
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["version"] and manifest["settings"]["flow"] == "dis"
    assert {"read", "flow", "warp", "fuse", "write", "total"} <= set(manifest["timings"])
    frame = manifest["frames"][2]
    assert frame["sources"] == ["00000", "00005"] and frame["distance"] == 2 and 0 < frame["mean_confidence"] <= 1
    assert manifest["frames"][0]["keyframe"] is True
    label = Image.open(out / "labels" / "00002.png")
    assert label.mode == "P" and label.getpalette()[:12] == davis_palette()[:12]
    assert Image.open(out / "confidence" / "00002.png").mode == "L"
    # keyframes are written through unchanged
    assert np.array_equal(np.asarray(Image.open(out / "labels" / "00005.png")),
                          np.asarray(Image.open(small_clip / "keyframes" / "00005.png")))


def test_outputs_are_byte_identical_across_runs(small_clip, tmp_path):
    for name in ("a", "b"):
        assert run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes",
                       "-o", tmp_path / name, "-q")[0] == 0
    files = _outputs(tmp_path / "a")
    assert files == _outputs(tmp_path / "b") and files
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def _write_keyframes(labels, folder, kind):
    folder.mkdir()
    colors = {0: (10, 20, 30), 1: (200, 0, 0), 2: (0, 200, 0), 3: (0, 0, 200)}
    for index in (0, 6, 11):
        ids = labels[index]
        if kind == "palette":
            image = Image.fromarray(ids, "L")
            image.putpalette(davis_palette())
        elif kind == "ids":
            image = Image.fromarray(np.where(ids == 1, 7, np.where(ids == 2, 26, 255)).astype(np.uint8), "L")
        elif kind == "binary":
            image = Image.fromarray((ids > 0).astype(np.uint8) * 255, "L")
        else:
            image = Image.fromarray(np.array([colors[i] for i in range(4)], np.uint8)[ids], "RGB")
        image.save(folder / f"{index:05d}.png")


@pytest.mark.parametrize("kind,mode", [("palette", "P"), ("ids", "L"), ("binary", "L"), ("rgb", "RGB")])
def test_every_label_format_round_trips(tmp_path, kind, mode):
    clip = make_clip(n_frames=12, height=48, width=64, n_objects=2, seed=11)
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, frame in enumerate(clip.frames):
        Image.fromarray(frame).save(frames / f"{index:05d}.png")
    _write_keyframes(clip.labels, tmp_path / "keys", kind)
    manifest = run_clip(frames, tmp_path / "keys", tmp_path / "out")
    assert manifest["settings"]["label_format"] == kind
    key_values = set()
    for path in (tmp_path / "keys").iterdir():
        key_values |= set(np.unique(np.asarray(Image.open(path)).reshape(-1, 3 if kind == "rgb" else 1), axis=0)
                          .ravel().tolist() if kind != "rgb" else map(tuple, np.unique(
                              np.asarray(Image.open(path)).reshape(-1, 3), axis=0).tolist()))
    for path in sorted((tmp_path / "out" / "labels").iterdir()):
        image = Image.open(path)
        assert image.mode == mode, path
        array = np.asarray(image)
        values = set(map(tuple, np.unique(array.reshape(-1, 3), axis=0).tolist())) if kind == "rgb" \
            else set(np.unique(array).tolist())
        assert values <= key_values, (path, values - key_values)
        if path.name == "00006.png":
            assert np.array_equal(array, np.asarray(Image.open(tmp_path / "keys" / "00006.png")))


def test_binary_255_is_the_object_not_ignore(tmp_path):
    clip = make_clip(n_frames=12, height=48, width=64, n_objects=1, seed=12)
    frames = tmp_path / "frames"
    frames.mkdir()
    for index, frame in enumerate(clip.frames):
        Image.fromarray(frame).save(frames / f"{index:05d}.png")
    _write_keyframes(clip.labels, tmp_path / "keys", "binary")
    run_clip(frames, tmp_path / "keys", tmp_path / "out")
    predicted = np.asarray(Image.open(tmp_path / "out" / "labels" / "00003.png"))
    assert ((predicted == 255) == (clip.labels[3] > 0)).mean() > 0.95


def test_video_file_input(tmp_path):
    clip = make_clip(n_frames=10, height=64, width=96, seed=13, motion="translate")
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for frame in clip.frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    keys = tmp_path / "keys"
    keys.mkdir()
    for index in (0, 9):
        Image.fromarray(clip.labels[index]).save(keys / f"{index:06d}.png")
    code, output = run_cli("propagate", "-v", video, "-k", keys, "-o", tmp_path / "out")
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "out" / "labels").iterdir())[:2] == ["000000.png", "000001.png"]
    assert len(list((tmp_path / "out" / "labels").iterdir())) == 10


# ---- bad input: one line naming the file, exit code 2, nothing half-written -------------------

def _bad(tmp_path, small_clip, mutate):
    clip = tmp_path / "clip"
    shutil.copytree(small_clip, clip)
    video, keys = mutate(clip)
    out = tmp_path / "out"
    code, output = run_cli("propagate", "-v", video, "-k", keys, "-o", out)
    return code, output.strip(), out


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


CASES = {
    "missing video folder": (lambda c: (c / "nope", c / "keyframes"), "nope"),
    "empty frames folder": (lambda c: (shutil.rmtree(c / "frames") or (c / "frames").mkdir() or c / "frames",
                                       c / "keyframes"), "frames"),
    "missing keyframes": (lambda c: (c / "frames", c / "nokeys"), "nokeys"),
    "no keyframes at all": (lambda c: (c / "frames", shutil.rmtree(c / "keyframes") or (c / "keyframes").mkdir()
                                       or c / "keyframes"), "keyframes"),
    "truncated frame": (lambda c: (_truncate(c / "frames" / "00007.png") or c / "frames", c / "keyframes"),
                        "00007.png"),
    "truncated label": (lambda c: (c / "frames", _truncate(c / "keyframes" / "00005.png") or c / "keyframes"),
                        "00005.png"),
    "label of wrong size": (lambda c: (c / "frames", Image.new("L", (10, 10)).save(c / "keyframes" / "00005.png")
                                       or c / "keyframes"), "00005.png"),
    "label stem matching no frame": (lambda c: (c / "frames", shutil.copy(c / "keyframes" / "00005.png",
                                                c / "keyframes" / "extra.png") and c / "keyframes"), "extra.png"),
    "undecodable video": (lambda c: ((c / "broken.mp4").write_bytes(b"not a video") and c / "broken.mp4",
                                     c / "keyframes"), "broken.mp4"),
    "mixed label formats": (lambda c: (c / "frames", Image.new("L", (96, 64)).save(c / "keyframes" / "00005.png")
                                       or c / "keyframes"), "00005.png"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_one_clear_line(tmp_path, small_clip, case):
    mutate, named = CASES[case]
    code, output, out = _bad(tmp_path, small_clip, mutate)
    assert code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and named in errors[0] and "Traceback" not in output, output
    assert not out.exists(), "no partial output"


def test_existing_results_are_refused_without_overwrite(small_clip, tmp_path):
    out = tmp_path / "out"
    args = ("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes", "-o", out, "-q")
    assert run_cli(*args)[0] == 0
    before = (out / "labels" / "00003.png").read_bytes()
    code, output = run_cli(*args)
    assert code == 2 and "--overwrite" in output and str(out) in output
    assert (out / "labels" / "00003.png").read_bytes() == before
    assert run_cli(*args, "--overwrite")[0] == 0


def test_failed_run_leaves_existing_results_alone(small_clip, tmp_path):
    out = tmp_path / "out"
    assert run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes", "-o", out, "-q")[0] == 0
    clip = tmp_path / "clip"
    shutil.copytree(small_clip, clip)
    _truncate(clip / "frames" / "00012.png")
    code, _ = run_cli("propagate", "-v", clip / "frames", "-k", clip / "keyframes", "-o", out, "--overwrite")
    assert code == 2
    assert (out / "manifest.json").exists() and len(list((out / "labels").iterdir())) == 16
    assert not (out / ".autolabel-staging").exists()


def test_help_answers_questions():
    code, output = run_cli("propagate", "--help")
    assert code == 0 and "--flow-scale" in output and "--overwrite" in output and "confidence" in output


def test_bench_times_the_propagate_command_against_the_plain_flow_loop(small_clip):
    code, output = run_cli("bench", small_clip, "-K", "5", "--json", "--no-refine")  # the refiner: test_refine
    assert code == 0, output
    result = json.loads(output.strip().splitlines()[-1])
    assert result["frames"] == 16 and result["metric"] == "J" and result["score"] > 20
    # the command's wall time includes start-up and writing: never below the flow it computes
    assert result["total_s"] > result["flow_alone_s"] > 0 and result["peak_memory_mb"] > 0
    total, flow = result["total_s"], result["flow_alone_s"]  # both rounded to 0.01 s
    assert (total - 0.005) / (flow + 0.005) - 0.01 <= result["ratio_to_flow"] <= (total + 0.005) / (flow - 0.005) + 0.01
    assert result["flow_alone_s"] == min(result["flow_one_loop_s"], result["flow_two_threads_s"])
    assert {"flow", "warp", "fuse", "write"} <= set(result["stages_s"])
    assert result["startup_s"] > 0 and result["threads"] >= 1 and result["cpu_ratio_to_flow"] > 0


def test_bench_on_one_thread_runs_the_command_and_its_floor_on_one_thread(small_clip):
    code, output = run_cli("bench", small_clip, "-K", "5", "--no-refine", "--threads", "1")
    assert code == 0, output
    assert "1 threads" in output and "start-up" in output  # the per-stage table


def test_threads_change_no_output(small_clip, tmp_path):
    outputs = []
    for threads in ("1", "3"):
        out = tmp_path / threads
        code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes", "-o", out,
                               "--no-refine", "--threads", threads)
        assert code == 0, output
        outputs.append([path.read_bytes() for folder in ("labels", "confidence")
                        for path in sorted((out / folder).iterdir())])
    assert outputs[0] == outputs[1]


def test_bench_long_clip_has_every_class_in_every_keyframe():
    code, output = run_cli("bench", "--long-clip", "12x160x120", "-K", "5", "--classes", "5")
    assert code == 0, output
    result = json.loads(output.strip().splitlines()[-1])
    assert result["classes"] == 5 and result["frames"] == 12 and result["pixel_accuracy"] > 90
    from autolabel.synth import LongClip

    clip = LongClip(12, 120, 160, n_classes=5)
    assert all(len(np.unique(clip.label(i))) == 5 for i in (0, 5, 10))


def test_geometry_never_imports_the_refiner_nor_torch(small_clip, tmp_path):
    """Start-up is paid on every clip: `propagate --no-refine` imports neither the refiner nor torch."""
    script = ("import runpy, sys\n"
              "try:\n"
              "    runpy.run_module('autolabel', run_name='__main__')\n"
              "except SystemExit as done:\n"
              "    assert not done.code, done.code\n"
              "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('autolabel.core.refine')))\n")
    command = [sys.executable, "-c", script, "propagate", "-v", str(small_clip / "frames"),
               "-k", str(small_clip / "keyframes"), "-o", str(tmp_path / "out"), "--no-refine", "-q"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
