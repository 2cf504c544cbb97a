"""`edgeshuffle parity`: do the artifacts agree on real images? (LiteRT, onnxruntime; no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeshuffle.cli.common import (jobs_option, preprocessing_options, progress_bar, reports_errors,
                                    tflite_kernels_option)


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--images", type=click.Path(path_type=Path), required=True,
              help="A folder of images; one subfolder per class also gives accuracy.")
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="Compare against this model [default: the first float32 model given].")
@click.option("--limit", type=int, default=None, help="Use only the first N images (sorted by path).")
@click.option("--strict", is_flag=True, help="Fail on an image that does not decode instead of skipping it.")
@click.option("--runtime", type=click.Choice(["auto", "tflite", "onnx"]), default="auto", show_default=True)
@tflite_kernels_option
@jobs_option
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Also write the report (schema edgeshuffle.parity, version 1) here.")
@click.option("--logits", "logits_path", type=click.Path(path_type=Path), default=None,
              help="Also write every model's raw logits here (.npz: models, images, logits[model, image, class]), "
                   "to compare one machine's outputs with another's. Written to disk as the images go.")
@reports_errors
@preprocessing_options
def parity(models, images, reference, limit, strict, runtime, tflite_kernels, jobs, json_path, logits_path,
           preprocessing, class_names):
    """Top-1 agreement, accuracy, cosine and max error of MODELS against a reference, on real images.

    Each artifact preprocesses the images as its own metadata says, so a
    board checks an int8 model against its float original without Keras.
    Memory stays flat on any number of images; --jobs threads decode ahead
    and run the models side by side, with the same figures as one thread.
    Artifacts made elsewhere (no edgeshuffle metadata) are preprocessed as
    --preprocess/--mean/--std/--resize/--channel-order say, at their own input
    size, and --labels names their classes.
    """
    from edgeshuffle.cli.bench import check_json_target
    from edgeshuffle.parity import image_parity

    check_json_target(json_path)
    check_json_target(logits_path)
    with progress_bar() as bar:
        task = bar.add_task("parity", total=None)
        report = image_parity(models, images, reference=reference, runtime=runtime, limit=limit, strict=strict,
                              tflite_kernels=tflite_kernels, jobs=jobs, logits_path=logits_path,
                              preprocessing=preprocessing, class_names=class_names,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
    click.echo(render_parity(report))
    if json_path is not None:
        from edgeshuffle.atomic import write_text

        write_text(json_path, json.dumps(report.to_dict(), indent=2) + "\n")
        click.echo(f"wrote {json_path}")
    if logits_path is not None:
        click.echo(f"wrote {logits_path}")


def render_parity(report) -> str:
    from edgeshuffle.cli.bench import render_table

    headers = ["model", "runtime", "precision", "top-1 agree", "cosine", "max abs err"]
    if report.labelled:
        headers.append("accuracy")
    rows = []
    for r in report.results:
        c = r.comparison
        row = [r.label + (" (reference)" if r.is_reference else ""), r.runtime, r.precision or "?",
               f"{100 * c.top1_agreement:.1f}%", f"{c.mean_cosine:.5f}", f"{c.max_abs_error:.4g}"]
        if report.labelled:
            row.append(f"{100 * c.accuracy:.1f}%")
        rows.append(row)
    title = f"parity on {report.evaluated} images of {report.images}"
    if report.skipped:
        title += f" ({report.skipped} skipped: not decodable)"
    return render_table(title, headers, rows)
