"""The labeling loop closed: `autolabel import` (corrected frames back in) and `propagate --update`
(only the segments new keyframes touch are computed again; the result is a full run's, byte for byte)."""
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autolabel.datasets.flowcache import FlowCache
from autolabel.interop.export import export
from autolabel.io.output import run_clip
from autolabel.synth import make_clip, write_clip

from conftest import run_cli

KEYS = (0, 10, 20, 30)


@pytest.fixture
def clip(tmp_path):
    """A 31-frame synthetic clip (palette labels, every frame labeled) and keyframes 0, 10, 20, 30."""
    folder = write_clip(make_clip(n_frames=31, height=48, width=64, n_objects=2, seed=5), tmp_path / "clip",
                        label_format="palette")
    keys = tmp_path / "keys"
    keys.mkdir()
    for k in KEYS:
        shutil.copy(folder / "labels" / f"{k:05d}.png", keys)
    return folder, keys


def results(out: Path) -> dict[str, bytes]:
    return {f"{folder}/{path.name}": path.read_bytes()
            for folder in ("labels", "confidence") for path in sorted((out / folder).iterdir())}


def fresh(clip_dir: Path, keys: Path, out: Path, *options) -> dict[str, bytes]:
    code, output = run_cli("propagate", "-v", clip_dir / "frames", "-k", keys, "-o", out, "-q", *options)
    assert code == 0, output
    return results(out)


def cvat_correction(zip_path: Path, stem: str, truth: np.ndarray, tmp_path: Path) -> Path:
    """What CVAT exports after a person repaints frame `stem`: Datumaro (CVAT's dataset library) reads
    our zip, the frame's masks become the true objects, and Datumaro writes Segmentation mask 1.1."""
    pytest.importorskip("datumaro", reason="the interop extra: pip install -e '.[interop]'")
    from datumaro.components.annotation import AnnotationType, Mask
    from datumaro.components.dataset import Dataset

    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(tmp_path / "task")
    dataset = Dataset.import_from(str(tmp_path / "task"), "voc_segmentation")
    names = [label.name for label in dataset.categories()[AnnotationType.label]]
    item = dataset.get(stem)
    masks = [Mask(image=truth == object_id, label=names.index(f"object {object_id}"))
             for object_id in np.unique(truth) if object_id not in (0, 255)]
    dataset.put(item.wrap(annotations=masks))
    dataset.export(str(tmp_path / "corrected"), "voc_segmentation", save_media=False)
    corrected = tmp_path / "corrected.zip"
    with zipfile.ZipFile(corrected, "w") as archive:
        for path in sorted((tmp_path / "corrected").rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(tmp_path / "corrected").as_posix())
    return corrected


def test_round_trip_export_correct_import_update_equals_a_full_run(clip, tmp_path):
    clip_dir, keys = clip
    fresh(clip_dir, keys, tmp_path / "out", "--no-refine")
    export(tmp_path / "out", tmp_path / "cvat", "cvat", name="out")
    truth = np.array(Image.open(clip_dir / "labels" / "00015.png"))
    assert not np.array_equal(truth, np.array(Image.open(tmp_path / "out" / "labels" / "00015.png")))
    corrected = cvat_correction(tmp_path / "cvat" / "out.zip", "00015", truth, tmp_path)

    code, output = run_cli("import", corrected, tmp_path / "out", "-k", keys)
    assert code == 0, output
    assert "00015" in output and sorted(p.name for p in keys.iterdir()) == [f"{k:05d}.png" for k in (0, 10, 15, 20, 30)]
    imported = Image.open(keys / "00015.png")
    assert imported.mode == "P" and np.array_equal(np.array(imported), truth)   # the clip's format and ids

    code, output = run_cli("propagate", "-v", clip_dir / "frames", "-k", keys, "-o", tmp_path / "out",
                           "--no-refine", "--update")
    assert code == 0, output
    assert "update: 2 segments to compute, 2 kept (18 frames)" in output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["update"]["recomputed"] == [["00010", "00015"], ["00015", "00020"]]
    assert manifest["update"]["reused_frames"] == 18 and manifest["update"]["recomputed_frames"] == 8
    assert results(tmp_path / "out") == fresh(clip_dir, keys, tmp_path / "full", "--no-refine")


def test_update_after_a_corrected_and_a_removed_keyframe_is_byte_identical(clip, tmp_path):
    clip_dir, keys = clip
    fresh(clip_dir, keys, tmp_path / "out", "--no-refine")
    label = np.array(Image.open(keys / "00010.png"))
    palette = Image.open(keys / "00010.png").getpalette()
    label[:6] = 0                                                     # a corrected keyframe
    image = Image.fromarray(label, mode="L")
    image.putpalette(palette)
    image.save(keys / "00010.png")
    (keys / "00030.png").unlink()                                     # a keyframe taken out
    code, output = run_cli("propagate", "-v", clip_dir / "frames", "-k", keys, "-o", tmp_path / "out",
                           "--no-refine", "--update", "-q")
    assert code == 0, output
    update = json.loads((tmp_path / "out" / "manifest.json").read_text())["update"]
    assert update["recomputed"] == [["00000", "00010"], ["00010", "00020"], ["00020", "00030"]]
    assert update["reused_segments"] == 0
    assert results(tmp_path / "out") == fresh(clip_dir, keys, tmp_path / "full", "--no-refine")


def test_update_with_the_refiner_reruns_every_segment_on_the_cached_flow(clip, tmp_path):
    clip_dir, keys = clip
    cache = tmp_path / "flow"
    fresh(clip_dir, keys, tmp_path / "out", "--flow-cache", cache)
    shutil.copy(clip_dir / "labels" / "00015.png", keys)
    code, output = run_cli("propagate", "-v", clip_dir / "frames", "-k", keys, "-o", tmp_path / "out",
                           "--flow-cache", cache, "--update")
    assert code == 0, output
    assert "update: the refiner learns from every keyframe, so every segment is refined again; a full run" in output
    update = json.loads((tmp_path / "out" / "manifest.json").read_text())["update"]
    assert update["recomputed"] == "all segments"
    entries = sorted(cache.rglob("*.npy"))
    assert len(entries) == 30                                          # no flow was computed twice
    assert results(tmp_path / "out") == fresh(clip_dir, keys, tmp_path / "full")


def test_update_with_other_settings_is_a_full_run_and_says_so(clip, tmp_path):
    clip_dir, keys = clip
    fresh(clip_dir, keys, tmp_path / "out", "--no-refine")
    shutil.copy(clip_dir / "labels" / "00015.png", keys)
    code, output = run_cli("propagate", "-v", clip_dir / "frames", "-k", keys, "-o", tmp_path / "out",
                           "--no-refine", "--fusion", "distance", "--update")
    assert code == 0, output
    assert "update: other settings than OUT's (fusion)" in output
    assert results(tmp_path / "out") == fresh(clip_dir, keys, tmp_path / "full", "--no-refine",
                                              "--fusion", "distance")
    # the refiner switched on: other settings too
    code, output = run_cli("propagate", "-v", clip_dir / "frames", "-k", keys, "-o", tmp_path / "out",
                           "--no-adapt", "--update")
    assert code == 0 and "update: other settings than OUT's (fusion, refiner)" in output, output
    # frames touched since (another modification time): a full run
    fresh(clip_dir, keys, tmp_path / "out", "--no-refine", "--overwrite")
    frame = clip_dir / "frames" / "00003.png"
    frame.write_bytes(frame.read_bytes())
    code, output = run_cli("propagate", "-v", clip_dir / "frames", "-k", keys, "-o", tmp_path / "out",
                           "--no-refine", "--update")
    assert code == 0 and "OUT was made from other frames or labels (frames_digest)" in output, output
    # with no results in OUT, --update is a plain run
    code, output = run_cli("propagate", "-v", clip_dir / "frames", "-k", keys, "-o", tmp_path / "new",
                           "--no-refine", "--update")
    assert code == 0 and "update: OUT holds no results; a full run" in output
    assert "update" not in json.loads((tmp_path / "new" / "manifest.json").read_text())


def _zip_with(source: Path, target: Path, change) -> Path:
    """A copy of a zip with `change(name, data) -> (name, data) or None` applied to every member."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            changed = change(name, old.read(name))
            if changed is not None:
                new.writestr(*changed)
    return target


def _png(array: np.ndarray, like: bytes) -> bytes:
    import io

    original = Image.open(io.BytesIO(like))
    image = Image.fromarray(array, mode="L")
    image.putpalette(original.getpalette())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("problem, message", [
    ("unknown name", "label 'cat' is not a class of this clip"),
    ("other size", "mask is 32x48 but the clip's frames are 64x48"),
    ("not in clip", "frame '00099' is not in the clip"),
    ("unknown colour", "is no label of labelmap.txt"),
])
def test_import_refuses_what_it_cannot_map_with_one_line_and_writes_nothing(clip, tmp_path, problem, message):
    clip_dir, keys = clip
    fresh(clip_dir, keys, tmp_path / "out", "--no-refine")
    export(tmp_path / "out", tmp_path / "cvat", "cvat", name="out")

    def change(name, data):
        if problem == "unknown name" and name == "labelmap.txt":
            return name, data.replace(b"object 2:", b"cat:")
        if name == "SegmentationClass/00015.png":
            mask = np.array(Image.open(__import__("io").BytesIO(data)))
            if problem == "other size":
                return name, _png(mask[:, :32].copy(), data)
            if problem == "not in clip":
                return "SegmentationClass/00099.png", data
            if problem == "unknown colour":
                mask[0, 0] = 9
                return name, _png(mask, data)
        return name, data

    broken = _zip_with(tmp_path / "cvat" / "out.zip", tmp_path / "broken.zip", change)
    before = sorted(p.name for p in keys.iterdir())
    code, output = run_cli("import", broken, tmp_path / "out", "-k", keys)
    lines = output.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "broken.zip" in lines[0], output
    assert message in lines[0]
    assert sorted(p.name for p in keys.iterdir()) == before            # nothing written, no staging left


def test_import_of_label_pngs_and_replacing_a_keyframe_needs_overwrite(clip, tmp_path):
    clip_dir, keys = clip
    fresh(clip_dir, keys, tmp_path / "out", "--no-refine")
    corrected = tmp_path / "corrected"
    corrected.mkdir()
    for stem in ("00005", "00010"):
        shutil.copy(clip_dir / "labels" / f"{stem}.png", corrected)
    code, output = run_cli("import", corrected, tmp_path / "out", "-k", keys)
    assert code == 2 and "00010.png" in output and "--overwrite" in output
    assert not (keys / "00005.png").exists()
    code, output = run_cli("import", corrected, tmp_path / "out", "-k", keys, "--overwrite")
    assert code == 0, output
    assert (keys / "00005.png").read_bytes() != b"" and sorted(p.name for p in keys.iterdir()) == [
        "00000.png", "00005.png", "00010.png", "00020.png", "00030.png"]
    # a mask of another size in the folder
    Image.fromarray(np.zeros((10, 10), np.uint8), mode="P").save(corrected / "00007.png")
    code, output = run_cli("import", corrected, tmp_path / "out", "-k", keys, "--overwrite")
    assert code == 2 and "00007.png" in output and "10x10" in output and not (keys / "00007.png").exists()


def test_suggest_from_a_refined_output_agrees_with_suggest_from_its_keyframes(clip, tmp_path):
    clip_dir, keys = clip
    fresh(clip_dir, keys, tmp_path / "out")                         # refined: its confidence is the refiner's
    stems = {}
    for mode in (("-k", keys), ("--from", tmp_path / "out")):
        code, output = run_cli("suggest", "-v", clip_dir / "frames", *mode, "--add", 3, "--json", "-q")
        assert code == 0, output
        stems[mode[0]] = [frame["stem"] for frame in json.loads(output)["suggested"]]
    assert stems["-k"] == stems["--from"] and len(stems["-k"]) == 3


def test_batch_resume_updates_a_clip_whose_keyframes_changed(tmp_path):
    dataset = tmp_path / "dataset"
    for name, seed in (("a", 1), ("b", 2)):
        folder = write_clip(make_clip(n_frames=21, height=48, width=64, n_objects=2, seed=seed), dataset / name,
                            label_format="palette")
        (folder / "all").mkdir()
        for path in (folder / "labels").iterdir():
            path.rename(folder / "all" / path.name)
        for k in (0, 10, 20):
            shutil.copy(folder / "all" / f"{k:05d}.png", folder / "labels")
    code, output = run_cli("batch", dataset, "-o", tmp_path / "out", "--no-refine", "-q")
    assert code == 0, output
    shutil.copy(dataset / "a" / "all" / "00005.png", dataset / "a" / "labels")
    code, output = run_cli("batch", dataset, "-o", tmp_path / "out", "--no-refine", "--resume", "-q")
    assert code == 0, output
    report = {json.loads(line)["clip"]: json.loads(line) for line in (tmp_path / "out" / "batch-report.jsonl").open()}
    assert report["a"]["status"] == "ok" and report["b"]["status"] == "skipped"
    update = json.loads((tmp_path / "out" / "a" / "manifest.json").read_text())["update"]
    assert update["recomputed"] == [["00000", "00005"], ["00005", "00010"]] and update["reused_frames"] == 9
    code, output = run_cli("batch", dataset, "-o", tmp_path / "full", "--no-refine", "-q")
    assert code == 0, output
    assert results(tmp_path / "out" / "a") == results(tmp_path / "full" / "a")


def test_flow_cache_counts_no_misses_on_a_geometry_update(clip, tmp_path):
    clip_dir, keys = clip
    cache = FlowCache(tmp_path / "flow")
    run_clip(clip_dir / "frames", keys, tmp_path / "out", flow_cache=cache)
    shutil.copy(clip_dir / "labels" / "00015.png", keys)
    cache = FlowCache(tmp_path / "flow")
    run_clip(clip_dir / "frames", keys, tmp_path / "out", flow_cache=cache, update=True)
    assert (cache.hits, cache.misses) == (10, 0)                      # only segment 10..20's flow was needed


def test_loop_bench_runs_the_loop_and_the_update_equals_the_full_run(tmp_path):
    from autolabel.loop.loop_bench import run, table

    clip_dir = write_clip(make_clip(n_frames=31, height=48, width=64, n_objects=2, seed=5), tmp_path / "clip",
                          label_format="palette")
    (tmp_path / "work").mkdir()
    result = run(clip_dir, 10, 3, False, None, tmp_path / "work")
    assert result["identical"] and len(result["fixed"]) == 3 and result["J_after"] > result["J_before"]
    assert list(result["steps"]) == ["propagate", "review", "export", "import", "update", "review again",
                                     "full run (reference)"]
    assert "update / full run" in table(result)
