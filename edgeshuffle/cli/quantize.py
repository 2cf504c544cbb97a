"""`edgeshuffle quantize`: int8 TFLite and ONNX, calibrated on real images, gated on accuracy."""

from __future__ import annotations

from pathlib import Path

import click

from edgeshuffle.cli.common import (
    echo_gated_report,
    jobs_option,
    preprocessing_options,
    progress_bar,
    reports_errors,
    say_trust_code,
    trust_code_option,
)


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def render_quantize_report(report) -> str:
    from edgeshuffle.cli.convert import render_rewrites
    from edgeshuffle.report import render_table

    lines = [f"calibration: {report.calibration['images']} images from {report.calibration['source']}"
             + (f" ({len(report.calibration['skipped'])} unreadable skipped)" if report.calibration["skipped"] else "")]
    if report.parity is not None:
        parity = report.parity
        rows = [[Path(r["model"]).name, r["precision"] or "-", _percent(r["accuracy"]), _percent(r["top1_agreement"]),
                 f"{r['mean_cosine']:.5f}", f"{r['max_abs_error']:.3g}"] for r in parity["results"]]
        unit = "accuracy points" if parity["labelled"] else "% agreement"
        lines.append(render_table(f"parity vs Keras on {parity['evaluated']} images of {parity['images']} "
                                  f"(gate: at most {parity['max_drop']:g} {unit} lost)",
                                  ["artifact", "precision", "accuracy", "top-1 agree", "cosine", "max |diff|"], rows))
    if report.layer_errors:
        rows = [[e["layer"], "x".join(map(str, e["shape"][1:])), f"{e['rmse_steps']:.2f}", f"{e['relative_rmse']:.4f}"]
                for e in report.layer_errors[:10]]
        lines.append(render_table("int8 error per layer, worst first (RMSE in quantization steps; relative to "
                                  "the float activation's std)", ["layer", "HxWxC", "RMSE/step", "RMSE/std"], rows))
    lines.append(render_rewrites(report.rewrites))
    xnnpack = report.tflite["xnnpack"]
    outside = ", ".join(f"{k} x{v}" for k, v in xnnpack["undelegated_ops"].items()) or "none"
    lines.append(f"{report.files['int8_tflite']}: {xnnpack['nodes']} ops, {xnnpack['partitions']} XNNPACK "
                 f"partition(s), outside: {outside}; {report.sizes['int8_tflite'] / 1e6:.2f} MB "
                 f"(float {report.sizes['float32_tflite'] / 1e6:.2f} MB)")
    lines.append(f"{report.files['int8_onnx']}: QDQ, {report.sizes['int8_onnx'] / 1e6:.2f} MB "
                 f"(float {report.sizes['float32_onnx'] / 1e6:.2f} MB)")
    lines.append(f"{report.status.upper()}: wrote int8.tflite, int8.onnx, quantize.json to {report.output_dir}"
                 + (f" ({report.reason})" if report.reason else ""))
    return "\n".join(lines)


@click.command()
@click.argument("model_path", metavar="MODEL.keras", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--calibration", "-c", type=click.Path(path_type=Path), required=True,
              help="Folder of calibration images (JPEG/PNG/BMP, searched recursively, any size).")
@click.option("--num-calibration", type=click.IntRange(min=1), default=200, show_default=True,
              help="Calibration images to use, sampled deterministically.")
@click.option("--eval", "eval_dir", type=click.Path(path_type=Path),
              help="Evaluation images, never used for calibration: one subfolder per class gives accuracy, "
                   "a plain folder gives agreement with Keras.")
@click.option("--eval-limit", type=click.IntRange(min=1), help="Evaluate on at most this many images.")
@click.option("--output-dir", "-o", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for int8.tflite, int8.onnx and quantize.json (the float artifacts of convert are "
                   "reused when they are this model's, else written too).")
@click.option("--io", "io_type", type=click.Choice(["int8", "uint8", "float32"]), default="int8",
              show_default=True, help="Input and output type of int8.tflite.")
@click.option("--onnx-types", type=click.Choice(["u8u8", "u8s8", "s8s8"]), default="u8u8", show_default=True,
              help="Integer types (activations, weights) of int8.onnx. u8s8 and s8s8 saturate in onnxruntime on "
                   "x86 CPUs without VNNI; u8u8 is exact everywhere.")
@click.option("--max-drop", type=click.FloatRange(0, 100), default=1.0, show_default=True,
              help="Gate: accuracy points (labelled) or % agreement (unlabelled) an artifact may lose vs Keras.")
@click.option("--strict", is_flag=True, help="Unreadable images are an error instead of being skipped.")
@click.option("--layer-report", is_flag=True, help="Also report the int8 error of every layer, worst first.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the calibration sample.")
@jobs_option
@trust_code_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
@reports_errors
@preprocessing_options
def quantize(model_path, calibration, num_calibration, eval_dir, eval_limit, output_dir, io_type, onnx_types,
             max_drop, strict, layer_report, seed, jobs, trust_code, as_json, preprocessing, class_names):
    """Quantize a Keras image classifier to int8 TFLite and ONNX with real calibration images.

    MODEL.keras is any Keras 3 image classifier, as for convert (the same
    --preprocess/--mean/--std/--labels options for a model that carries none).

    TFLite: full-integer int8 (per-channel weights, per-tensor activations),
    written so that XNNPACK runs the whole graph as one partition. ONNX: QDQ
    from onnxruntime's quantize_static on the same images, uint8 activations
    and weights by default (--onnx-types). With --eval, every
    artifact is compared with Keras and the step exits 3 when one loses more
    than --max-drop (artifacts kept, marked failed in quantize.json).
    """
    from edgeshuffle.api import quantize as api_quantize
    from edgeshuffle.export.quantize import QuantizeConfig
    from edgeshuffle.models.source import source_model

    options = dict(num_calibration=num_calibration, io_type=io_type, onnx_types=onnx_types, eval=eval_dir,
                   eval_limit=eval_limit, max_drop=max_drop, strict=strict, layer_report=layer_report, seed=seed)
    QuantizeConfig(calibration=calibration, **options)  # a bad value fails before the model loads
    say_trust_code(trust_code, model_path)
    source = source_model(model_path, preprocessing=preprocessing, class_names=class_names, trust_code=trust_code)

    def run():
        with progress_bar(disable=True if as_json else None) as bar:
            tasks = {}

            def advance(step: str, done: int, total: int) -> None:
                if step not in tasks:
                    for task in tasks.values():
                        bar.update(task, visible=False)
                    tasks[step] = bar.add_task(f"quantize: {step}", total=total)
                bar.update(tasks[step], completed=done, total=total)

            return api_quantize(source, calibration, output_dir, trust_code=trust_code, progress=advance,
                                jobs=jobs, **options)

    echo_gated_report(run, render_quantize_report, as_json)
