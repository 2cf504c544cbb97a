"""What every command shares: error reporting, variant options."""

from __future__ import annotations

import functools
import sys

import click

from edgeshuffle.errors import EdgeShuffleError
from edgeshuffle.models.variants import GROUPS, SCALES, STEMS
from edgeshuffle.runtime.tflite_kernels import TFLITE_KERNELS

EXIT_INTERRUPTED = 130


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def reports_errors(command):
    """Turn library errors and Ctrl-C into a one-line message and an exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EdgeShuffleError as error:
            _fail(str(error).splitlines()[0] if str(error) else type(error).__name__, error.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", EXIT_INTERRUPTED)

    return wrapper


def variant_options(command):
    """--groups/--scale/--input-size/--classes/--stem, shared by every command that builds a model."""
    options = [
        click.option("--groups", "-g", type=click.Choice([str(g) for g in GROUPS]), default="3",
                     show_default=True, help="Groups of the pointwise convolutions."),
        click.option("--scale", "-s", type=click.Choice([f"{s:g}" for s in SCALES]), default="1",
                     show_default=True, help="Channel multiplier s."),
        click.option("--input-size", type=int, default=None,
                     help="Input height and width, a multiple of 32 [default: 224, or 32 with --stem cifar]."),
        click.option("--classes", type=int, default=None, help="Number of classes [default: 1000, or 10 "
                     "with --stem cifar]."),
        click.option("--stem", type=click.Choice(STEMS), default="imagenet", show_default=True,
                     help="imagenet: 3x3 stride-2 conv and max pool; cifar: 3x3 stride-1 conv, no pool."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


tflite_kernels_option = click.option(
    "--tflite-kernels", type=click.Choice(list(TFLITE_KERNELS)), default="xnnpack", show_default=True,
    help="Kernels for .tflite models: LiteRT's default XNNPACK delegate, its built-in optimized kernels, or its "
         "portable reference kernels (exact integer arithmetic, identical on every architecture, slow).")


def spec_from_options(groups: str, scale: str, input_size: int | None, classes: int | None, stem: str):
    from edgeshuffle.models.variants import ModelSpec

    cifar = stem == "cifar"
    return ModelSpec(groups=int(groups), scale=float(scale),
                     input_size=input_size if input_size is not None else (32 if cifar else 224),
                     classes=classes if classes is not None else (10 if cifar else 1000), stem=stem)


def echo_gated_report(run, render, as_json: bool):
    """Run a gated step and print its report, also when the gate fails (then re-raise for the exit code)."""
    import json

    from edgeshuffle.errors import ParityError

    def echo(report) -> None:
        click.echo(json.dumps(report.to_dict(), indent=2) if as_json else render(report))

    try:
        report = run()
    except ParityError as error:
        if getattr(error, "report", None) is not None:
            echo(error.report)
        raise
    echo(report)
    return report


def progress_bar(unit: str = "images", disable: bool | None = None):
    """A progress bar on stderr: what is running, the bar, done/total, ``unit`` per second, elapsed time, ETA.

    Hidden when stderr is not a terminal (or when ``disable``), so logs and pipes get no control codes.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text("" if task.speed is None else f"{task.speed:.1f} {unit}/s")

    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                    transient=True, disable=(not console.is_terminal) if disable is None else disable)


def jobs_option(command):
    """--jobs, shared by the commands that decode images and run models in a pool of threads."""
    return click.option("--jobs", "-j", type=int, default=None,
                        help="Threads that decode images and run models side by side; the figures do not depend "
                             "on it [default: the usable cores].")(command)
