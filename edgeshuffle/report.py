"""Rendering results for people: terminal tables (and, later, Markdown and plots)."""

from __future__ import annotations

import io


def render_table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    """A boxed terminal table; numbers (right-aligned) are kept as the caller formatted them."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    buffer = io.StringIO()
    Console(file=buffer, width=120, color_system=None).print(table)
    return buffer.getvalue().rstrip()


def render_markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- The demo report: one table and two plots over the four artifacts ---------------------------------


def demo_rows(quantize_report, bench_report) -> list[dict]:
    """Per artifact: precision, accuracy, agreement with Keras, size and p50 latency (1 thread)."""
    from pathlib import Path

    parity = {Path(r["model"]).name: r for r in (quantize_report.parity or {}).get("results", [])}
    latency = {Path(r.model).name: r for r in bench_report.results if r.threads == min(bench_report.config.threads)}
    rows = []
    for name in ("model.keras", "float32.tflite", "int8.tflite", "float32.onnx", "int8.onnx"):
        result = parity.get(name, {})
        bench = latency.get(name)
        size = (Path(quantize_report.output_dir) / name).stat().st_size
        rows.append({"artifact": name, "precision": result.get("precision") or ("float32" if "32" in name else "int8"),
                     "accuracy": result.get("accuracy"), "agreement": result.get("top1_agreement"),
                     "size_bytes": size, "p50_ms": bench.latency_ms.p50 if bench else None,
                     "samples_ms": list(bench.samples_ms) if bench else []})
    return rows


def plot_latency(rows: list[dict], path) -> None:
    """Latency distribution per artifact (box plot of every timed run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in rows if r["samples_ms"]]
    figure, axes = plt.subplots(figsize=(7, 3.8), dpi=120)
    axes.boxplot([r["samples_ms"] for r in timed], showfliers=True)
    axes.set_xticks(range(1, len(timed) + 1), [r["artifact"] for r in timed])
    axes.set_ylabel("latency per image (ms)")
    axes.set_title("Latency per artifact: 1 thread, every timed run")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


MIN_ACCURACY_SPAN = 2.0  # percentage points


def accuracy_axis_limits(values: list[float]) -> tuple[float, float]:
    """Y limits (percent) holding every value with a margin and spanning at least MIN_ACCURACY_SPAN points,
    so that a tenth of a point (a few images) does not fill the plot's height."""
    middle = (max(values) + min(values)) / 2
    half = 1.2 * max(MIN_ACCURACY_SPAN, max(values) - min(values)) / 2
    return middle - half, middle + half


def plot_accuracy_latency(rows: list[dict], path, label: str = "top-1 accuracy (%)") -> None:
    """Accuracy (or agreement) against p50 latency, one point per artifact."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in rows if r["p50_ms"] is not None]
    key = "accuracy" if all(r["accuracy"] is not None for r in points) else "agreement"
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    for r in points:
        marker = "o" if "tflite" in r["artifact"] else "s"
        axes.scatter(r["p50_ms"], 100 * r[key], marker=marker, s=60)
        axes.annotate(r["artifact"], (r["p50_ms"], 100 * r[key]), textcoords="offset points", xytext=(6, 4))
    if points:
        axes.set_ylim(*accuracy_axis_limits([100 * r[key] for r in points]))
        axes.set_xlim(0, 1.25 * max(r["p50_ms"] for r in points))
    axes.set_xlabel("p50 latency per image, 1 thread (ms)")
    axes.set_ylabel(label if key == "accuracy" else "top-1 agreement with Keras (%)")
    axes.set_title("Accuracy vs latency")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def demo_markdown(rows: list[dict], quantize_report, bench_report, model_note: str) -> str:
    parity = quantize_report.parity or {}
    machine = bench_report.machine
    table = render_markdown_table(
        ["artifact", "precision", "accuracy", "top-1 agreement with Keras", "size (MB)", "p50 (ms, 1 thread)"],
        [[r["artifact"], r["precision"], "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}%",
          "-" if r["agreement"] is None else f"{100 * r['agreement']:.2f}%", f"{r['size_bytes'] / 1e6:.2f}",
          "-" if r["p50_ms"] is None else f"{r['p50_ms']:.3f}"] for r in rows])
    xnnpack = quantize_report.tflite["xnnpack"]
    return "\n".join([
        "# edgeshuffle demo report", "",
        model_note, "",
        f"Evaluated on {parity.get('evaluated', 0)} images of `{parity.get('images', '-')}` (never used for "
        f"calibration); int8 calibrated on {quantize_report.calibration['images']} images of "
        f"`{quantize_report.calibration['source']}`. Gate: {quantize_report.status}"
        + (f" ({quantize_report.reason})" if quantize_report.reason else "") + ".", "",
        table, "",
        f"int8.tflite: {xnnpack['partitions']} XNNPACK partition(s), "
        f"{'no op' if not xnnpack['undelegated_ops'] else xnnpack['undelegated_ops']} outside the delegate.", "",
        f"Latency: `edgeshuffle bench`, {bench_report.results[0].latency_ms.runs}+ interleaved runs per artifact "
        f"on {machine['cpu_model']} ({machine['architecture']}, {machine['logical_cores']} cores, "
        f"{' '.join(machine['isa_features'])}).", "",
        "![latency per artifact](latency.png)", "",
        "![accuracy vs latency](accuracy_latency.png)", "",
    ])
