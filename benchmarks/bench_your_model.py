"""Your own Keras model through edgeshuffle vs the plain converters: the blog's ShuffleNet and MobileNetV2.

Models (224x224, 1000 classes, random weights: latency and structure do not
depend on training, and every int8 is compared with its own float model):

- the blog's ShuffleNet (g=2), written by running the blog case script
  (``--blog-script``, default: ``shared/cases/blog_shufflenet.py`` found in a parent folder) to a ``.keras``;
- ``keras.applications.MobileNetV2(weights=None)`` (nothing to rewrite).

Each through (a) the plain ``TFLiteConverter`` (float, and full-integer int8
calibrated on the same images) and ``tf2onnx.convert.from_keras``; (b)
edgeshuffle's ``convert`` and ``quantize``. For every artifact: max tensor
rank, SHAPE/STRIDED_SLICE/PACK count, XNNPACK partitions and delegated ops,
p50 latency (LiteRT, 1 thread, interleaved rounds on one input); for ONNX the
Transpose count and whether onnxruntime loads it; for each int8 its top-1
agreement and output cosine with the float Keras model on real images
(``--images``: the first half calibrates, the second half evaluates).

Usage: python benchmarks/bench_your_model.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("SHAPE", "STRIDED_SLICE", "PACK")


def find_blog_script() -> Path | None:
    for parent in ROOT.parents:
        candidate = parent / "shared" / "cases" / "blog_shufflenet.py"
        if candidate.is_file():
            return candidate
    return None


def plain_tflite(model, calibration=None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def plain_onnx(model, path: Path) -> dict:
    import onnx
    import tensorflow as tf
    import tf2onnx

    try:
        spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="input"),)
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
        onnx.save(proto, str(path))
    except Exception as error:
        return {"transposes": None, "ort": f"conversion failed: {str(error).splitlines()[0][:80]}"}
    return {"transposes": sum(n.op_type == "Transpose" for n in proto.graph.node), "ort": _ort_loads(path)}


def _ort_loads(path: Path) -> str:
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return "loads"
    except Exception as error:
        return f"refused: {str(error).splitlines()[0][:60]}"


def structure(path: Path) -> dict:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgeshuffle.runtime.delegation import xnnpack_delegation

    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ops = [op["op_name"] for op in interpreter._get_ops_details()]
    delegation = xnnpack_delegation(path)
    return {"rank": max(len(t["shape"]) for t in interpreter.get_tensor_details()),
            "forbidden": sum(op in FORBIDDEN for op in ops), "partitions": delegation.partitions,
            "delegated": f"{delegation.delegated_nodes}/{delegation.nodes}",
            "outside": ",".join(sorted(delegation.undelegated_ops)) or "-"}


def litert_outputs(path: Path, inputs: np.ndarray) -> np.ndarray:
    from edgeshuffle.runtime.tflite_runner import TFLiteRunner

    with TFLiteRunner(path, threads=1) as runner:
        return runner.infer(inputs)


def interleaved_p50(paths: dict[str, Path], feed: np.ndarray, rounds: int, per_round: int) -> dict[str, float]:
    from edgeshuffle.runtime.tflite_runner import TFLiteRunner

    runners = {name: TFLiteRunner(path, threads=1) for name, path in paths.items()}
    times = {name: [] for name in paths}
    feeds = {}
    for name, runner in runners.items():
        runner.activate()
        info = runner.input_info()
        x = feed
        if info.quantized:
            scale, zero = runner._input["quantization"]
            x = np.clip(np.round(feed / scale) + zero, -128, 127).astype(np.int8)
        feeds[name] = x
        for _ in range(5):
            runner.timed_call(x)
    for _ in range(rounds):
        for name, runner in runners.items():
            times[name].extend(runner.timed_call(feeds[name]) for _ in range(per_round))
    for runner in runners.values():
        runner.deactivate()
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def sharpen_head(model, images: np.ndarray, spread: float = 3.0) -> None:
    """Scale the classifier so its logits on ``images`` have standard deviation ``spread``.

    Random weights give a flat softmax (about 1/1000 everywhere), which an int8
    output quantizes to nothing; a peaked one makes agreement with the float
    model mean something. The same model then goes to every converter.
    """
    import keras

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1]
    features = keras.Model(model.inputs, dense.input).predict(images, batch_size=16, verbose=0)
    weights = dense.get_weights()
    logits = features @ weights[0] + (weights[1] if len(weights) > 1 else 0)
    factor = spread / float(logits.std())
    dense.set_weights([w * factor for w in weights])


def closeness(reference: np.ndarray, got: np.ndarray) -> str:
    agree = float(np.mean(reference.argmax(1) == got.argmax(1)))
    cosine = np.sum(reference * got, 1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(got, axis=1) + 1e-12)
    return f"top-1 agree {100 * agree:5.1f}%, cosine {float(np.mean(cosine)):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blog-script", type=Path, default=find_blog_script())
    parser.add_argument("--images", type=Path, default=ROOT / "calibration" / "imagenet-val-200")
    parser.add_argument("--calibration", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--models", default="blog,mobilenetv2")
    args = parser.parse_args()

    import keras

    from edgeshuffle.data import find_images
    from edgeshuffle.data.sets import load_images
    from edgeshuffle.export.convert import ConvertConfig, convert
    from edgeshuffle.export.quantize import QuantizeConfig, quantize
    from edgeshuffle.machine import machine_info
    from edgeshuffle.models.source import source_model
    from edgeshuffle.preprocessing import Preprocessing

    machine = machine_info()
    print(f"{machine.cpu_model} ({machine.architecture}, {machine.usable_cores} usable cores, "
          f"{' '.join(machine.isa_features)}); load average {open('/proc/loadavg').read().split()[:3]}")
    preprocessing = Preprocessing.imagenet(224)
    paths = find_images(args.images)
    images = load_images(paths, preprocessing).inputs
    calibration_images, eval_images = images[:args.calibration], images[args.calibration:]
    work = Path(tempfile.mkdtemp(prefix="bench_your_model_"))
    models = {}
    if "blog" in args.models:
        if args.blog_script is None:
            sys.exit("no blog case script found: give --blog-script")
        blog_file = work / "blog.keras"
        subprocess.run([sys.executable, str(args.blog_script), str(blog_file), "--input", "224", "--classes", "1000",
                        "--groups", "2"], check=True, capture_output=True)
        models["blog"] = keras.models.load_model(blog_file)
    if "mobilenetv2" in args.models:
        models["mobilenetv2"] = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classes=1000)

    for name, model in models.items():
        sharpen_head(model, calibration_images[:32])
        folder = work / name
        folder.mkdir()
        started = time.time()
        (folder / "plain_float32.tflite").write_bytes(plain_tflite(model))
        (folder / "plain_int8.tflite").write_bytes(plain_tflite(model, calibration_images))
        onnx_plain = plain_onnx(model, folder / "plain_float32.onnx")
        source = source_model(model, preprocessing=preprocessing)
        out = folder / "edgeshuffle"
        report = convert(source, out, ConvertConfig())
        calib_dir = folder / "calibration"
        calib_dir.mkdir()
        for path in paths[:args.calibration]:
            os.symlink(path, calib_dir / path.name)
        quantize(source, out, QuantizeConfig(calibration=calib_dir, num_calibration=args.calibration))
        artifacts = {"plain float32": folder / "plain_float32.tflite", "plain int8": folder / "plain_int8.tflite",
                     "edgeshuffle float32": out / "float32.tflite", "edgeshuffle int8": out / "int8.tflite"}
        reference = np.asarray(model.predict(eval_images, batch_size=16, verbose=0))
        p50 = interleaved_p50(artifacts, eval_images[:1], args.rounds, args.per_round)
        print(f"\n== {name}: {model.count_params() / 1e6:.2f} M parameters; built and converted in "
              f"{time.time() - started:.0f} s; parity gate {report.status} "
              f"(max rel. error {max(c['max_relative_error'] for c in report.parity['comparisons'].values()):.1e})")
        print(f"{'artifact':22s} {'rank':>4s} {'SHAPE..':>7s} {'parts':>5s} {'delegated':>9s} {'p50 ms':>7s}  "
              f"outside XNNPACK; int8 vs float Keras on {len(eval_images)} images")
        for label, path in artifacts.items():
            s = structure(path)
            close = closeness(reference, litert_outputs(path, eval_images)) if "int8" in label else ""
            print(f"{label:22s} {s['rank']:4d} {s['forbidden']:7d} {s['partitions']:5d} {s['delegated']:>9s} "
                  f"{p50[label]:7.2f}  {s['outside']}  {close}")
        print(f"int8 edgeshuffle / plain int8: {p50['edgeshuffle int8'] / p50['plain int8']:.2f}x; "
              f"edgeshuffle float / plain float: {p50['edgeshuffle float32'] / p50['plain float32']:.2f}x")
        print(f"ONNX plain (tf2onnx.from_keras): {onnx_plain['transposes']} Transpose, {onnx_plain['ort']}; "
              f"edgeshuffle float32.onnx: {report.onnx['transposes']} Transpose "
              f"({report.onnx['channel_shuffles']} shuffles), {_ort_loads(out / 'float32.onnx')}")
        fired = ", ".join(f"{p['name']} {p['fired']}" for p in report.rewrites["passes"])
        print(f"rewrites: {fired}")
    print(f"\nload average at the end {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
