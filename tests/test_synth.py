import numpy as np
import pytest
from PIL import Image

from autolabel.synth import SyntheticClip, davis_palette, make_clip, write_clip

SMALL = dict(n_frames=12, height=64, width=96)


@pytest.fixture(scope="module")
def clip() -> SyntheticClip:
    return make_clip(**SMALL, n_objects=3, seed=0)


@pytest.fixture(scope="module")
def translated() -> SyntheticClip:
    return make_clip(**SMALL, n_objects=3, seed=1, motion="translate", translate_step=(2, 1))


def _all_arrays(clip: SyntheticClip) -> list[np.ndarray]:
    return [*clip.frames, *clip.labels, *clip.occluded]


def test_same_seed_gives_identical_arrays(clip):
    again = make_clip(**SMALL, n_objects=3, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(_all_arrays(clip), _all_arrays(again)))


def test_different_seed_gives_different_clip(clip):
    other = make_clip(**SMALL, n_objects=3, seed=7)
    assert not np.array_equal(clip.frames[0], other.frames[0])
    assert not np.array_equal(clip.labels[0], other.labels[0])


def test_shapes_and_dtypes(clip):
    assert len(clip.frames) == len(clip.labels) == len(clip.occluded) == SMALL["n_frames"]
    size = (SMALL["height"], SMALL["width"])
    for frame, label, occluded in zip(clip.frames, clip.labels, clip.occluded):
        assert frame.shape == (*size, 3) and frame.dtype == np.uint8
        assert label.shape == size and label.dtype == np.uint8
        assert occluded.shape == size and occluded.dtype == bool


@pytest.mark.parametrize("seed", [0, 3])
def test_labels_in_range_and_every_object_appears(seed):
    clip = make_clip(**SMALL, n_objects=4, seed=seed)
    ids = np.unique(np.stack(clip.labels))
    assert ids.min() >= 0 and ids.max() <= 4
    assert set(range(5)) <= set(ids.tolist())


def test_frames_move_in_random_mode(clip):
    assert not np.array_equal(clip.labels[0], clip.labels[-1])


def test_translate_is_a_rigid_shift(translated):
    dx, dy = 2, 1
    for t in range(len(translated.frames) - 1):
        label_now, label_next = translated.labels[t], translated.labels[t + 1]
        assert np.array_equal(label_next[dy:, dx:], label_now[:-dy, :-dx])
        frame_now = translated.frames[t][:-dy, :-dx].astype(int)
        frame_next = translated.frames[t + 1][dy:, dx:].astype(int)
        difference = np.abs(frame_next - frame_now)
        assert difference.mean() < 3 and difference.max() <= 16  # two noise draws, sigma 1.5 each


def test_translate_occlusion_is_only_the_border_strips(translated):
    dx, dy = 2, 1
    for t, occluded in enumerate(translated.occluded):
        expected = np.zeros_like(occluded)
        if t > 0:  # entering at the top/left
            expected[:dy, :] = expected[:, :dx] = True
        if t + 1 < len(translated.occluded):  # leaving at the bottom/right
            expected[-dy:, :] = expected[:, -dx:] = True
        assert np.array_equal(occluded, expected)


def test_static_clip_does_not_move():
    clip = make_clip(**SMALL, seed=2, motion="static")
    assert all(np.array_equal(label, clip.labels[0]) for label in clip.labels)
    assert not any(occluded.any() for occluded in clip.occluded)
    assert np.abs(clip.frames[0].astype(int) - clip.frames[-1]).max() <= 16


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_objects_occlude_each_other_in_random_mode(seed):
    clip = make_clip(n_frames=30, height=96, width=128, n_objects=3, seed=seed)
    margin = 8  # beyond any camera/object motion, so border strips are excluded
    interior = [occluded[margin:-margin, margin:-margin] for occluded in clip.occluded]
    assert sum(int(region.sum()) for region in interior) > 200
    # Occlusion marks sit where an object meets something else, not in flat regions.
    inner = (slice(margin, -margin), slice(margin, -margin))
    for occluded, label in zip(clip.occluded[1:-1], clip.labels[1:-1]):
        near_edge = np.zeros_like(occluded)
        near_edge[:-1] |= label[:-1] != label[1:]
        near_edge[1:] |= label[:-1] != label[1:]
        near_edge[:, :-1] |= label[:, :-1] != label[:, 1:]
        near_edge[:, 1:] |= label[:, :-1] != label[:, 1:]
        assert (occluded & ~near_edge)[inner].mean() < 0.05


def test_davis_palette_starts_with_the_standard_colours():
    palette = davis_palette()
    assert len(palette) == 768
    assert palette[:15] == [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128]


@pytest.mark.parametrize("label_format", ["palette", "gray", "binary"])
def test_write_clip_round_trip(tmp_path, clip, label_format):
    root = write_clip(clip, tmp_path / "clip", label_format=label_format)
    assert root == tmp_path / "clip"
    frame_files = sorted((root / "frames").glob("*.png"))
    label_files = sorted((root / "labels").glob("*.png"))
    assert [p.name for p in frame_files] == [f"{i:05d}.png" for i in range(len(clip.frames))]
    assert [p.name for p in label_files] == [p.name for p in frame_files]

    with Image.open(frame_files[3]) as image:
        assert image.mode == "RGB"
        assert np.array_equal(np.asarray(image), clip.frames[3])
    with Image.open(label_files[3]) as image:
        label = np.asarray(image)
        expected_mode = "P" if label_format == "palette" else "L"
        assert image.mode == expected_mode
        if label_format == "palette":
            assert image.getpalette()[:12] == davis_palette()[:12]
    expected = np.where(clip.labels[3] > 0, 255, 0) if label_format == "binary" else clip.labels[3]
    assert np.array_equal(label, expected)


def test_rejects_unknown_options(tmp_path, clip):
    with pytest.raises(ValueError):
        make_clip(**SMALL, motion="wobble")
    with pytest.raises(ValueError):
        write_clip(clip, tmp_path, label_format="jpeg")
