"""The main job end to end (`make demo`): build the default ShuffleNet, summarise it, convert it."""

from __future__ import annotations

from pathlib import Path

import click

from edgeshuffle.cli.common import reports_errors


@click.command()
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("build/demo"), show_default=True)
@reports_errors
def demo(output_dir: Path) -> None:
    """Build and summarise the default model, then convert it to float TFLite and ONNX behind the parity gate."""
    from edgeshuffle.atomic import ensure_writable_dir
    from edgeshuffle.cli.convert import render_convert_report
    from edgeshuffle.export.convert import convert
    from edgeshuffle.models.shufflenet import build_shufflenet

    ensure_writable_dir(output_dir)
    model = build_shufflenet()
    click.echo(f"{model.name}: {len(model.layers)} layers, {model.count_params():,} parameters, "
               f"input {model.input_shape}, output {model.output_shape}")
    click.echo(f"converting to {output_dir} (float TFLite and ONNX, parity gate vs Keras) ...")
    report = convert(model, output_dir)  # writes model.keras too; a failed gate raises ParityError
    click.echo(render_convert_report(report))


if __name__ == "__main__":
    demo()
