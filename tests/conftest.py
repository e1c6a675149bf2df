import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autolabel.cli import app
from autolabel.synth import make_clip, write_clip

SHARED_CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clips"


def run_cli(*args):
    """Invoke the CLI in-process; returns (exit code, combined output)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def make_keyframes(clip_dir: Path, every: int, into: Path | None = None) -> Path:
    """Copy every `every`-th label of a written clip into a keyframes folder."""
    keyframes = into or clip_dir / "keyframes"
    keyframes.mkdir(parents=True, exist_ok=True)
    for path in sorted((clip_dir / "labels").iterdir())[::every]:
        shutil.copy(path, keyframes / path.name)
    return keyframes


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory):
    """A 16-frame 64x96 synthetic clip on disk with keyframes every 5 frames."""
    root = tmp_path_factory.mktemp("small")
    clip = make_clip(n_frames=16, height=64, width=96, n_objects=2, seed=3)
    write_clip(clip, root / "clip", label_format="palette")
    make_keyframes(root / "clip", 5)
    return root / "clip"
