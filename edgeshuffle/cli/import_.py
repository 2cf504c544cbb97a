"""`edgeshuffle import`: megvii's released ShuffleNet v1 checkpoint -> model.keras."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeshuffle.cli.common import VariantValue, reports_errors

OFFICIAL_GROUPS = (3, 8)
OFFICIAL_SCALES = (0.5, 1.0, 1.5, 2.0)


@click.command(name="import")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--groups", "-g", type=VariantValue(OFFICIAL_GROUPS), required=True,
              help="Groups of the released variant (Group3 or Group8).")
@click.option("--scale", "-s", type=VariantValue(OFFICIAL_SCALES, suffix="x"), required=True,
              help="Channel multiplier of the released variant.")
@click.option("--input-size", type=int, default=224, show_default=True,
              help="Input height and width of the Keras model, a multiple of 32.")
@click.option("--classes", type=int, default=None,
              help="Number of classes [default: read from the checkpoint's classifier].")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The .keras file to write (atomically).")
@click.option("--json", "as_json", is_flag=True, help="Print the import report as JSON.")
@reports_errors
def import_(checkpoint, groups, scale, input_size, classes, output, as_json):
    """Load an official ShuffleNet v1 checkpoint (megvii-model/ShuffleNet-Series) into Keras.

    CHECKPOINT is a released `.pth.tar` file ({'state_dict': ...}, keys
    prefixed `module.`; a bare state dict works too). It is read with
    torch.load(weights_only=True), so it needs the `import` extra. Every
    tensor is matched by name and shape; the model computes what the official
    network computes (BGR 0-255 input, recorded in the model) and goes on
    through convert, quantize and bench like any other.
    """
    from edgeshuffle.atomic import ensure_writable_dir
    from edgeshuffle.errors import InputFileError
    from edgeshuffle.models.io import save_model
    from edgeshuffle.models.official import import_official
    from edgeshuffle.report import render_table
    from rich.console import Console

    if output.suffix != ".keras":
        raise InputFileError(f"model files must end in .keras: {output}")
    ensure_writable_dir(output.parent if str(output.parent) else Path("."))
    # A transient spinner on a terminal; nothing at all when stderr is not one.
    with Console(stderr=True).status(f"importing {checkpoint.name}"):
        model, report = import_official(checkpoint, groups, scale, input_size, classes)
        save_model(model, output)
    summary = {**report.to_dict(), "output": str(output)}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    rows = [["model", report.model], ["input", f"{input_size}x{input_size}x3, BGR 0-255"],
            ["classes", str(report.classes)], ["tensors assigned", str(report.tensors)],
            ["ignored", f"{report.ignored} num_batches_tracked"],
            ["parameters", f"{report.parameters:,}"], ["written", str(output)]]
    click.echo(render_table(f"imported {checkpoint}", ["", "value"], rows))
