"""`autolabel export`: DAVIS, Cityscapes and CVAT layouts; the CVAT zip is read back with Datumaro,
the dataset library CVAT imports "Segmentation mask 1.1" with."""
import zipfile

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from autolabel.cli import app
from autolabel.io.labels import davis_palette
from autolabel.io.output import run_clip
from autolabel.interop.export import export
from autolabel.synth import make_clip, write_clip

SIZE = dict(height=48, width=64)


def cli(*args):
    result = CliRunner().invoke(app, [*map(str, args)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def propagated(root, label_format, seed=1, names=None, ignore_rows=0):
    """A propagated clip (keyframes 0 and 7 of 8 frames) in OUT = root/out; returns OUT."""
    clip = write_clip(make_clip(n_frames=8, seed=seed, **SIZE), root / "clip", label_format=label_format)
    frames = clip / "frames"
    if names:
        for index, name in enumerate(names):
            for folder in ("frames", "labels"):
                (clip / folder / f"{index:05d}.png").rename(clip / folder / f"{name}.png")
    stems = sorted(p.stem for p in frames.iterdir())
    keys = root / "keys"
    keys.mkdir()
    for stem in (stems[0], stems[-1]):
        original = Image.open(clip / "labels" / f"{stem}.png")
        label = np.array(original)
        label[:ignore_rows] = 255
        image = Image.fromarray(label)
        if original.mode == "P":
            image.putpalette(original.getpalette())
        image.save(keys / f"{stem}.png")
    assert run_clip(frames, keys, root / "out")["settings"]["label_format"] == {"gray": "ids"}.get(label_format,
                                                                                                   label_format)
    return root / "out"


def ours(out, stem):
    return np.array(Image.open(out / "labels" / f"{stem}.png"))


def datumaro_labels(zip_path, tmp_path):
    """{item id: HxW our ids} from Datumaro's VOC segmentation importer, naming ids by the labels' names."""
    pytest.importorskip("datumaro", reason="the interop extra: pip install -e '.[interop]'")
    from datumaro.components.annotation import AnnotationType
    from datumaro.components.dataset import Dataset

    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(folder)
    dataset = Dataset.import_from(str(folder), "voc_segmentation")
    names = [label.name for label in dataset.categories()[AnnotationType.label]]
    result = {}
    for item in dataset:
        canvas = np.full(item.annotations[0].image.shape, -1, np.int64)
        for mask in item.annotations:
            assert not (canvas[mask.image] >= 0).any(), "instances overlap"
            canvas[mask.image] = mask.label
        result[item.id] = canvas, names
    return result


def back_to_ids(canvas, names, background, binary=False):
    ids = np.full(canvas.shape, background, np.int64)
    for number, name in enumerate(names):
        if name != "background":
            ids[canvas == number] = 255 if binary else int(name.split()[-1])
    return ids


@pytest.mark.parametrize("label_format", ["palette", "binary", "gray"])
def test_cvat_zip_reads_back_in_datumaro_as_our_labels(tmp_path, label_format):
    out = propagated(tmp_path, label_format, ignore_rows=0 if label_format == "binary" else 6)
    assert export(out, tmp_path / "cvat", "cvat")["written"] == ["clip.zip"]
    with zipfile.ZipFile(tmp_path / "cvat" / "clip.zip") as archive:
        listed = sorted(archive.namelist())
        assert listed[:2] == ["ImageSets/Segmentation/default.txt", "SegmentationClass/00000.png"]
        assert "labelmap.txt" in listed and "SegmentationObject/00007.png" in listed
    imported = datumaro_labels(tmp_path / "cvat" / "clip.zip", tmp_path)
    assert sorted(imported) == [f"{i:05d}" for i in range(8)]
    for stem, (canvas, names) in imported.items():
        expected = ours(out, stem).astype(np.int64)
        if label_format == "gray":   # every class a label, unlabeled (the ignore id) one of its own
            assert (expected == 255).any() and not (canvas == -1).any() and "unlabeled 255" in names
            assert np.array_equal(back_to_ids(canvas, names, background=-1), expected)
        else:                        # objects: background and unlabeled are background
            expected[expected == (0 if label_format == "binary" else 255)] = 0
            assert np.array_equal(back_to_ids(canvas, names, 0, binary=label_format == "binary"), expected)
    assert names[0] == "background" and names[1] in ("object 1", "class 0")


def test_export_is_byte_identical_and_refuses_to_replace_without_overwrite(tmp_path):
    out = propagated(tmp_path, "palette")
    export(out, tmp_path / "a", "cvat")
    export(out, tmp_path / "b", "cvat")
    assert (tmp_path / "a" / "clip.zip").read_bytes() == (tmp_path / "b" / "clip.zip").read_bytes()
    before = (tmp_path / "a" / "clip.zip").stat().st_mtime_ns
    refused = cli("export", out, tmp_path / "a", "--to", "cvat")
    assert refused.exit_code == 2 and "--overwrite" in refused.output and "clip.zip" in refused.output
    assert (tmp_path / "a" / "clip.zip").stat().st_mtime_ns == before
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["clip.zip"]  # no staging left
    assert cli("export", out, tmp_path / "a", "--to", "cvat", "--overwrite", "-q").exit_code == 0
    wrong = cli("export", out, tmp_path / "c", "--to", "cityscapes")
    assert wrong.exit_code == 2 and "grayscale ids" in wrong.output and not (tmp_path / "c").exists()


def test_davis_export_of_binary_masks_is_object_1_with_the_davis_palette(tmp_path):
    out = propagated(tmp_path, "binary")
    assert cli("export", out, tmp_path / "davis", "--to", "davis", "-q").exit_code == 0
    files = sorted((tmp_path / "davis" / "clip").iterdir())
    assert [p.name for p in files] == [f"{i:05d}.png" for i in range(8)]
    for path in files:
        image = Image.open(path)
        assert image.mode == "P" and image.getpalette()[:768] == davis_palette()
        assert np.array_equal(np.array(image), (ours(out, path.stem) == 255).astype(np.uint8))


def test_cityscapes_export_of_a_batch_is_one_folder_of_gtfine_names(tmp_path):
    names = [f"ulm_000003_{i:06d}_leftImg8bit" for i in range(8)]
    out = propagated(tmp_path / "one", "gray", names=names)
    batch_out = tmp_path / "batch"
    (batch_out / "ulm_000003").parent.mkdir()
    out.rename(batch_out / "ulm_000003")
    assert cli("export", batch_out, tmp_path / "cs", "--to", "cityscapes", "-q").exit_code == 0
    written = sorted(p.name for p in (tmp_path / "cs").iterdir())
    assert written == [f"ulm_000003_{i:06d}_gtFine_labelIds.png" for i in range(8)]
    for i, name in enumerate(written):
        assert np.array_equal(np.array(Image.open(tmp_path / "cs" / name)), ours(batch_out / "ulm_000003", names[i]))
    export(batch_out, tmp_path / "train", "cityscapes", train_ids=True)
    label_ids = ours(batch_out / "ulm_000003", names[3])
    train_ids = np.array(Image.open(tmp_path / "train" / "ulm_000003_000003_gtFine_trainIds.png"))
    table = {0: 255, 1: 255, 2: 255, 3: 255, 4: 255, 5: 255, 6: 255, 7: 0, 8: 1, 9: 255, 10: 255, 11: 2}
    for label_id in np.unique(label_ids):
        assert set(np.unique(train_ids[label_ids == label_id])) == {table[int(label_id)]}


def test_export_of_a_folder_without_results_is_one_error_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("export", tmp_path / "empty", tmp_path / "x", "--to", "davis")
    assert result.exit_code == 2 and result.output.startswith("error: ") and len(result.output.splitlines()) == 1
    assert not (tmp_path / "x").exists()
