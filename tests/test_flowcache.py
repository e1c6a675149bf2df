import threading

import numpy as np
import pytest

from autolabel.datasets.flowcache import FlowCache
from autolabel.io.output import run_clip
from autolabel.synth import make_clip, write_clip

KEY = "dis-medium-1.0-opencv"


def _grays(seed: int = 0, shape=(16, 24)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 256, shape, dtype=np.uint8)


def _flows(shape=(16, 24), seed: int = 1):
    rng = np.random.default_rng(seed)
    forward = (rng.standard_normal((*shape, 2)) * 40).astype(np.float16)
    forward.flat[:4] = [np.inf, -np.inf, np.float16(6.1e-5), -0.0]  # extremes survive too
    return forward, (rng.standard_normal((*shape, 2)) * 40).astype(np.float16)


def test_round_trip_is_exact(tmp_path):
    cache = FlowCache(tmp_path)
    a, b = _grays()
    forward, backward = _flows()
    assert cache.load(a, b, KEY) is None
    cache.save(a, b, KEY, forward, backward)
    loaded = cache.load(a, b, KEY)
    assert loaded is not None
    for got, want in zip(loaded, (forward, backward)):
        assert got.dtype == np.float16 and got.tobytes() == want.tobytes()
    assert (cache.hits, cache.misses) == (1, 1)


def test_keyed_by_content_order_and_settings(tmp_path):
    cache = FlowCache(tmp_path)
    a, b = _grays()
    cache.save(a, b, KEY, *_flows())
    changed = b.copy()
    changed[0, 0] ^= 1
    assert cache.load(a, b.copy(), KEY) is not None          # same content, another array
    assert cache.load(a, changed, KEY) is None               # one pixel differs
    assert cache.load(b, a, KEY) is None                     # other order
    assert cache.load(a, b, "farneback-medium-1.0") is None  # other flow settings
    assert cache.load(a.reshape(24, 16), b.reshape(24, 16), KEY) is None  # same bytes, other shape


def test_entries_are_sharded_files_and_no_temporaries_stay(tmp_path):
    cache = FlowCache(tmp_path)
    for seed in range(3):
        cache.save(*_grays(seed), KEY, *_flows())
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert len(files) == 3
    assert all(len(f.parts) == 2 and f.name.startswith(f.parts[0]) and f.suffix == ".npy" for f in files)


def test_damaged_entry_is_a_miss_and_is_replaced(tmp_path):
    cache = FlowCache(tmp_path)
    a, b = _grays()
    path = cache.path(a, b, KEY)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x93NUMPY truncated")
    assert cache.load(a, b, KEY) is None
    cache.save(a, b, KEY, *_flows())
    assert cache.load(a, b, KEY) is not None


def test_concurrent_writers_of_one_entry(tmp_path):
    a, b = _grays()
    flows = _flows()
    threads = [threading.Thread(target=lambda: [FlowCache(tmp_path).save(a, b, KEY, *flows) for _ in range(20)])
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [p.suffix for p in tmp_path.rglob("*") if p.is_file()] == [".npy"]
    assert FlowCache(tmp_path).load(a, b, KEY)[0].tobytes() == flows[0].tobytes()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    root = write_clip(make_clip(n_frames=8, height=64, width=96, seed=3), tmp_path_factory.mktemp("clip"))
    keyframes = root / "keyframes"
    keyframes.mkdir()
    for name in ("00000.png", "00007.png"):
        (keyframes / name).write_bytes((root / "labels" / name).read_bytes())
    return root


def _outputs(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.png"))}


def test_second_run_computes_no_flow_and_matches_byte_for_byte(clip_dir, tmp_path):
    run_clip(clip_dir / "frames", clip_dir / "keyframes", tmp_path / "plain")
    first, second = FlowCache(tmp_path / "cache"), FlowCache(tmp_path / "cache")
    run_clip(clip_dir / "frames", clip_dir / "keyframes", tmp_path / "cold", flow_cache=first)
    run_clip(clip_dir / "frames", clip_dir / "keyframes", tmp_path / "warm", flow_cache=second)
    assert first.hits == 0 and first.misses == 7
    assert second.hits == 7 and second.misses == 0
    plain = _outputs(tmp_path / "plain")
    assert len(plain) == 16
    assert _outputs(tmp_path / "cold") == plain and _outputs(tmp_path / "warm") == plain
