"""What every command shares: error reporting, variant options, preprocessing options."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from edgeshuffle.errors import EdgeShuffleError
from edgeshuffle.models.variants import GROUPS, SCALES, STEMS
from edgeshuffle.runtime.tflite_kernels import TFLITE_KERNELS

EXIT_INTERRUPTED = 130


class VariantValue(click.ParamType):
    """One of a few listed numbers, in any of its spellings: `1`, `1.0`, `1x`, `1.0x`; `0.5`, `.5`, `0.5x`.

    The paper and megvii's checkpoints name the scales 0.5x, 1.0x, 2.0x; the
    variant names say 1x, 2x. The value passed on is the listed number itself
    (an int or a float), so every spelling builds the same model.
    """

    def __init__(self, values, suffix: str = ""):
        self.values = tuple(values)
        self.suffix = suffix
        self.name = "value"

    def get_metavar(self, param, ctx=None) -> str:
        return "[" + "|".join(f"{v:g}" for v in self.values) + "]"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value in self.values:
            return self.values[self.values.index(value)]
        text = str(value).strip()
        if self.suffix and text.lower().endswith(self.suffix):
            text = text[:-len(self.suffix)]
        try:
            number = float(text)
        except ValueError:
            number = None
        if number in self.values:
            return self.values[self.values.index(number)]
        listed = ", ".join(f"{v:g}" for v in self.values)
        also = f" (written 1, 1.0 or 1.0{self.suffix})" if self.suffix else ""
        self.fail(f"{value!r} is not one of {listed}{also}.", param, ctx)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(f"{v:g}") for v in self.values if f"{v:g}".startswith(incomplete)]


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
        click.option("--groups", "-g", type=VariantValue(GROUPS), default=3,
                     show_default=True, help="Groups of the pointwise convolutions."),
        click.option("--scale", "-s", type=VariantValue(SCALES, suffix="x"), default=1,
                     show_default=True, help="Channel multiplier s (1, 1.0 and 1.0x are the same)."),
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


def spec_from_options(groups: int, scale: float, input_size: int | None, classes: int | None, stem: str):
    from edgeshuffle.models.variants import ModelSpec

    cifar = stem == "cifar"
    return ModelSpec(groups=groups, scale=scale,
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


def _numbers(text: str | None, name: str) -> tuple[float, ...] | None:
    from edgeshuffle.errors import InvalidArgumentError

    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise InvalidArgumentError(f"{name.capitalize()} must be comma-separated numbers, one per channel. "
                                   f"Received: `{name}={text}`") from None


def preprocessing_options(command=None, *, labels: bool = True):
    """--preprocess/--mean/--std/--channel-order/--resize (and --labels) for models and artifacts that carry none.

    The command receives them as ``preprocessing`` (a
    :class:`~edgeshuffle.preprocessing.PreprocessingOptions`, resolved later at
    the model's input size) and, with ``labels``, ``class_names`` (a tuple, or
    None). Apply below :func:`reports_errors`, so a bad value is a one-line error.
    """
    if command is None:
        return functools.partial(preprocessing_options, labels=labels)

    @functools.wraps(command)
    def wrapper(*args, preprocess, mean, std, channel_order, resize, **kwargs):
        from edgeshuffle.metadata import read_labels
        from edgeshuffle.preprocessing import PreprocessingOptions

        options = PreprocessingOptions(preset=preprocess, mean=_numbers(mean, "mean"), std=_numbers(std, "std"),
                                       channel_order=channel_order, resize_size=resize)
        if labels:
            path = kwargs.pop("labels")
            kwargs["class_names"] = read_labels(path) if path is not None else None
        return command(*args, preprocessing=options, **kwargs)

    options = [
        click.option("--preprocess", type=click.Choice(["tf", "torch", "caffe"]), default=None,
                     help="A preset, the modes of Keras applications' preprocess_input: tf (x/127.5 - 1), torch "
                          "(x/255, then ImageNet mean/std), caffe (BGR, minus the ImageNet mean)."),
        click.option("--mean", metavar="R,G,B", default=None,
                     help="Per-channel mean on 0-255 pixels, in the model's channel order (B,G,R with "
                          "--channel-order BGR); overrides the preset's."),
        click.option("--std", metavar="R,G,B", default=None,
                     help="Per-channel std on 0-255 pixels, in the model's channel order; overrides the preset's."),
        click.option("--channel-order", type=click.Choice(["RGB", "BGR"]), default=None,
                     help="Channel order the model takes [default: the preset's, else RGB]."),
        click.option("--resize", type=int, default=None, metavar="N",
                     help="Resize the shorter side to N before the centre crop to the model's input size "
                          "[default: the model's own, else input size / 0.875]."),
    ] + ([click.option("--labels", type=click.Path(path_type=Path, dir_okay=False), default=None,
                       help="Class names, one a line, in the order of the model's outputs.")] if labels else [])
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


trust_code_option = click.option(
    "--trust-code", is_flag=True,
    help="Load a .keras file with Keras' safe mode off, so Lambda layers load (their Python code runs: "
         "only for files you trust).")


def say_trust_code(trust_code: bool, model_path) -> None:
    """The user is told, on stderr, that the model's code is allowed to run."""
    if trust_code and model_path is not None:
        click.echo(f"note: --trust-code: loading {model_path} with Keras' safe mode off; its Python code runs",
                   err=True)
