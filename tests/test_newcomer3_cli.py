"""Newcomer pass 3 (issue 20): the install (every import declared), usage errors, silent surprises
(sections 1 and 3) and messages (section 4). Each test failed before its fix."""
import ast
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autolabel.synth import make_clip, write_clip
from conftest import make_keyframes, run_cli

ROOT = Path(__file__).resolve().parents[1]


# ---- 1: every import of autolabel/ is declared in pyproject.toml, or in the standard library ------

# Import names that differ from the distribution that provides them.
DISTRIBUTION = {"cv2": "opencv-python-headless", "PIL": "pillow", "yaml": "pyyaml", "sklearn": "scikit-learn"}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    return {_normalized(re.match(r"[A-Za-z0-9._-]+", requirement).group()) for requirement in requirements}


def _catches_import_error(node: ast.Try) -> bool:
    names = set()
    for handler in node.handlers:
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names.update(kind.id for kind in kinds if isinstance(kind, ast.Name))
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def _imports(node, guarded: bool, found: list) -> None:
    """(module, guarded, node) of every absolute import under `node`; guarded: in the body of a try that
    catches ImportError, i.e. the code copes without the module (an optional extra)."""
    if isinstance(node, ast.Try):
        for statement in node.body:
            _imports(statement, guarded or _catches_import_error(node), found)
        for part in (*node.handlers, *node.orelse, *node.finalbody):
            _imports(part, guarded, found)
        return
    if isinstance(node, ast.Import):
        found.extend((alias.name.split(".")[0], guarded, node) for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        found.append((node.module.split(".")[0], guarded, node))
    for child in ast.iter_child_nodes(node):
        _imports(child, guarded, found)


def test_every_import_is_declared_or_in_the_standard_library():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = _requirement_names(project["dependencies"])
    # the extras the package itself may use, guarded ("test" is the tests' own)
    optional = set().union(*(_requirement_names(names) for extra, names in project["optional-dependencies"].items()
                             if extra != "test"))
    problems, used = [], set()
    for path in sorted((ROOT / "autolabel").rglob("*.py")):
        found = []
        _imports(ast.parse(path.read_text(), str(path)), False, found)
        for module, guarded, node in found:
            if module in sys.stdlib_module_names or module == "autolabel":
                continue
            distribution = _normalized(DISTRIBUTION.get(module, module))
            used.add(distribution)
            where = f"{path.relative_to(ROOT)}:{node.lineno}: {module}"
            if distribution in required:
                continue
            if distribution in optional and not guarded:
                problems.append(f"{where} is an optional extra: import it in a try that catches ImportError")
            elif distribution not in optional:
                problems.append(f"{where} ({distribution}) is not declared in pyproject.toml's dependencies")
    assert not problems, "\n".join(problems)
    # and nothing is installed that the code never imports
    assert required <= used, f"declared but never imported: {sorted(required - used)}"


# ---- 1: a usage error is one usage line and exit 2, not an internal error -------------------------

@pytest.mark.parametrize("args", [
    ["propagate", "-v", "{frames}", "-k", "{keys}", "--threads", "0"],
    ["propagate", "-v", "{frames}", "-k", "{keys}", "--flow", "banana"],
    ["propagate", "-v", "{frames}", "-k", "{keys}", "--bogus"],
    ["propagate", "-v", "{frames}"],
    ["frobnicate"],
    ["train", "{frames}", "--steps", "0"],
], ids=["threads-0", "flow-banana", "bogus", "missing-k", "frobnicate", "train-steps-0"])
def test_usage_errors_exit_2_with_one_usage_line(small_clip, tmp_path, args):
    args = [arg.format(frames=small_clip / "frames", keys=small_clip / "keyframes") for arg in args]
    code, output = run_cli(*args, "-o", tmp_path / "out") if args[0] == "propagate" else run_cli(*args)
    assert code == 2, output
    assert "internal error" not in output and sum(line.startswith("Usage:") for line in output.splitlines()) == 1, output
    assert not (tmp_path / "out").exists()


# ---- 3: silent surprises ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def other_clip(tmp_path_factory):
    """Another clip with the same frame names as small_clip (as two videos' frames are named)."""
    root = tmp_path_factory.mktemp("other")
    write_clip(make_clip(n_frames=16, height=64, width=96, n_objects=2, seed=4), root / "clip", label_format="palette")
    make_keyframes(root / "clip", 5)
    return root / "clip"


def _files(folder: Path) -> dict:
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_update_refuses_the_results_of_another_clip_without_overwrite(small_clip, other_clip, tmp_path):
    out = tmp_path / "out"
    assert run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes", "-o", out,
                   "--no-refine", "-q")[0] == 0
    before = _files(out)
    code, output = run_cli("propagate", "-v", other_clip / "frames", "-k", other_clip / "keyframes", "-o", out,
                           "--no-refine", "--update", "-q")
    assert code == 2 and "holds the results of other frames" in output and "--overwrite" in output, output
    assert output.count("error:") == 1 and _files(out) == before
    code, output = run_cli("propagate", "-v", other_clip / "frames", "-k", other_clip / "keyframes", "-o", out,
                           "--no-refine", "--update", "--overwrite", "-q")
    assert code == 0, output
    assert json.loads((out / "manifest.json").read_text())["video"] == str(other_clip / "frames")


def test_train_refuses_an_existing_output_without_overwrite(small_clip, tmp_path):
    weights = tmp_path / "refiner.pt"
    weights.write_bytes(b"earlier weights")
    code, output = run_cli("train", small_clip.parent, "-o", weights, "--steps", "1", "--from-scratch")
    assert code == 2 and f"{weights}: already exists; pass --overwrite" in output, output
    assert weights.read_bytes() == b"earlier weights"
    code, output = run_cli("train", small_clip.parent, "-o", weights, "--classic")
    assert code == 2 and "already exists" in output and weights.read_bytes() == b"earlier weights"


def test_suggest_from_a_stale_out_is_refused(small_clip, tmp_path):
    keys, out = tmp_path / "keys", tmp_path / "out"
    shutil.copytree(small_clip / "keyframes", keys)
    assert run_cli("propagate", "-v", small_clip / "frames", "-k", keys, "-o", out, "--no-refine", "-q")[0] == 0
    suggest = ["suggest", "-v", small_clip / "frames", "--from", out, "--add", 2, "-q"]
    assert run_cli(*suggest)[0] == 0  # current: fine
    shutil.copy(small_clip / "labels" / "00007.png", keys)  # a frame labeled since
    code, output = run_cli(*suggest)
    assert code == 2 and "is stale" in output and "added 00007" in output and "--update" in output, output
    (keys / "00007.png").unlink()
    shutil.copy(small_clip / "labels" / "00006.png", keys / "00005.png")  # a keyframe corrected since
    for extra in ([], ["-k", keys]):
        code, output = run_cli(*suggest, *extra)
        assert code == 2 and "changed 00005" in output, output


@pytest.mark.parametrize("options", [["--refiner", "classic"], ["--no-adapt"]])
def test_adapt_steps_that_would_do_nothing_is_a_usage_error(small_clip, tmp_path, options):
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes",
                           "-o", tmp_path / "out", "--adapt-steps", "5", *options)
    assert code == 2 and "--adapt-steps" in output and "does nothing" in output, output
    assert not (tmp_path / "out").exists()


def test_a_device_is_not_checked_when_nothing_uses_it(small_clip, tmp_path):
    # cuda:99: missing on any machine, and refused before the fix even with --no-refine
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes",
                           "-o", tmp_path / "out", "--no-refine", "--device", "cuda:99", "-q")
    assert code == 0, output
    code, output = run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes",
                           "-o", tmp_path / "refined", "--refiner", "default", "--device", "cuda:99", "-q")
    assert code == 2 and not (tmp_path / "refined").exists(), output  # with a refiner it still is


# ---- 4: messages and help -------------------------------------------------------------------------

def test_contact_sheet_headings_fit_the_sheet_without_gt(small_clip, tmp_path):
    out = tmp_path / "out"
    assert run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes", "-o", out,
                   "--no-refine", "-q")[0] == 0
    code, output = run_cli("review", out, "-n", "2", "-q")  # 16 frames, 2 a section: "frames at least 4 apart"
    assert code == 0, output
    sheet = np.asarray(Image.open(out / "review" / "contact-sheet.png").convert("RGB"))
    assert (sheet[:, -6:] == 255).all()  # nothing runs into the right margin: no heading is cut off


def test_batch_takes_threads_and_color_table_for_every_clip(small_clip, tmp_path, monkeypatch):
    from autolabel.datasets import batch as batch_module

    code, output = run_cli("batch", "--help")
    assert "--threads" in output and "--color-table" in output
    data = tmp_path / "data"
    shutil.copytree(small_clip, data / "clip", ignore=shutil.ignore_patterns("keyframes"))
    table = tmp_path / "colors.csv"
    table.write_text("0,0,0,0\n1,128,0,0\n2,0,128,0\n")
    seen = []

    def run_clip(*args, **kwargs):
        seen.append(kwargs)
        return run_clip_before(*args, **kwargs)

    run_clip_before = batch_module.run_clip
    monkeypatch.setattr(batch_module, "run_clip", run_clip)
    code, output = run_cli("batch", data, "-o", tmp_path / "out", "--keyframe-every", "5", "--no-refine",
                           "--threads", "1", "--color-table", table, "-q")
    assert code == 0, output
    assert [(kwargs["threads"], kwargs["color_table"]) for kwargs in seen] == [(1, table.absolute())]
    code, output = run_cli("batch", data, "-o", tmp_path / "out2", "--no-refine", "--color-table", tmp_path / "no.csv")
    assert code == 2 and "no.csv" in output and not (tmp_path / "out2").exists(), output


def test_import_says_1_corrected_frame(small_clip, tmp_path):
    out, keys, corrected = tmp_path / "out", tmp_path / "keys", tmp_path / "corrected"
    shutil.copytree(small_clip / "keyframes", keys)
    assert run_cli("propagate", "-v", small_clip / "frames", "-k", keys, "-o", out, "--no-refine", "-q")[0] == 0
    corrected.mkdir()
    shutil.copy(small_clip / "labels" / "00007.png", corrected)
    code, output = run_cli("import", corrected, out, "-k", keys)
    assert code == 0 and "wrote 1 corrected frame to" in output, output


def test_no_rate_or_time_left_until_a_few_frames_are_done(monkeypatch, capsys):
    from autolabel import progress

    clock = iter([100.0, 112.0, 124.0, 136.0])  # the first frame after a slow start, then 1 frame/s
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    reporter = progress.Reporter("propagating", log_every_s=10)
    for done in (1, 2, 14, 26):
        reporter.frames(done, 90)
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == ["propagating: 1/90", "propagating: 2/90"], lines  # was "0.1/s, 17m36s left" after 2
    assert lines[2:] == ["propagating: 14/90, 0.5/s, 2m20s left", "propagating: 26/90, 0.7/s, 1m32s left"], lines
