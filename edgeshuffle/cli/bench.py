"""`edgeshuffle bench`: latency of artifacts on this machine (LiteRT, onnxruntime; no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeshuffle.cli.common import preprocessing_options, progress_bar, reports_errors, tflite_kernels_option


def check_json_target(path: Path | None) -> None:
    """Fail before the work, not after it, when the --json file cannot be written."""
    import os

    from edgeshuffle.errors import InputFileError

    if path is None:
        return
    folder = Path(path).parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise InputFileError(f"cannot write --json {path}: {folder} is not a writable folder")
    if Path(path).is_dir():
        raise InputFileError(f"cannot write --json {path}: it is a folder")


def parse_threads(text: str) -> tuple[int, ...]:
    from edgeshuffle.errors import InvalidArgumentError

    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InvalidArgumentError(f"Threads must be a comma-separated list of integers. "
                                   f"Received: `threads={text}`") from None
    if not counts:
        raise InvalidArgumentError(f"Give at least one thread count. Received: `threads={text}`")
    return counts


@click.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--threads", default="1", show_default=True, help="Thread counts, comma-separated (1,2,4).")
@click.option("--runs", type=int, default=100, show_default=True, help="Timed runs per model and thread count.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs first.")
@click.option("--min-seconds", type=float, default=0.0, show_default=True,
              help="Keep timing until each model has spent at least this long.")
@click.option("--runtime", type=click.Choice(["auto", "tflite", "onnx"]), default="auto", show_default=True,
              help="auto: by file suffix.")
@tflite_kernels_option
@click.option("--inputs", type=click.Path(path_type=Path), default=None,
              help="A folder of images (preprocessed by each artifact's metadata) instead of random inputs.")
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="Print every model's speed relative to this one (measured in the same run).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Also write the full report (schema edgeshuffle.bench, version 1) here.")
@reports_errors
@preprocessing_options(labels=False)
def bench(models, threads, runs, warmup, min_seconds, runtime, tflite_kernels, inputs, baseline, seed, json_path,
          preprocessing):
    """Latency of .tflite / .onnx MODELS on this machine, with why a model is slow.

    Per model and thread count: load time, first inference, mean/std/min/
    p50/p90/p99/max of the timed runs, throughput and memory; for LiteRT
    the XNNPACK delegate partitions and the ops left outside them; for
    onnxruntime the providers and optimization level. Runs are interleaved
    round-robin across models so machine drift cancels in --baseline ratios.
    With --inputs, artifacts made elsewhere (no edgeshuffle metadata) are fed
    images preprocessed as --preprocess/--mean/--std/--resize/--channel-order
    say.
    """
    from edgeshuffle.bench import BenchConfig

    check_json_target(json_path)
    config = BenchConfig(models=tuple(models), threads=parse_threads(threads), runs=runs, warmup=warmup,
                         min_seconds=min_seconds, runtime=runtime, tflite_kernels=tflite_kernels, inputs=inputs,
                         baseline=baseline, seed=seed,
                         preprocessing=preprocessing if preprocessing.given else None)
    report = _run_with_progress(config)
    click.echo(render_bench(report))
    if json_path is not None:
        from edgeshuffle.atomic import write_text

        write_text(json_path, json.dumps(report.to_dict(), indent=2) + "\n")
        click.echo(f"wrote {json_path}")


def _run_with_progress(config):
    from edgeshuffle.bench import run_bench

    with progress_bar(unit="runs") as bar:
        tasks = {}

        def progress(phase, done, total):
            if phase not in tasks:
                for task in tasks.values():
                    bar.update(task, visible=False)
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        return run_bench(config, progress=progress)


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _delegation_text(result) -> str:
    if result.delegation is None:
        describe = result.runner
        return f"{'+'.join(p.replace('ExecutionProvider', '') for p in describe.get('providers', []))}, " \
               f"opt {describe.get('graph_optimization_level')}"
    d = result.delegation
    if result.runner.get("kernels", "xnnpack") != "xnnpack":
        return f"XNNPACK off ({result.runner['kernels']} kernels)"
    outside = ", ".join(f"{op} x{n}" for op, n in d["undelegated_ops"].items())
    text = f"XNNPACK {d['partitions']} partition{'s' if d['partitions'] != 1 else ''}"
    return f"{text}; outside: {outside}" if outside else f"{text}, all {d['nodes']} ops"


def render_table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    """Like :func:`edgeshuffle.report.render_table`, but as wide as the columns need (no truncation)."""
    import io

    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == 0 else "right", no_wrap=index == 0)
    for row in rows:
        table.add_row(*row)
    buffer = io.StringIO()
    Console(file=buffer, width=240, color_system=None).print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip().splitlines())


def render_bench(report) -> str:
    machine = report.machine
    lines = [f"machine: {machine['cpu_model']} ({machine['architecture']}, {machine['logical_cores']} cores, "
             f"{' '.join(machine['isa_features']) or 'no listed ISA features'}); {machine['os']}; "
             f"{machine['python']}; " + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()
                                                  if k in ("ai-edge-litert", "onnxruntime"))]
    if machine.get("note"):
        lines.append(f"WARNING: {machine['note']}")
    baseline = report.config.baseline is not None
    headers = ["model", "thr", "load ms", "1st ms", "mean", "std", "min", "p50", "p90", "p99", "max", "img/s",
               "+RSS MB"] + (["speedup"] if baseline else [])
    rows = []
    for r in report.results:
        s = r.latency_ms
        row = [r.label, str(r.threads), _ms(r.load_ms), _ms(r.first_inference_ms), _ms(s.mean), _ms(s.std),
               _ms(s.min), _ms(s.p50), _ms(s.p90), _ms(s.p99), _ms(s.max), f"{r.throughput_per_s:.0f}",
               f"{r.rss_growth_mb:.1f}"]
        if baseline:
            row.append(f"{r.speedup:.2f}x")
        rows.append(row)
    runs = report.results[0].latency_ms.runs if report.results else 0
    lines.append(render_table(f"latency in ms over >= {runs} timed runs, inputs: {report.inputs_source}"
                              + (f" ({report.inputs_skipped} skipped)" if report.inputs_skipped else "")
                              + (f"; speedup = baseline p50 / p50 ({Path(str(report.config.baseline)).name})"
                                 if baseline else ""), headers, rows))
    seen = set()
    how = []
    for r in report.results:
        if r.model in seen:
            continue
        seen.add(r.model)
        shape = "x".join(str(d) for d in r.input["shape"])
        how.append([r.label, f"{r.runner['runtime']} {r.runner.get('runtime_version') or ''}".strip(),
                    r.precision or "?", f"{r.input['dtype']} {shape}", _delegation_text(r)])
    lines.append(render_table("how each model ran", ["model", "runtime", "precision", "input", "delegation"],
                              how))
    lines.append(f"peak resident memory of this process: {report.peak_rss_mb:.1f} MB")
    return "\n".join(lines)
