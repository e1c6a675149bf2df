"""The `autolabel` command line: `app` (typer). main.py holds propagate, evaluate, demo and bench;
train.py the train command; batch.py the batch command; loop.py suggest and review; options.py what they share."""
from .main import app
from . import batch  # noqa: E402,F401  registers `autolabel batch` on app
from . import cache  # noqa: E402,F401  registers `autolabel flow-cache` on app
from . import export  # noqa: E402,F401  registers `autolabel export` on app
from . import train  # noqa: E402,F401  registers `autolabel train` on app
from . import loop  # noqa: E402,F401  registers `autolabel suggest` and `autolabel review` on app

__all__ = ["app"]
