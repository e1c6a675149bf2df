"""The one exception type the CLI turns into a single line and exit code 2."""


class InputError(Exception):
    """Bad user input: the message names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
