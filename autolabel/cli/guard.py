"""How every command ends when something goes wrong, in one place: `InputError` (or a full disk,
errors.input_error) is bad input (one line, exit 2); any other exception is our bug (one line that
says so, exit 1; the traceback with --debug or AUTOLABEL_DEBUG=1); Ctrl-C and SIGTERM stop the work
and say what is on disk (`interrupted`, exit 130 or 143). Batch workers word a clip's failure the
same way (errors.describe)."""
from __future__ import annotations

import os
import signal
import sys

import typer
from rich.text import Text

from ..errors import DEBUG_VARIABLE, describe, input_error
from ..progress import console

# typer's own exceptions: usage errors (TyperException, exit 2 with typer's usage line), --help's exit
# and Ctrl-C's abort end as typer ends them. typer carries its own click since 0.29; never import click.
PASS_THROUGH = (typer.Exit, typer.TyperException, typer.Abort, KeyboardInterrupt, SystemExit)


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, a cancelled CI job, `kill`) is stopped as Ctrl-C is: a KeyboardInterrupt,
    so that every command's Ctrl-C clean-up runs; it ends with 143 (128 + SIGTERM) instead of 130."""


def _terminate(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: a second must not cut the clean-up short
    raise Terminated


def _on_signal(number, handler):
    """Set a signal's handler; returns the previous one. Only the main thread may (an app invoked from
    another thread keeps the default)."""
    try:
        return signal.signal(number, handler) if handler is not None else None
    except ValueError:
        return None


def interrupted(what_remains: str | None = None) -> None:
    """Ctrl-C or SIGTERM: one line saying what is on disk now, exit code 128 + the signal's number
    (130, 143), as shells expect. Call it while handling the KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the work is stopped and cleaned up: a second Ctrl-C has nothing to do
    by_term = isinstance(sys.exc_info()[1], Terminated)
    line = "terminated" if by_term else "interrupted"
    console.print(line + (f": {what_remains}" if what_remains else ""), highlight=False, markup=False,
                  soft_wrap=True)
    raise typer.Exit(128 + (signal.SIGTERM if by_term else signal.SIGINT))


def fail(error: Exception) -> None:
    """One line, exit code 2: the contract for bad input."""
    console.print(Text.assemble(("error: ", "red"), str(error)), soft_wrap=True)
    raise typer.Exit(2)


def internal_error(error: Exception) -> None:
    """One line (with --debug, the traceback too), exit code 1: not the user's fault."""
    console.print(Text(describe(error), style="red"), soft_wrap=True)
    raise typer.Exit(1)


def guarded(invoke, ctx):
    """Run the command line; restores AUTOLABEL_DEBUG afterwards (--debug sets it so that worker
    processes see it), so in-process callers such as tests are not left in debug mode."""
    before = os.environ.get(DEBUG_VARIABLE)
    term_before = _on_signal(signal.SIGTERM, _terminate)
    try:
        return invoke(ctx)
    except Terminated:   # a command without a Ctrl-C clean-up of its own
        interrupted()
    except PASS_THROUGH:
        raise
    except Exception as error:  # noqa: BLE001 - bad input says so; everything else is a bug of ours, and says so
        bad = input_error(error)
        if bad is None:
            internal_error(error)
        fail(bad)
    finally:
        _on_signal(signal.SIGTERM, term_before)
        if before is None:
            os.environ.pop(DEBUG_VARIABLE, None)
        else:
            os.environ[DEBUG_VARIABLE] = before
