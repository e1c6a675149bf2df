import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from autolabel.datasets.batch import shard_of
from autolabel.cli import app
from autolabel.errors import InputError
from autolabel.datasets.layouts import find_clips
from autolabel.synth import make_clip, write_clip

CLI = [sys.executable, "-c", "from autolabel.cli import app; app()", "batch"]
SIZE = dict(height=64, width=96)


def batch(*args):
    result = CliRunner().invoke(app, ["batch", *map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def report(out: Path, name: str = "batch-report.jsonl") -> dict[str, dict]:
    lines = [json.loads(line) for line in (out / name).read_text().splitlines()]
    return {line["clip"]: line for line in lines}


def outputs(out: Path) -> dict[str, object]:
    """Every file under OUT: PNG bytes, manifests without what differs between runs (timings, start time,
    command line), report lines without seconds."""
    found: dict[str, object] = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        name = path.relative_to(out).as_posix()
        if path.name == "manifest.json":
            found[name] = {k: v for k, v in json.loads(path.read_text()).items()
                           if k not in ("timings", "started", "command")}
        elif path.name.startswith("batch-report"):
            found[name] = None  # timings and statuses differ between runs
        else:
            found[name] = path.read_bytes()
    return found


def dense_dataset(root: Path, n_clips: int = 3, n_frames: int = 8, **size) -> Path:
    """Generic layout, every frame labeled (like an evaluation set)."""
    for seed in range(n_clips):
        write_clip(make_clip(n_frames=n_frames, seed=seed, **(size or SIZE)), root / f"clip{seed}")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return dense_dataset(tmp_path_factory.mktemp("dense"))


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> Path:
    """One clip at a time, the plain way."""
    out = tmp_path_factory.mktemp("reference") / "out"
    result = batch(dataset, "--out", out, "--keyframe-every", "4")
    assert result.exit_code == 0, result.output
    return out


def test_writes_every_clip_and_a_report(reference):
    lines = report(reference)
    assert sorted(lines) == ["clip0", "clip1", "clip2"]
    assert all(line["status"] == "ok" and line["frames"] == 8 and line["error"] is None for line in lines.values())
    assert all(0 < line["mean_confidence"] <= 1 for line in lines.values())
    manifest = json.loads((reference / "clip1" / "manifest.json").read_text())
    assert manifest["keyframes"] == ["00000", "00004"]  # --keyframe-every 4 of labels on every frame
    assert manifest["clip"] == "clip1" and len(manifest["fingerprint"]) == 64
    assert len(list((reference / "clip1" / "labels").iterdir())) == 8


def test_parallel_jobs_and_flow_cache_give_identical_outputs(dataset, reference, tmp_path):
    out = tmp_path / "out"
    result = batch(dataset, "--out", out, "--keyframe-every", "4", "--jobs", "2", "--flow-cache", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert outputs(out) == outputs(reference)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 3 * 7


def test_existing_results_need_resume_or_overwrite(dataset, reference, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    result = batch(dataset, "--out", out, "--keyframe-every", "4")
    assert result.exit_code == 2 and "--resume" in result.output
    result = batch(dataset, "--out", out, "--keyframe-every", "4", "--overwrite", "--quiet")
    assert result.exit_code == 0
    assert {line["status"] for line in report(out).values()} == {"ok"}
    assert outputs(out) == outputs(reference)


def test_resume_skips_complete_clips_and_redoes_changed_ones(dataset, reference, tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    shutil.copytree(dataset, data)
    shutil.copytree(reference, out)
    # copytree keeps names, sizes and mtimes: a dataset moved that way still counts as done.
    assert batch(data, "--out", out, "--keyframe-every", "4", "--resume").exit_code == 0
    assert {line["status"] for line in report(out).values()} == {"skipped"}

    frame = data / "clip1" / "frames" / "00003.png"
    os.utime(frame, ns=(frame.stat().st_atime_ns, frame.stat().st_mtime_ns + 10**9))
    (out / "clip2" / "manifest.json").unlink()  # as a run killed while swapping results in leaves it
    assert batch(data, "--out", out, "--keyframe-every", "4", "--resume").exit_code == 0
    statuses = {clip: line["status"] for clip, line in report(out).items()}
    assert statuses == {"clip0": "skipped", "clip1": "ok", "clip2": "ok"}
    assert outputs(out) == {**outputs(reference), **{k: v for k, v in outputs(out).items() if "manifest" in k}}

    assert batch(data, "--out", out, "--keyframe-every", "4", "--resume", "--flow-preset", "fast").exit_code == 0
    assert {line["status"] for line in report(out).values()} == {"ok"}  # other settings: nothing is complete


def test_broken_clips_are_reported_and_the_others_done(tmp_path):
    data = dense_dataset(tmp_path / "data", n_clips=1)
    shutil.copytree(data / "clip0" / "labels", data / "no-frames" / "labels")
    bad_size = write_clip(make_clip(n_frames=6, seed=5, **SIZE), data / "bad-size")
    Image.new("P", (32, 32)).save(bad_size / "labels" / "00004.png")
    out = tmp_path / "out"
    result = batch(data, "--out", out, "--keyframe-every", "2", "--quiet")
    assert result.exit_code == 1
    lines = report(out)
    assert [lines[clip]["status"] for clip in ("bad-size", "clip0", "no-frames")] == ["failed", "ok", "failed"]
    assert "label is 32x32 but frames are 96x64" in lines["bad-size"]["error"]
    assert "no such file or folder" in lines["no-frames"]["error"]
    assert "failed: no-frames" in result.output
    assert (out / "clip0" / "manifest.json").exists()
    assert not (out / "no-frames").exists() and not (out / "bad-size").exists()


def test_usage_errors_exit_2(dataset, tmp_path):
    (tmp_path / "empty").mkdir()
    assert batch(tmp_path / "missing", "--out", tmp_path / "out").exit_code == 2
    result = batch(tmp_path / "empty", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "no clips found" in result.output
    for shard in ("3/3", "-1/2", "1", "a/b"):
        assert batch(dataset, "--out", tmp_path / "out", "--shard", shard).exit_code == 2
    assert not (tmp_path / "out").exists()


def test_shards_split_the_clips_deterministically(dataset, tmp_path):
    jobs = find_clips(dataset)
    shards = [shard_of(list(reversed(jobs)), index, 2) for index in range(2)]
    assert [[job.name for job in shard] for shard in shards] == [["clip0", "clip2"], ["clip1"]]
    out = tmp_path / "out"
    assert batch(dataset, "--out", out, "--shard", "1/2", "--quiet").exit_code == 0
    assert sorted(report(out, "batch-report-1-of-2.jsonl")) == ["clip1"]
    assert sorted(p.name for p in out.iterdir()) == ["batch-report-1-of-2.jsonl", "clip1"]


def test_dry_run_lists_clips_and_writes_nothing(dataset, tmp_path):
    result = batch(dataset, "--out", tmp_path / "out", "--keyframe-every", "4", "--dry-run")
    assert result.exit_code == 0
    assert all(clip in result.output for clip in ("clip0", "clip1", "clip2"))
    assert "run" in result.output
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ layouts


def _cityscapes(root: Path) -> Path:
    """val/aachen, sequence 000001: a snippet of frames 0-5 (labels at 2 and 5) and one of 100-103 (label at 101)."""
    clip = make_clip(n_frames=10, seed=2, **SIZE)
    frames = root / "leftImg8bit_sequence" / "val" / "aachen"
    labels = root / "gtFine" / "val" / "aachen"
    frames.mkdir(parents=True)
    labels.mkdir(parents=True)
    for index, number in enumerate([0, 1, 2, 3, 4, 5, 100, 101, 102, 103]):
        stem = f"aachen_000001_{number:06d}"
        Image.fromarray(clip.frames[index]).save(frames / f"{stem}_leftImg8bit.png")
        if number in (2, 5, 101):
            Image.fromarray(clip.labels[index]).save(labels / f"{stem}_gtFine_labelIds.png")
            Image.fromarray(clip.frames[index]).save(labels / f"{stem}_gtFine_color.png")
    return root


def test_cityscapes_snippets_run_and_get_cityscapes_names(tmp_path):
    data = _cityscapes(tmp_path / "cityscapes")
    jobs = find_clips(data)
    assert [(job.name, len(job.frame_files), len(job.keyframe_files)) for job in jobs] == [
        ("aachen_000001_000000", 6, 2), ("aachen_000001_000100", 4, 1)]
    out = tmp_path / "out"
    assert batch(data, "--out", out, "--quiet").exit_code == 0
    clip = out / "aachen_000001_000000"
    labels = sorted(p.name for p in (clip / "labels").iterdir())
    assert labels[0] == "aachen_000001_000000_leftImg8bit.png" and len(labels) == 6
    published = sorted((clip / "cityscapes").iterdir())
    assert [p.name for p in published][2] == "aachen_000001_000002_gtFine_labelIds.png"
    for path in published:
        twin = clip / "labels" / path.name.replace("_gtFine_labelIds", "_leftImg8bit")
        assert path.read_bytes() == twin.read_bytes() and path.stat().st_ino == twin.stat().st_ino
    keyframe = np.asarray(Image.open(data / "gtFine/val/aachen/aachen_000001_000002_gtFine_labelIds.png"))
    assert np.array_equal(np.asarray(Image.open(published[2])), keyframe)
    assert json.loads((clip / "manifest.json").read_text())["keyframes"] == [
        "aachen_000001_000002_leftImg8bit", "aachen_000001_000005_leftImg8bit"]


def test_davis_layout(tmp_path):
    for seq in ("bear", "camel"):
        (tmp_path / "JPEGImages" / "480p" / seq).mkdir(parents=True)
        (tmp_path / "Annotations" / "480p" / seq).mkdir(parents=True)
    (tmp_path / "Annotations" / "480p" / "orphan").mkdir()
    jobs = find_clips(tmp_path)
    assert [job.name for job in jobs] == ["bear", "camel", "orphan"]  # orphan: listed, so that it is reported
    assert jobs[0].video == tmp_path / "JPEGImages/480p/bear" and jobs[0].keyframes == tmp_path / "Annotations/480p/bear"


def test_manifest_layouts(tmp_path):
    (tmp_path / "list.csv").write_text("video,keyframes,out\nclips/a.mp4,keys/a,a\n/data/b,/keys/b,nested/b\n")
    jobs = find_clips(tmp_path / "list.csv")
    assert [(job.name, job.video, job.keyframes) for job in jobs] == [
        ("a", tmp_path / "clips/a.mp4", tmp_path / "keys/a"), ("nested/b", Path("/data/b"), Path("/keys/b"))]
    (tmp_path / "list.jsonl").write_text('{"video": "v", "keyframes": "k", "out": "x"}\n\n')
    assert [job.out_subdir for job in find_clips(tmp_path / "list.jsonl")] == ["x"]
    for bad in ('{"video": "v", "keyframes": "k", "out": "../x"}', '{"video": "v", "out": "x"}', "video,out\nv,x"):
        (tmp_path / "bad.jsonl").write_text(bad)
        with pytest.raises(InputError):
            find_clips(tmp_path / "bad.jsonl")
    (tmp_path / "twice.csv").write_text("video,keyframes,out\na,b,x\nc,d,x\n")
    with pytest.raises(InputError, match="same output folder"):
        find_clips(tmp_path / "twice.csv")


# ------------------------------------------------------------------ crash safety


def _complete_clips(out: Path) -> int:
    count = 0
    for manifest in out.glob("*/manifest.json"):
        try:
            count += "fingerprint" in json.loads(manifest.read_text())
        except (OSError, ValueError):  # swapped out while we looked
            pass
    return count


def _mid_clip(out: Path) -> bool:
    return any(out.glob("*/.autolabel-staging"))


def _kill_when(process: subprocess.Popen, condition) -> bool:
    """SIGKILL the batch as soon as condition() holds; False when the batch finished first."""
    while process.poll() is None:
        if condition():
            process.kill()  # the batch alone, not its process group: its workers must not outlive it
            process.wait()
            return True
        time.sleep(0.005)
    return False


def _tree(out: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in out.rglob("*")} if out.exists() else {}


@pytest.mark.parametrize("jobs", [1, 2])
def test_sigkill_at_any_moment_then_resume_is_byte_identical(tmp_path, jobs):
    data = dense_dataset(tmp_path / "data", n_clips=5, n_frames=10, height=96, width=128)
    reference, out = tmp_path / "reference", tmp_path / "killed"
    args = [*CLI, str(data), "--keyframe-every", "3", "--jobs", str(jobs), "--quiet"]
    assert subprocess.run([*args, "--out", str(reference)], capture_output=True).returncode == 0

    moments = [lambda: time.monotonic() > started + 0.3,  # starting up: nothing written yet
               lambda: _mid_clip(out),                    # results of a clip half written
               lambda: _complete_clips(out) > complete,   # right after a clip was sealed
               lambda: _mid_clip(out)]
    killed_with = []  # complete clips left by each kill
    for attempt, moment in enumerate(moments):
        complete, started = _complete_clips(out), time.monotonic()
        process = subprocess.Popen([*args, "--out", str(out), *(["--resume"] if attempt else [])],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not _kill_when(process, moment):
            break
        before = _tree(out)
        time.sleep(0.3)
        assert _tree(out) == before, "something went on writing after the batch was killed"
        killed_with.append(_complete_clips(out))
    assert len(killed_with) >= 3 and any(0 < done < 5 for done in killed_with), killed_with
    result = subprocess.run([*args, "--out", str(out), "--resume"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "failed" not in {line["status"] for line in report(out).values()}, report(out)
    assert outputs(out) == outputs(reference)


# ------------------------------------------------------------------ ray


def test_ray_backend_matches_local_processes(dataset, reference, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    result = subprocess.run([*CLI, str(dataset), "--out", str(out), "--keyframe-every", "4", "--backend", "ray",
                             "--jobs", "2", "--quiet"], capture_output=True, text=True, timeout=300,
                            env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert outputs(out) == outputs(reference)
