"""How `--help` reads. typer's rich help shows a `<bool>` type for every flag, `<list[Path]>` for
repeated values and `{name}` for a required argument in the usage line; these classes show
flags bare, repeated values by their element type, and arguments the usual way (DATASET,
[CLIPS]...). `App` makes every command of the app such a command; its group prints the help for
a bare `autolabel` (exit 0) and ends every command through guard.py."""
from __future__ import annotations

from typing import get_args

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

HELP_OPTION_NAMES = ["-h", "--help"]


def _tidy(param) -> None:
    if isinstance(param, TyperOption) and param.is_flag:
        param.metavar = ""  # a flag takes no value
    elif isinstance(param, TyperArgument):  # the name it was given (export's DIR), else the parameter's
        param.metavar = param.metavar or param.name.upper() + ("..." if param.nargs != 1 else "")
    if param.type_descriptor.is_list:
        element = f"<{get_args(param.type_descriptor.annotation)[0].__name__.lower()}>"
        if isinstance(param, TyperOption):
            param.metavar = param.metavar or element
        else:
            param.display_type_rich = lambda ctx: element  # the type column; metavar names the argument


class _TidyHelp:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            _tidy(param)

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            _tidy(option)
        return option


class HelpCommand(_TidyHelp, TyperCommand):
    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                pieces.append(param.metavar if param.required else f"[{param.metavar}]")
        return pieces


class HelpGroup(_TidyHelp, TyperGroup):
    def parse_args(self, ctx, args):
        if not args:  # bare `autolabel`: the help, and success, as git and pip do
            typer.echo(ctx.get_help())
            ctx.exit(0)
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        from .guard import guarded  # every command's errors end the same way (guard.py)

        return guarded(super().invoke, ctx)


class App(typer.Typer):
    """A typer app whose group and commands are HelpGroup and HelpCommand, answering -h and --help."""

    def __init__(self, **kwargs):
        super().__init__(cls=HelpGroup, context_settings={"help_option_names": HELP_OPTION_NAMES}, **kwargs)

    def command(self, *args, cls=HelpCommand, **kwargs):
        return super().command(*args, cls=cls, **kwargs)
