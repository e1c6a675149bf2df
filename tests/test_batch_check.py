"""`autolabel batch --check` (CI: are the labels current?) and Cityscapes frames stored as JPEG."""
import json
import os

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from autolabel.cli import app
from autolabel.datasets.layouts import find_clips
from autolabel.synth import make_clip, write_clip

SIZE = dict(height=48, width=64)


def batch(*args):
    result = CliRunner().invoke(app, ["batch", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def files(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_check_is_0_after_a_batch_and_1_after_a_frame_is_touched_or_a_setting_changes(tmp_path):
    for seed in range(2):
        write_clip(make_clip(n_frames=6, seed=seed, **SIZE), tmp_path / "data" / f"clip{seed}")
    data, out = tmp_path / "data", tmp_path / "out"

    assert batch(data, "--out", out, "--json").exit_code == 2   # --json belongs to --check
    missing = batch(data, "--out", out, "--check", "--json")
    assert missing.exit_code == 1 and not out.exists()
    assert [json.loads(line)["state"] for line in missing.output.splitlines()] == ["missing", "missing"]

    assert batch(data, "--out", out, "--keyframe-every", "5", "--quiet").exit_code == 0
    before = files(out)
    current = batch(data, "--out", out, "--keyframe-every", "5", "--check")
    assert current.exit_code == 0, current.output
    assert "2 current, 0 stale" in current.output

    changed = batch(data, "--out", out, "--keyframe-every", "5", "--fusion", "distance", "--check", "--json")
    assert changed.exit_code == 1
    assert {json.loads(line)["state"] for line in changed.output.splitlines()} == {"stale"}

    frame = sorted((data / "clip1" / "frames").iterdir())[3]
    os.utime(frame, ns=(frame.stat().st_atime_ns, frame.stat().st_mtime_ns + 1_000_000))
    touched = batch(data, "--out", out, "--keyframe-every", "5", "--check", "--json")
    assert touched.exit_code == 1
    states = {line["clip"]: line["state"] for line in map(json.loads, touched.output.splitlines())}
    assert states == {"clip0": "current", "clip1": "stale"}
    assert "clip1" in batch(data, "--out", out, "--keyframe-every", "5", "--check").output.splitlines()[-1]

    (out / "clip0" / "confidence" / sorted(p.name for p in (out / "clip0" / "confidence").iterdir())[0]).unlink()
    assert json.loads(batch(data, "--out", out, "--keyframe-every", "5", "--check", "--json")
                      .output.splitlines()[0])["state"] == "stale"
    after = files(out)
    assert len(before) - len(after) == 1 and all(after[p] == before[p] for p in after)  # --check wrote nothing


def test_cityscapes_frames_may_be_jpg(tmp_path):
    clip = make_clip(n_frames=4, seed=1, **SIZE)
    frames = tmp_path / "leftImg8bit_sequence" / "val" / "ulm"
    labels = tmp_path / "gtFine" / "val" / "ulm"
    frames.mkdir(parents=True)
    labels.mkdir(parents=True)
    for index in range(4):
        stem = f"ulm_000007_{index:06d}"
        Image.fromarray(clip.frames[index]).save(frames / f"{stem}_leftImg8bit.jpg", quality=95)
        if index in (0, 3):
            Image.fromarray(clip.labels[index]).save(labels / f"{stem}_gtFine_labelIds.png")
    (frames / "ulm_000007_000009_leftImg8bit.txt").write_text("not a frame")
    [job] = find_clips(tmp_path)
    assert [p.name for p in job.frame_files] == [f"ulm_000007_{i:06d}_leftImg8bit.jpg" for i in range(4)]
    assert len(job.keyframe_files) == 2
    out = tmp_path / "out"
    assert batch(tmp_path, "--out", out, "--quiet").exit_code == 0
    published = sorted(p.name for p in (out / "ulm_000007" / "cityscapes").iterdir())
    assert published == [f"ulm_000007_{i:06d}_gtFine_labelIds.png" for i in range(4)]
    keyframe = np.asarray(Image.open(labels / "ulm_000007_000003_gtFine_labelIds.png"))
    assert np.array_equal(np.asarray(Image.open(out / "ulm_000007" / "cityscapes" / published[3])), keyframe)
