"""Every ONNX form of a network against the LiteRT artifacts, float32 and int8, in one interleaved run.

    .venv/bin/python benchmarks/bench_onnx_forms.py [--networks imagenet224 cifar]

Networks: ``imagenet224`` is ShuffleNet 1x g=3 at 224x224 with fresh weights
(latency does not depend on them), calibrated on ``calibration/imagenet-val-200``;
``cifar`` is the shipped ``models/shufflenet_v1_g3_1x_cifar10.keras`` at 32x32,
calibrated on ``calibration/cifar10-train-300``.

Per network it writes ``float32.tflite`` and ``int8.tflite`` (what convert and
quantize write), and per form of :data:`edgeshuffle.export.onnx_forms.ONNX_FORMS`
``float32.<form>.onnx`` and its u8u8 ``int8.<form>.onnx`` (quantize's default
types), plus the default form's u8s8 int8 file. Then one :func:`edgeshuffle.bench.run_bench`
call times all of them round-robin at each thread count (1 and 2), and the
script prints per artifact: p50, the ratio to the LiteRT artifact of the same
precision, and the op histogram of the graph onnxruntime runs after its
optimizations (ORT_ENABLE_ALL, from ``SessionOptions.optimized_model_filepath``).
The machine's CPU, ISA features and load average are printed with the figures.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent
NETWORKS = {
    "imagenet224": ("calibration/imagenet-val-200", 50),
    "cifar": ("calibration/cifar10-train-300", 200),
}


def load_network(name: str):
    from edgeshuffle.models.io import load_model
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.variants import ModelSpec

    if name == "imagenet224":
        return build_shufflenet(ModelSpec(groups=3, scale=1.0, input_size=224))
    return load_model(REPO / "models" / "shufflenet_v1_g3_1x_cifar10.keras")


def optimized_histogram(path: Path) -> dict[str, int]:
    """Op types of the graph onnxruntime runs (ORT_ENABLE_ALL, CPU EP), domain-less names."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as folder:
        options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath).graph
    return dict(sorted(collections.Counter(node.op_type for node in graph.node).items()))


def write_artifacts(name: str, folder: Path) -> dict[str, Path]:
    """Every artifact of network ``name`` in ``folder``, keyed by label (``float32.tflite``, ``int8.nchw.onnx``...)."""
    import onnx

    from edgeshuffle.data.sets import calibration_set
    from edgeshuffle.export.convert import ONNX_FILE, TFLITE_FILE, export_float
    from edgeshuffle.export.onnx import remove_unused
    from edgeshuffle.export.onnx_forms import DEFAULT_ONNX_FORM, ONNX_FORMS
    from edgeshuffle.export.quantize import quantize_tflite, write_int8_onnx
    from edgeshuffle.graph import INT8_SHUFFLE, RewriteOptions, rewrite
    from edgeshuffle.metadata import read_metadata

    model = load_network(name)
    export_float(model, folder, onnx_form="nchw")
    calibration_folder, count = NETWORKS[name]
    calibration = calibration_set(REPO / calibration_folder, model.spec.preprocessing, count)
    artifacts = {"float32.tflite": folder / TFLITE_FILE, "int8.tflite": folder / "int8.tflite"}
    int8_edge = rewrite(model, RewriteOptions(shuffle=INT8_SHUFFLE)).model
    artifacts["int8.tflite"].write_bytes(quantize_tflite(int8_edge, calibration))
    float_metadata = read_metadata(folder / ONNX_FILE)
    int8_metadata = dataclasses.replace(float_metadata, precision="int8")
    for form in ONNX_FORMS.values():
        proto = onnx.load(str(folder / ONNX_FILE))
        for apply in form.passes:
            apply(proto)
        remove_unused(proto)
        path = artifacts[f"float32.{form.name}.onnx"] = folder / f"float32.{form.name}.onnx"
        onnx.save(proto, str(path))
        artifacts[f"int8.{form.name}.onnx"] = folder / f"int8.{form.name}.onnx"
        write_int8_onnx(path, calibration, artifacts[f"int8.{form.name}.onnx"], int8_metadata, "u8u8")
    default = artifacts[f"float32.{DEFAULT_ONNX_FORM}.onnx"]
    artifacts[f"int8.{DEFAULT_ONNX_FORM}.u8s8.onnx"] = folder / f"int8.{DEFAULT_ONNX_FORM}.u8s8.onnx"
    write_int8_onnx(default, calibration, artifacts[f"int8.{DEFAULT_ONNX_FORM}.u8s8.onnx"], int8_metadata, "u8s8")
    return artifacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--runs", type=int, default=100, help="timed runs per artifact and thread count")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="least timed compute per artifact")
    args = parser.parse_args()

    from edgeshuffle.bench import BenchConfig, run_bench
    from edgeshuffle.export.onnx_forms import DEFAULT_ONNX_FORM
    from edgeshuffle.machine import machine_info

    machine = machine_info()
    print(f"{machine.cpu_model}; {machine.architecture}, {machine.usable_cores} usable cores; ISA: "
          f"{', '.join(machine.isa_features)}; onnxruntime {machine.versions.get('onnxruntime')}, "
          f"ai-edge-litert {machine.versions.get('ai-edge-litert')}; default form: {DEFAULT_ONNX_FORM}")
    for name in args.networks:
        folder = Path(tempfile.mkdtemp(prefix=f"bench_onnx_forms_{name}_"))
        artifacts = write_artifacts(name, folder)
        histograms = {label: optimized_histogram(path) for label, path in artifacts.items() if label.endswith(".onnx")}
        load_before = Path("/proc/loadavg").read_text().split()[:3]
        report = run_bench(BenchConfig(models=tuple(artifacts.values()), threads=tuple(args.threads),
                                       runs=args.runs, min_seconds=args.min_seconds))
        load_after = Path("/proc/loadavg").read_text().split()[:3]
        label_of = {str(path): label for label, path in artifacts.items()}
        print(f"\n{name}: {args.runs}+ interleaved runs per artifact (at least {args.min_seconds:g} s each); "
              f"load average {' '.join(load_before)} before, {' '.join(load_after)} after; {folder}")
        for threads in args.threads:
            p50 = {label_of[r.model]: r.latency_ms.p50 for r in report.results if r.threads == threads}
            print(f"  {threads} thread(s)       p50 ms   vs LiteRT")
            for label, value in p50.items():
                litert = p50["int8.tflite" if label.startswith("int8") else "float32.tflite"]
                print(f"    {label:28s} {value:7.3f}   {value / litert:5.2f}x")
        print("  onnxruntime's optimized graph (ORT_ENABLE_ALL):")
        for label, histogram in histograms.items():
            print(f"    {label:28s} {', '.join(f'{op} {n}' for op, n in histogram.items())}")


if __name__ == "__main__":
    main()
