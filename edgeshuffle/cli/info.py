"""`edgeshuffle info`: what a variant costs."""

from __future__ import annotations

import json

import click

from edgeshuffle.cli.common import reports_errors, spec_from_options, variant_options


@click.command()
@variant_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@reports_errors
def info(groups, scale, input_size, classes, stem, as_json):
    """Parameters and multiply-adds of a ShuffleNet v1 variant, per stage.

    Counted analytically (no TensorFlow needed): convolutions and the
    classifier, as the paper counts its complexity.
    """
    from edgeshuffle.models.complexity import stage_costs
    from edgeshuffle.report import render_table

    spec = spec_from_options(groups, scale, input_size, classes, stem)
    costs = stage_costs(spec)
    summary = {
        "model": spec.name,
        "channels": dict(zip(("stem", "stage2", "stage3", "stage4"), spec.channels())),
        "stages": [{"name": c.name, "output_shape": list(c.output_shape), "params": c.params,
                    "macs": c.macs} for c in costs],
        "params": sum(c.params for c in costs),
        "macs": sum(c.macs for c in costs),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    rows = [[c.name, "x".join(map(str, c.output_shape)), f"{c.params:,}", f"{c.macs / 1e6:.2f}"] for c in costs]
    rows.append(["total", "", f"{summary['params']:,}", f"{summary['macs'] / 1e6:.2f}"])
    click.echo(render_table(f"{spec.name} at {spec.input_size}x{spec.input_size}, {spec.classes} classes",
                            ["stage", "output (HxWxC)", "params", "MMACs"], rows))
