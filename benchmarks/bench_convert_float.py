"""Float TFLite latency: edgeshuffle's rewritten graph vs a plain TFLiteConverter conversion.

ShuffleNet 1x g=3 at 224x224 (fresh weights: latency does not depend on them),
LiteRT with its default XNNPACK delegate, 1 thread. Variants:

- ``rewritten/reshape``: every pass of ``edgeshuffle.graph`` (static batch 1,
  native grouped convs, shuffle after the depthwise conv, dwconv shortcut pool,
  ReLU before the concat, reshape shuffle), what ``edgeshuffle convert`` writes;
- ``rewritten/gather``: the same with ``--shuffle gather``;
- ``plain/native``: ``tf.lite.TFLiteConverter.from_keras_model`` of the model
  with native grouped convs and a dynamic batch (the issue's baseline);
- ``plain/split``: the same converter on the model as built (one conv per
  group, dynamic batch);
- ``plain/keras-groups``: the same converter on the network written with
  Keras 3's own ``Conv2D(groups=g)`` (reported whether or not it converts).

Runs are interleaved (one round = a block of invokes per variant, in turn) and
each variant's figure is the median of all its invokes.

    .venv/bin/python benchmarks/bench_convert_float.py [--rounds 15 --runs 20 --size 224]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def keras_groups_model(model):
    """The same network with every grouped 1x1 conv as ``keras.layers.Conv2D(groups=g)``, same weights."""
    import keras

    from edgeshuffle.models import shufflenet

    original = shufflenet._pointwise

    def pointwise(x, filters, groups, form, name):
        return keras.layers.Conv2D(filters, 1, groups=groups, use_bias=False, name=name)(x)

    shufflenet._pointwise = pointwise
    try:
        clone = shufflenet.build_shufflenet(model.spec)
    finally:
        shufflenet._pointwise = original
    for layer in clone.layers:
        weights = model.get_layer(layer.name).get_weights()
        if weights:
            layer.set_weights(weights)
    return clone


def plain_tflite(model) -> bytes:
    import contextlib
    import io

    import tensorflow as tf

    with contextlib.redirect_stdout(io.StringIO()):  # Keras' export prints every captured variable
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def histogram_diff(ops: dict[str, int], reference: dict[str, int]) -> str:
    """Ops whose counts differ from the reference graph's, as ``NAME ref->this``."""
    names = sorted(set(ops) | set(reference))
    diff = [f"{n} {reference.get(n, 0)}->{ops.get(n, 0)}" for n in names if ops.get(n, 0) != reference.get(n, 0)]
    return ", ".join(diff) or "same ops"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=20, help="invokes per variant per round")
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()

    import numpy as np

    from edgeshuffle.export.tflite import float_tflite_bytes, tflite_op_histogram
    from edgeshuffle.graph import RewriteOptions, rewrite
    from edgeshuffle.graph.passes import PASSES
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.variants import ModelSpec
    from edgeshuffle.runtime import TFLiteRunner
    from edgeshuffle.runtime.delegation import xnnpack_delegation

    model = build_shufflenet(ModelSpec(groups=3, scale=1.0, input_size=args.size))
    builders = {
        "rewritten/reshape": lambda: float_tflite_bytes(rewrite(model, RewriteOptions(shuffle="reshape")).model),
        "rewritten/gather": lambda: float_tflite_bytes(rewrite(model, RewriteOptions(shuffle="gather")).model),
        "plain/native": lambda: plain_tflite(rewrite(model, passes=[p for p in PASSES
                                                                   if p.name == "grouped_conv"]).model),
        "plain/split": lambda: plain_tflite(model),
        "plain/keras-groups": lambda: plain_tflite(keras_groups_model(model)),
    }
    folder = Path(tempfile.mkdtemp(prefix="bench_convert_"))
    paths, notes, histograms = {}, {}, {}
    for name, build in builders.items():
        start = time.perf_counter()
        try:
            data = build()
        except Exception as error:  # report what happens, keep benchmarking the rest
            notes[name] = f"conversion failed: {type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:160]}"
            print(f"{name}: {notes[name]}", flush=True)
            continue
        paths[name] = folder / f"{name.replace('/', '_')}.tflite"
        paths[name].write_bytes(data)
        report = xnnpack_delegation(paths[name])
        histograms[name] = tflite_op_histogram(paths[name])
        diff = histogram_diff(histograms[name], histograms.get("rewritten/reshape", histograms[name]))
        notes[name] = (f"{report.partitions} XNNPACK partition(s), {report.nodes} ops, not delegated: "
                       f"{report.undelegated_ops or 'none'}; vs rewritten/reshape: {diff}")
        print(f"{name}: converted in {time.perf_counter() - start:.0f} s; {notes[name]}", flush=True)

    x = np.random.default_rng(0).standard_normal((1, args.size, args.size, 3), dtype=np.float32)
    runners = {}
    for name, path in paths.items():
        runner = TFLiteRunner(path, threads=1)
        runner.activate()
        try:
            for _ in range(5):  # warm-up
                runner.infer(x)
            runners[name] = runner
        except Exception as error:  # e.g. a graph LiteRT cannot run
            notes[name] += f"; does not run: {(str(error).splitlines() or [''])[0][:120]}"
            print(f"{name}: {notes[name]}", flush=True)
    times = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, runner in runners.items():
            feed = runner.quantize_input(x)
            for _ in range(args.runs):
                runner.run_raw(feed)
                times[name].append(runner.last_inference_seconds)
    medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}

    print(f"\nShuffleNet 1x g=3 {args.size}x{args.size}, float32 TFLite, LiteRT "
          f"XNNPACK 1 thread, {args.rounds} rounds x {args.runs} interleaved invokes; "
          f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}")
    reference = medians.get("rewritten/reshape")
    for name in builders:
        if name in medians:
            ratio = f"{medians[name] / reference:5.2f}x rewritten/reshape" if reference else ""
            print(f"  {name:20s} {medians[name]:7.2f} ms  {ratio}   [{notes[name]}]")
        else:
            print(f"  {name:20s}     n/a   [{notes.get(name, '')}]")
    if reference and "plain/native" in medians:
        print(f"speed-up of the rewritten graph over plain/native: {medians['plain/native'] / reference:.2f}x")
    if reference and "rewritten/gather" in medians:
        print(f"gather / reshape shuffle: {medians['rewritten/gather'] / reference:.2f}x")


if __name__ == "__main__":
    main()
