"""The main job end to end (`make demo`): build the default ShuffleNet, summarise it, save it."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--output-dir", type=click.Path(path_type=Path), default=Path("build/demo"), show_default=True)
def demo(output_dir: Path) -> None:
    """Build, summarise and save the default model."""
    from edgeshuffle.atomic import ensure_writable_dir
    from edgeshuffle.models.io import save_model
    from edgeshuffle.models.shufflenet import build_shufflenet

    ensure_writable_dir(output_dir)
    model = build_shufflenet()
    click.echo(f"{model.name}: {len(model.layers)} layers, {model.count_params():,} parameters, "
               f"input {model.input_shape}, output {model.output_shape}")
    save_model(model, output_dir / "model.keras")
    click.echo(f"saved {output_dir / 'model.keras'}")


if __name__ == "__main__":
    demo()
