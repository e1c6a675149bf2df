"""Progress for long work: a rich bar on a terminal, plain log lines elsewhere (CI logs stay clean)."""
from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

console = Console(stderr=True)  # messages and progress: stderr, so stdout stays clean for --json
# Tables are results: stdout, wide enough for a log file or a pipe, not squeezed to 80 columns.
tables = Console(width=None if sys.stdout.isatty() else 160)


class Reporter:
    """`say` for one-off messages, `frames(done, total)` as work advances."""

    def __init__(self, description: str, quiet: bool = False, log_every_s: float = 10.0):
        self.description, self.quiet, self.log_every_s = description, quiet, log_every_s
        self._bar = None
        self._task = None
        self._last_log = 0.0

    def __enter__(self) -> "Reporter":
        if not self.quiet and console.is_terminal:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=console, transient=False)
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def say(self, message: str) -> None:
        if not self.quiet:
            console.print(message, highlight=False, soft_wrap=True)

    def frames(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task(self.description, total=total)
            self._bar.update(self._task, completed=done)
            return
        now = time.monotonic()
        if done == total or now - self._last_log >= self.log_every_s:
            self._last_log = now
            print(f"{self.description}: {done}/{total}", file=sys.stderr, flush=True)
