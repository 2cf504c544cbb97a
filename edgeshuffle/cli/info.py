"""`edgeshuffle info`: what a variant costs, or what an artifact is."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeshuffle.cli.common import reports_errors, spec_from_options, variant_options
from edgeshuffle.errors import InvalidArgumentError


@click.command()
@click.argument("model", required=False, type=click.Path(path_type=Path))
@variant_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@reports_errors
def info(model, groups, scale, input_size, classes, stem, as_json):
    """Parameters and multiply-adds of a ShuffleNet v1 variant, per stage; or what MODEL is.

    Counted analytically (no TensorFlow needed): convolutions and the
    classifier, as the paper counts its complexity.

    With MODEL (a .tflite or .onnx artifact): its metadata (variant,
    precision, preprocessing), inputs and outputs, size, op histogram and,
    for TFLite, what the XNNPACK delegate takes. Needs no TensorFlow.
    """
    from edgeshuffle.models.complexity import stage_costs
    from edgeshuffle.report import render_table

    if model is not None:
        from edgeshuffle.runtime.artifact import artifact_info

        context = click.get_current_context()
        given = [name for name in ("groups", "scale", "input_size", "classes", "stem")
                 if context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise InvalidArgumentError(f"variant options describe a model to build, not an artifact: drop "
                                       f"--{given[0].replace('_', '-')} with MODEL. Received: `model={model}`")

        summary = artifact_info(model)
        click.echo(json.dumps(summary, indent=2) if as_json else render_artifact(summary))
        return
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


def _tensor(t: dict) -> str:
    quant = f", scale {t['scale']:.6g} zero point {t['zero_point']}" if t["scale"] else ""
    return f"{t['name']}: {t['dtype']} {list(t['shape'])}{quant}"


def render_artifact(summary: dict) -> str:
    from edgeshuffle.report import render_table

    meta = summary["metadata"]
    lines = [f"{summary['path']}: {summary['format']}, {summary['size_bytes'] / 1024:.1f} KiB"]
    if meta:
        pre, names = meta["preprocessing"], meta["class_names"]
        classes = f", {len(names)} classes" if names else (f", {meta['spec']['classes']} classes" if meta["spec"] else "")
        lines.append(f"model: {meta['model']}, {meta['precision']}{classes}"
                     + (f" ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" if names else ""))
        lines.append(f"preprocessing: resize {pre['resize_size']}, crop {pre['input_size']}, "
                     f"{pre['channel_order']}, mean {pre['mean']}, std {pre['std']}, {pre['interpolation']}")
        if meta["form"]:
            lines.append("graph form: " + ", ".join(f"{k}={v}" for k, v in meta["form"].items()))
    else:
        lines.append("metadata: none (not written by edgeshuffle)")
    lines += [f"input  {_tensor(t)}" for t in summary["inputs"]]
    lines += [f"output {_tensor(t)}" for t in summary["outputs"]]
    if "delegation" in summary:
        d = summary["delegation"]
        outside = ", ".join(f"{op} x{n}" for op, n in d["undelegated_ops"].items()) or "none"
        lines.append(f"XNNPACK: {d['partitions']} partition(s), {d['delegated_nodes']} of {d['nodes']} ops "
                     f"delegated; outside: {outside}")
    if "opsets" in summary:
        lines.append("opsets: " + ", ".join(f"{k} {v}" for k, v in summary["opsets"].items()))
    rows = [[op, str(n)] for op, n in sorted(summary["op_histogram"].items(), key=lambda kv: (-kv[1], kv[0]))]
    lines.append(render_table("ops", ["op", "count"], rows))
    return "\n".join(lines)
