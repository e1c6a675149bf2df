"""Bad input versus our own bugs: `InputError` is the one exception the CLI reports as the
user's problem (one line, exit 2), and a full disk is one (`writing`, `input_error`); anything
else is an internal error (one line saying so, exit 1, the traceback with --debug or
AUTOLABEL_DEBUG=1)."""
from __future__ import annotations

import errno
import os
import traceback
from contextlib import contextmanager

DEBUG_VARIABLE = "AUTOLABEL_DEBUG"


class InputError(Exception):
    """Bad user input: the message names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


NO_SPACE = "no space left on device while writing it"


@contextmanager
def writing(path):
    """A full disk is the user's to fix, not our bug: ENOSPC while writing `path` becomes an
    InputError naming it. (The callers' staging clean-up runs as for any other failure.)"""
    try:
        yield
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        raise InputError(path, NO_SPACE) from None


def input_error(error: BaseException) -> InputError | None:
    """The bad input `error` is, or None: an InputError, or a full disk at a write `writing` doesn't wrap."""
    if isinstance(error, InputError):
        return error
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return InputError(error.filename or "output", NO_SPACE)
    return None


def debug_enabled() -> bool:
    """--debug (which sets the variable, so worker processes see it too) or AUTOLABEL_DEBUG=1."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def describe(error: BaseException) -> str:
    """One line for any failure: bad input as it is, our bugs as such. With debug on, a bug's
    traceback follows the line (the same text for a command and for a batch worker's clip)."""
    if (bad := input_error(error)) is not None:
        return str(bad)
    line = f"internal error: {type(error).__name__}: {error}"
    if debug_enabled():
        return line + "\n" + "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()
    return line + "; rerun with --debug for the traceback"
