import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autolabel.cli import app
from autolabel.synth import make_clip, write_clip

SHARED_CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"


# The suite leaves nothing in the temp folder: Ray's session files go to a folder of this run
# (short: Ray's socket paths must stay under 107 bytes), removed at the end; pytest's own folders
# are removed when every test passed (tmp_path_retention_policy in pyproject.toml), and so is its
# per-user folder once nothing else is in it.
def pytest_configure(config):
    if "RAY_TMPDIR" not in os.environ:
        config.stash[RAY_TMPDIR] = os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="autolabel-ray-")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    basetemp = getattr(session.config, "_tmp_path_factory", None) and session.config._tmp_path_factory._basetemp
    if basetemp is not None and not basetemp.exists():
        user_folder = basetemp.parent
        current = user_folder / "pytest-current"
        if current.is_symlink() and not current.exists():
            current.unlink(missing_ok=True)
        try:
            user_folder.rmdir()
        except OSError:  # other runs' folders are still there
            pass


def pytest_unconfigure(config):
    folder = config.stash.get(RAY_TMPDIR, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("RAY_TMPDIR", None)


RAY_TMPDIR = pytest.StashKey[str]()


def run_cli(*args):
    """Invoke the CLI in-process; returns (exit code, combined output). An interrupted command ignores a
    second Ctrl-C until it exits (cli/guard.interrupted); in-process the test run goes on, so SIGINT's
    handler is put back: processes started later would inherit an ignored SIGINT."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        result = CliRunner().invoke(app, [str(a) for a in args])
    finally:
        signal.signal(signal.SIGINT, handler)
    return result.exit_code, result.output


def make_keyframes(clip_dir: Path, every: int, into: Path | None = None) -> Path:
    """Copy every `every`-th label of a written clip into a keyframes folder."""
    keyframes = into or clip_dir / "keyframes"
    keyframes.mkdir(parents=True, exist_ok=True)
    for path in sorted((clip_dir / "labels").iterdir())[::every]:
        shutil.copy(path, keyframes / path.name)
    return keyframes


def write_slow_clip(root: Path, n_frames: int) -> Path:
    """A clip that takes seconds to propagate with Farneback flow (for Ctrl-C and SIGTERM tests): `n_frames`
    JPEG frames of 320x240 (12 distinct ones, repeated) in root/frames, frame 0's label in root/keys."""
    from PIL import Image

    clip = make_clip(n_frames=12, height=240, width=320, n_objects=2, seed=5)
    (root / "frames").mkdir()
    (root / "keys").mkdir()
    for index in range(n_frames):
        Image.fromarray(clip.frames[index % 12]).save(root / "frames" / f"{index:05d}.jpg", quality=90)
    Image.fromarray(clip.labels[0]).save(root / "keys" / "00000.png")
    return root


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory):
    """A 16-frame 64x96 synthetic clip on disk with keyframes every 5 frames."""
    root = tmp_path_factory.mktemp("small")
    clip = make_clip(n_frames=16, height=64, width=96, n_objects=2, seed=3)
    write_clip(clip, root / "clip", label_format="palette")
    make_keyframes(root / "clip", 5)
    return root / "clip"
