"""int8 vs float latency, in one interleaved run: the targets of `edgeshuffle quantize`.

ShuffleNet 1x g=3 at 224x224 (fresh weights: latency does not depend on
them), calibrated on the shipped ImageNet calibration images, 1 thread:

- LiteRT: edgeshuffle int8 vs edgeshuffle float32 (target <= 0.5x);
- LiteRT: edgeshuffle int8 vs a plain TFLiteConverter int8 conversion of the
  same model (native grouped convs, dynamic batch; target <= 0.6x);
- onnxruntime: int8 QDQ vs float32 (target <= 0.8x);
- control: keras.applications MobileNetV2 (alpha 1.0, weights=None), float32
  and plain int8, to show what int8 buys on this CPU at all.

Every model is timed by `edgeshuffle bench`'s library in one run, round-robin,
so machine drift hits all of them alike.

    .venv/bin/python benchmarks/bench_quantize.py [--runs 100] [--calibration 50]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parent.parent


def plain_int8(model, calibration) -> bytes:
    """What a user gets from TFLiteConverter with the usual full-integer settings and no rewrites."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    with contextlib.redirect_stdout(io.StringIO()):  # Keras' export prints every captured variable
        return converter.convert()


def plain_float(model) -> bytes:
    import tensorflow as tf

    with contextlib.redirect_stdout(io.StringIO()):
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="timed runs per model")
    parser.add_argument("--calibration", type=int, default=50, help="calibration images")
    parser.add_argument("--threads", default="1")
    args = parser.parse_args()

    import keras
    import numpy as np

    from edgeshuffle.bench import BenchConfig, run_bench
    from edgeshuffle.data.sets import calibration_set
    from edgeshuffle.export.convert import export_float
    from edgeshuffle.export.quantize import QuantizeConfig, quantize
    from edgeshuffle.models.io import save_model
    from edgeshuffle.graph import rewrite
    from edgeshuffle.graph.passes import PASSES
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.variants import ModelSpec

    folder = Path(tempfile.mkdtemp(prefix="bench_quantize_"))
    images = REPO / "calibration" / "imagenet-val-200"
    model = build_shufflenet(ModelSpec(groups=3, scale=1.0))
    save_model(model, folder / "model.keras")
    export_float(model, folder)
    quantize(model, folder, QuantizeConfig(calibration=images, num_calibration=args.calibration))
    calibration = calibration_set(images, model.spec.preprocessing, args.calibration).inputs()
    native = rewrite(model, passes=[p for p in PASSES if p.name == "grouped_conv"]).model  # dynamic batch
    (folder / "plain_int8.tflite").write_bytes(plain_int8(native, calibration))

    mobilenet = keras.applications.MobileNetV2(alpha=1.0, weights=None, input_shape=(224, 224, 3))
    uniform = np.random.default_rng(0).uniform(-1, 1, (args.calibration, 224, 224, 3)).astype(np.float32)
    (folder / "mobilenetv2_float32.tflite").write_bytes(plain_float(mobilenet))
    (folder / "mobilenetv2_int8.tflite").write_bytes(plain_int8(mobilenet, uniform))

    names = ["float32.tflite", "int8.tflite", "plain_int8.tflite", "float32.onnx", "int8.onnx",
             "mobilenetv2_float32.tflite", "mobilenetv2_int8.tflite"]
    threads = tuple(int(t) for t in args.threads.split(","))
    report = run_bench(BenchConfig(models=tuple(folder / n for n in names), threads=threads, runs=args.runs))
    machine = report.machine
    print(f"\n{machine.get('cpu_model')} ({machine.get('architecture')}, {machine.get('logical_cores')} cores, "
          f"{' '.join(machine.get('isa_features', []))}); {args.runs} interleaved runs per model")
    for count in threads:
        p50 = {Path(r.model).name: r.latency_ms.p50 for r in report.results if r.threads == count}
        print(f"\n{count} thread(s), p50 ms: " + ", ".join(f"{n} {p50[n]:.2f}" for n in names))
        checks = [
            ("LiteRT int8 / float32", p50["int8.tflite"] / p50["float32.tflite"], 0.5),
            ("LiteRT int8 / plain-converter int8", p50["int8.tflite"] / p50["plain_int8.tflite"], 0.6),
            ("onnxruntime int8 / float32", p50["int8.onnx"] / p50["float32.onnx"], 0.8),
            ("control: MobileNetV2 int8 / float32",
             p50["mobilenetv2_int8.tflite"] / p50["mobilenetv2_float32.tflite"], None),
        ]
        for label, ratio, target in checks:
            verdict = "" if target is None else f"  (target <= {target}: {'met' if ratio <= target else 'NOT met'})"
            print(f"  {label:38s} {ratio:5.2f}x{verdict}")


if __name__ == "__main__":
    main()
