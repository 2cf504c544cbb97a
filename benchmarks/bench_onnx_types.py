"""Which integer types int8.onnx should use on this machine: accuracy, exactness and speed in one run.

    .venv/bin/python benchmarks/bench_onnx_types.py MODEL.keras            # a CIFAR-10 model
    .venv/bin/python benchmarks/bench_onnx_types.py MODEL.keras --eval calibration/cifar10-test-2000 --runs 300

Exports MODEL's float32.onnx once, quantizes it with onnxruntime in each of
`quantize`'s --onnx-types (u8u8, u8s8, s8s8) on the same calibration images,
and reports per type:

- accuracy and top-1 agreement with float32.onnx on the labelled --eval images;
- exactness: how far onnxruntime's fused integer kernels land from the same
  QDQ file run op by op with graph optimizations off, in output quantization
  steps (mean and max over --eval images). On x86 without VNNI, u8s8 and
  s8s8 go through VPMADDUBSW, whose 16-bit pair sums saturate;
- p50 latency from one interleaved `edgeshuffle bench` run, 1 thread.

A model that has learnt something is needed for the accuracy column (an
untrained network's logits are near ties).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent


def steps_from_op_by_op(path: Path, inputs, step: float) -> tuple[float, float]:
    """Mean and max |fused kernels - op-by-op QDQ| of the logits, in output quantization steps."""
    import numpy as np
    import onnxruntime as ort

    def logits(level):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return np.concatenate([session.run(None, {name: x[None]})[0] for x in inputs])

    steps = np.abs(logits(ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
                   - logits(ort.GraphOptimizationLevel.ORT_DISABLE_ALL)) / step
    return float(steps.mean()), float(steps.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a trained edgeshuffle .keras model")
    parser.add_argument("--calibration", type=Path, default=REPO / "calibration" / "cifar10-train-300")
    parser.add_argument("--num-calibration", type=int, default=200)
    parser.add_argument("--eval", type=Path, default=REPO / "calibration" / "cifar10-test-2000",
                        help="labelled images (one subfolder per class), never used for calibration")
    parser.add_argument("--runs", type=int, default=300, help="timed runs per artifact")
    args = parser.parse_args()

    from edgeshuffle.bench import BenchConfig, run_bench
    from edgeshuffle.data.sets import calibration_set
    from edgeshuffle.export.convert import ONNX_FILE, export_float
    from edgeshuffle.export.quantize import ONNX_TYPES, onnx_output_scale, write_int8_onnx
    from edgeshuffle.metadata import read_metadata
    from edgeshuffle.models.io import load_model
    from edgeshuffle.parity import image_parity

    folder = Path(tempfile.mkdtemp(prefix="bench_onnx_types_"))
    model = load_model(args.model)
    export_float(model, folder)
    float_onnx = folder / ONNX_FILE
    float_metadata = read_metadata(float_onnx)
    int8_metadata = dataclasses.replace(float_metadata, precision="int8")
    calibration = calibration_set(args.calibration, model.spec.preprocessing, args.num_calibration)
    artifacts = {}
    for types in ONNX_TYPES:
        artifacts[types] = folder / f"int8_{types}.onnx"
        write_int8_onnx(float_onnx, calibration, artifacts[types], int8_metadata, types)

    parity = image_parity([float_onnx, *artifacts.values()], args.eval, reference=float_onnx)
    by_path = {Path(r.model): r for r in parity.results}
    eval_inputs = calibration_set(args.eval, model.spec.preprocessing, min(parity.evaluated, 200)).inputs()
    bench = run_bench(BenchConfig(models=(float_onnx, *artifacts.values()), runs=args.runs))
    p50 = {Path(r.model): r.latency_ms.p50 for r in bench.results}

    print(f"{parity.evaluated} evaluation images ({args.eval.name}), {len(calibration)} calibration images, "
          f"{args.runs} interleaved runs, 1 thread; {folder}")
    float_result = by_path[float_onnx]
    print(f"  {'float32':8s} accuracy {100 * float_result.comparison.accuracy:6.2f}%"
          f"{'':44s}p50 {p50[float_onnx]:7.3f} ms")
    for types, path in artifacts.items():
        result = by_path[path]
        mean_steps, max_steps = steps_from_op_by_op(path, eval_inputs, onnx_output_scale(path))
        c = result.comparison
        print(f"  {types:8s} accuracy {100 * c.accuracy:6.2f}%  agreement {100 * c.top1_agreement:5.1f}%  "
              f"cosine {c.mean_cosine:.4f}  op-by-op mean {mean_steps:.2f} / max {max_steps:.0f} steps  "
              f"p50 {p50[path]:7.3f} ms ({p50[path] / p50[artifacts['u8s8']]:.2f}x u8s8)")


if __name__ == "__main__":
    main()
