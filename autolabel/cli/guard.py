"""How every command ends when something goes wrong, in one place: `InputError` (or a full disk,
errors.input_error) is bad input (one line, exit 2); any other exception is our bug (one line that says so, exit 1; the
traceback with --debug or AUTOLABEL_DEBUG=1). Batch workers word a clip's failure the same way
(errors.describe)."""
from __future__ import annotations

import os

import typer
from rich.text import Text

from ..errors import DEBUG_VARIABLE, describe, input_error
from ..progress import console

# typer's own exceptions: usage errors (TyperException, exit 2 with typer's usage line), --help's exit
# and Ctrl-C's abort end as typer ends them. typer carries its own click since 0.29; never import click.
PASS_THROUGH = (typer.Exit, typer.TyperException, typer.Abort, KeyboardInterrupt, SystemExit)


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
    try:
        return invoke(ctx)
    except PASS_THROUGH:
        raise
    except Exception as error:  # noqa: BLE001 - bad input says so; everything else is a bug of ours, and says so
        bad = input_error(error)
        if bad is None:
            internal_error(error)
        fail(bad)
    finally:
        if before is None:
            os.environ.pop(DEBUG_VARIABLE, None)
        else:
            os.environ[DEBUG_VARIABLE] = before
