"""The main job end to end (`make demo`): convert, quantize, check and bench the shipped model.

Uses only what the repository ships: the trained CIFAR-10 model in
``models/``, calibration images and the labelled evaluation set in
``calibration/``. Writes every artifact and ``report.md`` (with two plots)
into the output folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeshuffle.cli.common import reports_errors

# Relative to the repository root, where `make demo` runs.
SHIPPED_MODEL = Path("models/shufflenet_v1_g3_1x_cifar10.keras")
CALIBRATION = Path("calibration/cifar10-train-300")
EVALUATION = Path("calibration/cifar10-test-2000")


@click.command()
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("build/demo"), show_default=True)
@click.option("--runs", type=click.IntRange(min=1), default=100, show_default=True, help="Timed runs per artifact.")
@reports_errors
def demo(output_dir: Path, runs: int) -> None:
    """Convert, quantize, check parity and bench the shipped model; write report.md with plots."""
    from edgeshuffle.cli.native_logs import filter_native_logs

    filter_native_logs()  # before anything loads TensorFlow
    from edgeshuffle.atomic import ensure_writable_dir, write_text
    from edgeshuffle.bench import BenchConfig, run_bench
    from edgeshuffle.cli.convert import render_convert_report
    from edgeshuffle.cli.quantize import render_quantize_report
    from edgeshuffle.export.convert import convert
    from edgeshuffle.export.quantize import QuantizeConfig, quantize
    from edgeshuffle.models.io import load_shufflenet
    from edgeshuffle.report import demo_markdown, demo_rows, plot_accuracy_latency, plot_latency

    output_dir = ensure_writable_dir(output_dir)
    model = load_shufflenet(SHIPPED_MODEL)
    note = f"Model: `{SHIPPED_MODEL}` (see models/README.md)."
    click.echo(f"{note}\n{model.name}: {model.count_params():,} parameters, input {model.input_shape}")

    click.echo(f"\n[1/4] convert -> {output_dir}")
    click.echo(render_convert_report(convert(model, output_dir)))

    click.echo(f"\n[2/4] quantize (calibration {CALIBRATION.name}, evaluation {EVALUATION.name})")
    # The model card's promise: int8 within 0.5 points of float.
    config = QuantizeConfig(calibration=CALIBRATION, num_calibration=200, eval=EVALUATION, max_drop=0.5)
    quantized = quantize(model, output_dir, config)
    click.echo(render_quantize_report(quantized))

    click.echo(f"\n[3/4] bench the four artifacts ({runs} interleaved runs each, 1 thread)")
    names = ("float32.tflite", "int8.tflite", "float32.onnx", "int8.onnx")
    benched = run_bench(BenchConfig(models=tuple(output_dir / n for n in names), runs=runs,
                                    baseline=output_dir / "float32.tflite"))
    for result in benched.results:
        click.echo(f"  {Path(result.model).name:15s} p50 {result.latency_ms.p50:7.3f} ms   "
                   f"p90 {result.latency_ms.p90:7.3f} ms   {result.baseline_ratio:5.2f}x float32.tflite")
    write_text(output_dir / "bench.json", json.dumps(benched.to_dict(), indent=2) + "\n")

    click.echo("\n[4/4] report")
    rows = demo_rows(quantized, benched)
    plot_latency(rows, output_dir / "latency.png")
    plot_accuracy_latency(rows, output_dir / "accuracy_latency.png")
    write_text(output_dir / "report.md", demo_markdown(rows, quantized, benched, note))
    click.echo(f"report: {output_dir / 'report.md'} (plots: latency.png, accuracy_latency.png)")


if __name__ == "__main__":
    demo()
