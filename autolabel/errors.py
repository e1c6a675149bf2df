"""Bad input versus our own bugs: `InputError` is the one exception the CLI reports as the
user's problem (one line, exit 2); anything else is an internal error (one line saying so,
exit 1, the traceback with --debug or AUTOLABEL_DEBUG=1)."""
from __future__ import annotations

import os
import traceback

DEBUG_VARIABLE = "AUTOLABEL_DEBUG"


class InputError(Exception):
    """Bad user input: the message names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def debug_enabled() -> bool:
    """--debug (which sets the variable, so worker processes see it too) or AUTOLABEL_DEBUG=1."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in ("", "0", "false", "no")


def describe(error: BaseException) -> str:
    """One line for any failure: bad input as it is, our bugs as such. With debug on, a bug's
    traceback follows the line (the same text for a command and for a batch worker's clip)."""
    if isinstance(error, InputError):
        return str(error)
    line = f"internal error: {type(error).__name__}: {error}"
    if debug_enabled():
        return line + "\n" + "".join(traceback.format_exception(type(error), error, error.__traceback__)).rstrip()
    return line + "; rerun with --debug for the traceback"
