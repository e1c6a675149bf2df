"""`autolabel flow-cache`: how big a --flow-cache folder is, and pruning it to a size."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError
from ..progress import console
from .main import app
from .options import fail

UNITS = {"": 1, "k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9, "t": 10 ** 12}


def parse_size(text: str) -> int:
    """'500M', '2G', '1.5GB', '0' -> bytes (decimal units, as disk sizes are sold)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*", text.lower())
    if not match:
        raise InputError("--max-size", f"{text!r} is not a size such as 500M or 2G")
    return int(float(match[1]) * UNITS[match[2]])


def flow_cache_command(
    folder: Path = typer.Argument(..., metavar="DIR", help="A --flow-cache folder."),
    max_size: Optional[str] = typer.Option(None, "--max-size", metavar="SIZE",
                                           help="Remove the least recently used entries until the cache holds "
                                                "at most SIZE (e.g. 500M, 2G; 0 empties it)."),
) -> None:
    """Show a flow cache's size, or prune it to --max-size (least recently used first). An entry takes
    8 bytes a pixel of the frame (both directions, float16): about 3.3 MB a frame pair at 854x480."""
    from ..datasets.flowcache import FlowCache

    if not folder.is_dir():
        fail(InputError(folder, "no such flow cache folder"))
    cache = FlowCache(folder)
    if max_size is None:
        entries = cache.entries()
        total = sum(size for _, size, _ in entries)
        console.print(f"{folder}: {len(entries)} {'entry' if len(entries) == 1 else 'entries'} (frame pairs), "
                      f"{total / 1e6:.1f} MB", highlight=False, markup=False, soft_wrap=True)
        return
    summary = cache.prune(parse_size(max_size))
    console.print(f"{folder}: removed {summary['removed']} least recently used ({summary['freed'] / 1e6:.1f} MB); "
                  f"{summary['entries']} left, {summary['bytes'] / 1e6:.1f} MB",
                  highlight=False, markup=False, soft_wrap=True)


app.command("flow-cache")(flow_cache_command)
