"""Progress for long work: a rich bar on a terminal, plain log lines elsewhere (CI logs stay clean)."""
from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

console = Console(stderr=True)  # messages and progress: stderr, so stdout stays clean for --json
# Tables are results: stdout, wide enough for a log file or a pipe, not squeezed to 80 columns.
tables = Console(width=None if sys.stdout.isatty() else 160)


# No rate or time left until this many items are done since the first report, and a tenth of the work
# or 30 s have passed: the first items carry the start (a segment's backward flow comes before its first
# frame, resumed work arrives at once), and an estimate from them was 10m31s for a 90 s run (issue 20).
ESTIMATE_AFTER_ITEMS, ESTIMATE_AFTER_SHARE, ESTIMATE_AFTER_S = 5, 0.1, 30.0


def estimable(done: int, total: int, seconds: float) -> bool:
    """Whether `done` items (since the first report), `seconds` after it, make a fair estimate."""
    return done >= ESTIMATE_AFTER_ITEMS and (done >= ESTIMATE_AFTER_SHARE * total or seconds >= ESTIMATE_AFTER_S)


def _fair(task) -> bool:
    """A bar's task has a fair rate: counted from its first report (`first`: the items done then)."""
    return bool(task.speed) and estimable(task.completed - task.fields.get("first", 0), task.total or 0,
                                          task.elapsed or 0)


class RateColumn(ProgressColumn):
    """Items per second (frames, clips, steps), once there is a fair rate."""

    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f}/s" if _fair(task) else "", style="progress.data.speed")


class LeftColumn(TimeRemainingColumn):
    """'1m05s left', once there is a fair rate."""

    def render(self, task) -> Text:
        if not _fair(task):
            return Text("")
        left = super().render(task)
        return Text(f"{left.plain} left", style=left.style)


def counted(number: int, noun: str) -> str:
    """'1 frame', '2 frames'."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class Reporter:
    """`say` for one-off messages, `frames(done, total)` as work advances."""

    def __init__(self, description: str, quiet: bool = False, log_every_s: float = 10.0):
        self.description, self.quiet, self.log_every_s = description, quiet, log_every_s
        self._bar = None
        self._task = None
        self._last_log = 0.0
        self._first: tuple[float, int] | None = None  # (time, done) at the first report: the rate's start

    def __enter__(self) -> "Reporter":
        if not self.quiet and console.is_terminal:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                                 LeftColumn(), console=console, transient=False)
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
                # the work done before the first report (results reused) is no part of the rate
                self._task = self._bar.add_task(self.description, total=total, completed=done, first=done)
            self._bar.update(self._task, completed=done)
            return
        now = time.monotonic()
        if self._first is None:
            self._first = (now, done)
        if done == total or now - self._last_log >= self.log_every_s:
            self._last_log = now
            line = f"{self.description}: {done}/{total}"
            started, done_then = self._first
            if done > done_then and now > started and estimable(done - done_then, total, now - started):
                rate = (done - done_then) / (now - started)
                line += f", {rate:.1f}/s" + (f", {duration((total - done) / rate)} left" if done < total else "")
            print(line, file=sys.stderr, flush=True)
