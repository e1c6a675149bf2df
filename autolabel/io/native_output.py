"""Native libraries (FFmpeg inside OpenCV) write their own lines to the process's stderr, past
Python. `captured_stderr` catches them around one call, so that a caller can fold what matters
into its own one-line message instead of leaving stray lines on the user's terminal."""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager


@contextmanager
def captured_stderr():
    """Yields a list that holds, after the block, the lines native code wrote to file descriptor 2."""
    lines: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded, closed): nothing to catch
        yield lines
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(line for line in sink.read().decode(errors="replace").splitlines() if line.strip())
