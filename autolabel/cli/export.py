"""`autolabel export` and `autolabel import`: the typer commands over autolabel.interop."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError
from ..io.classnames import NAMES_HELP, NAMES_METAVAR
from ..progress import console, counted
from .main import app
from .options import fail, interrupted


class ExportFormat(str, Enum):
    davis = "davis"
    cityscapes = "cityscapes"
    cvat = "cvat"


def export_command(
    out: Path = typer.Argument(..., metavar="OUT", help="A `propagate` output folder, or a `batch` output folder."),
    target: Path = typer.Argument(..., metavar="DIR", help="Folder to write the export into."),
    to: ExportFormat = typer.Option(..., "--to", help="davis: DIR/<seq>/<frame>.png palette PNGs (object ids 1..n) "
                                    "for the DAVIS-2017 evaluation code; cityscapes: DIR/<city>_<seq>_<frame>_gtFine_"
                                    "labelIds.png for cityscapesScripts (CITYSCAPES_RESULTS=DIR); cvat: DIR/<clip>.zip "
                                    "to import into a CVAT task as 'Segmentation mask 1.1'."),
    train_ids: bool = typer.Option(False, "--train-ids", help="With --to cityscapes: write trainIds "
                                   "(_gtFine_trainIds.png, 255 for classes not evaluated) instead of labelIds."),
    name: Optional[str] = typer.Option(None, "--name", help="Name of the exported sequence (DIR/<name>/, "
                                       "<name>.zip) when OUT is one clip (default: its video's name)."),
    names: Optional[str] = typer.Option(None, "--names", metavar=NAMES_METAVAR,
                                        help="With --to cvat: the CVAT labels' names. " + NAMES_HELP
                                             + " Default: the names file the manifest recorded."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace files and folders of the same names in DIR."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Export propagated labels for benchmark evaluators (DAVIS, Cityscapes) or for correction in CVAT.

    Reads OUT/labels (or OUT/<clip>/labels for every clip of a batch) one frame at a time; writes
    into DIR only when everything is done, and replaces nothing there without --overwrite.
    """
    from ..interop.export import export

    def say(clip: str) -> None:
        if not quiet:
            console.print(f"exporting {clip}", highlight=False, markup=False)

    try:
        summary = export(out, target, to.value, train_ids=train_ids, overwrite=overwrite, name=name, names=names,
                         on_clip=say)
    except InputError as error:
        fail(error)
    if not quiet:
        console.print(f"wrote {counted(summary['frames'], 'frame')} of {counted(summary['clips'], 'clip')} "
                      f"({to.value}) to {target}: {', '.join(summary['written'][:3])}"
                      f"{', …' if len(summary['written']) > 3 else ''}", highlight=False, markup=False)


app.command("export")(export_command)


def import_command(
    source: Path = typer.Argument(..., metavar="SOURCE", help="A CVAT 'Segmentation mask 1.1' zip exported after "
                                  "correcting `export --to cvat` (only the frames whose labels changed are taken), "
                                  "or a folder of label PNGs in the clip's format named by frame stem (all taken)."),
    out: Path = typer.Argument(..., metavar="OUT", help="The clip's `propagate` output folder: its manifest gives "
                               "the frames, size, label format and class ids."),
    keyframes: Path = typer.Option(..., "--keyframes", "-k", help="The clip's keyframes folder: the corrected "
                                   "frames are written here as <stem>.png, ready for `propagate --update`."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace labels of frames KEYFRAMES already labels."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Bring corrected frames back in as keyframes, in the clip's own format and ids.

    CVAT labels map back through their names (background becomes the ignore id; for object masks,
    0). Unknown label names, another frame size, or frames that are not in the clip are refused,
    and nothing is written. Then: autolabel propagate ... -k KEYFRAMES -o OUT --update.
    """
    from ..interop.import_labels import import_labels

    try:
        summary = import_labels(source, out, keyframes, overwrite=overwrite)
    except (InputError, ValueError) as error:
        fail(error)
    except KeyboardInterrupt:   # the labels are staged first and renamed in at the end
        interrupted("no corrected frames written")
    if not quiet:
        frames = ", ".join(summary["frames"]) or "none"
        console.print(f"wrote {counted(len(summary['written']), 'corrected frame')} to {keyframes} ({frames}); "
                      f"{summary['unchanged']} unchanged", highlight=False, markup=False)


app.command("import")(import_command)
