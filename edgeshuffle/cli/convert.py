"""`edgeshuffle convert`: Keras to float TFLite and ONNX, gated on parity."""

from __future__ import annotations

from pathlib import Path

import click

from edgeshuffle.cli.common import (
    echo_gated_report,
    preprocessing_options,
    reports_errors,
    say_trust_code,
    spec_from_options,
    trust_code_option,
    variant_options,
)


def parity_rows(report) -> list[list[str]]:
    """One row per artifact: the gate's numbers against the Keras reference."""
    gate = report.parity
    rows = []
    for name, result in gate["comparisons"].items():
        ok = (result["max_relative_error"] <= gate["max_relative_error"]
              and result["top1_agreement"] >= gate["min_top1_agreement"])
        rows.append([name, f"{result['max_abs_error']:.2e}", f"{result['max_relative_error']:.2e}",
                     f"{100 * result['top1_agreement']:.1f}%", "PASSED" if ok else "FAILED"])
    return rows


def render_rewrites(rewrites: dict) -> str:
    """The passes in order: how often each fired, on which layers; what stays outside XNNPACK."""
    from edgeshuffle.report import render_table

    rows = []
    for result in rewrites["passes"]:
        layers = ", ".join(result["layers"][:3])
        if result["fired"] > 3:
            layers += f", ... ({result['fired']})"
        rows.append([result["name"], str(result["fired"]), layers or "-"])
    outside = ", ".join(f"{k} x{v}" for k, v in rewrites["outside_xnnpack"].items()) or "nothing"
    return render_table(f"rewrites (outside XNNPACK: {outside})", ["pass", "fired", "layers"], rows)


def render_convert_report(report) -> str:
    from edgeshuffle.report import render_table

    gate = report.parity
    lines = [render_rewrites(report.rewrites),
             render_table(f"parity vs Keras on {gate['inputs']} (gate: relative error <= "
                          f"{gate['max_relative_error']:.0e}, top-1 agreement {gate['min_top1_agreement']:.0%})",
                          ["artifact", "max |diff|", "relative", "top-1 agree", "gate"], parity_rows(report))]
    xnnpack = report.tflite["xnnpack"]
    lines.append(f"{report.files['tflite']}: {sum(report.tflite['op_histogram'].values())} ops, "
                 f"{xnnpack['partitions']} XNNPACK partition(s), max tensor rank {report.tflite['max_tensor_rank']}, "
                 f"forbidden ops: {', '.join(report.tflite['forbidden_ops']) or 'none'}")
    lines.append(f"{report.files['onnx']}: opset {report.onnx['opset']}, form {report.onnx['form']}, "
                 f"{sum(report.onnx['op_histogram'].values())} nodes, {report.onnx['transposes']} Transpose "
                 f"(bound {report.onnx['max_transposes']})")
    lines.append(f"{report.status.upper()}: wrote {', '.join(report.files.values())} to {report.output_dir}")
    return "\n".join(lines)


@click.command()
@click.argument("model_path", metavar="[MODEL.keras]", required=False,
                type=click.Path(path_type=Path, dir_okay=False))
@variant_options
@click.option("--output-dir", "-o", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for model.keras, float32.tflite, float32.onnx and convert.json (created if missing).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Static batch size of both artifacts.")
@click.option("--shuffle", type=click.Choice(["reshape", "gather"]), default="reshape", show_default=True,
              help="Channel shuffle ops: rank-4 reshape/transpose (faster, one XNNPACK partition) or gather.")
@click.option("--opset", type=click.IntRange(13, 18), default=17, show_default=True, help="ONNX opset.")
@click.option("--onnx-form", metavar="NAME",
              help="Exact graph form of float32.onnx: nchw, nchw-bias, split-groups, dense or dense-unshuffled "
                   "[default: nchw-bias, the fastest measured in onnxruntime].")
@click.option("--images", type=click.Path(path_type=Path, file_okay=False),
              help="Run the parity gate on images from this folder (default: seeded random inputs).")
@click.option("--samples", type=click.IntRange(min=1), default=8, show_default=True,
              help="Parity inputs: this many random tensors, or the first this many images of --images.")
@trust_code_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
@reports_errors
@preprocessing_options
def convert(model_path, groups, scale, input_size, classes, stem, output_dir, batch, shuffle, opset, onnx_form,
            images, samples, trust_code, as_json, preprocessing, class_names):
    """Convert a Keras image classifier to float TFLite and ONNX for edge boards, gated on parity with Keras.

    MODEL.keras is any Keras 3 image classifier (one NHWC image input of
    static size, one (batch, classes) output), edgeshuffle's own ShuffleNets
    included; without it a fresh ShuffleNet is built from the variant options
    (which are ignored when MODEL.keras is given). A model edgeshuffle did not
    build carries no preprocessing: give it with --preprocess or --mean/--std
    (and --labels), else ImageNet mean/std is assumed. Both artifacts use a
    static batch, carry their preprocessing and labels, and are checked
    against Keras on the same inputs: max |logit difference| relative to the
    largest |logit| at most 1e-4 and top-1 agreement 100%, else exit 3 (the
    artifacts stay, marked failed in convert.json).
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from edgeshuffle.api import convert as api_convert
    from edgeshuffle.atomic import ensure_writable_dir
    from edgeshuffle.data import find_images
    from edgeshuffle.export.convert import STEPS
    from edgeshuffle.models.source import source_model

    options = dict(batch=batch, shuffle=shuffle, opset=opset, onnx_form=onnx_form, images=images, samples=samples)
    ensure_writable_dir(output_dir)  # fail before the slow part
    if images is not None:
        find_images(images)
    say_trust_code(trust_code, model_path)
    if model_path is not None:
        model = model_path
    else:
        from edgeshuffle.models.shufflenet import build_shufflenet

        model = build_shufflenet(spec_from_options(groups, scale, input_size, classes, stem))
    source = source_model(model, preprocessing=preprocessing, class_names=class_names, trust_code=trust_code)

    def run():
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      transient=True, disable=as_json) as bar:
            task = bar.add_task("convert", total=len(STEPS))

            def advance(step: str) -> None:
                bar.update(task, completed=STEPS.index(step), description=f"convert: {step}")

            return api_convert(source, output_dir, trust_code=trust_code, progress=advance, **options)

    echo_gated_report(run, render_convert_report, as_json)
