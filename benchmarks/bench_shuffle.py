"""What the channel shuffle costs in int8, against MobileNetV2, in one interleaved run.

Converts, in one run and the same way (int8: ``quantize_tflite`` on the same
calibration images; float: ``float_tflite_bytes``), fresh-weight 224x224
models (latency does not depend on the weights):

- ShuffleNet 1x g=3 and g=8 as the passes of ``edgeshuffle.graph`` write it
  (what ``quantize`` writes), and with the shuffle before / after the
  depthwise conv (the ``shuffle_after_depthwise`` pass on or off);
- the ShuffleNet 1x g=3 graph with its shuffles removed: a lower bound, not
  a model (``ChannelShuffle`` monkeypatched to the identity while it is
  built and converted);
- keras.applications MobileNetV2 alpha 0.5 and 1.0 (weights=None), the
  calibration images scaled to [-1, 1] as MobileNetV2 expects.

Every model is timed by `edgeshuffle bench`'s library in one run, round-robin
(so load drift hits all alike), at 1 and 2 threads. Prints p50 latencies,
MACs per millisecond (ShuffleNet: ``total_macs``; MobileNetV2: 97 M and
300 M, Sandler et al. 2018, Table 6 / the keras.applications table), the
XNNPACK partitions of every int8 graph, the share of the shuffles
((with - without) / with) and ShuffleNet 1x g=3 int8 / MobileNetV2 0.5 int8.

    .venv/bin/python benchmarks/bench_shuffle.py [--runs 200] [--calibration 50] [--threads 1,2]
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
MOBILENET_V2_MACS = {0.5: 97_000_000, 1.0: 300_000_000}


@contextlib.contextmanager
def shuffles_removed():
    """ChannelShuffle computes the identity: the ShuffleNet graph without its shuffles."""
    from edgeshuffle.models.layers import ChannelShuffle

    original = ChannelShuffle.call
    ChannelShuffle.call = lambda self, x: x
    try:
        yield
    finally:
        ChannelShuffle.call = original


def shufflenet(groups: int, shuffle: str | None = None, after_dw: bool = True):
    """ShuffleNet 1x through the edge passes (int8 shuffle by default); ``after_dw=False`` skips the move."""
    from edgeshuffle.graph import INT8_SHUFFLE, RewriteOptions, rewrite
    from edgeshuffle.graph.passes import PASSES
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.variants import ModelSpec

    passes = [p for p in PASSES if after_dw or p.name != "shuffle_after_depthwise"]
    model = build_shufflenet(ModelSpec(groups=groups, scale=1.0))
    edge = rewrite(model, RewriteOptions(shuffle=shuffle or INT8_SHUFFLE), passes=passes).model
    edge.shuffle_label = f"{shuffle or INT8_SHUFFLE}_{'after' if after_dw else 'before'}_dw"
    return edge


def label(model) -> str:
    return model.shuffle_label


def mobilenet_v2(alpha: float):
    import keras

    inputs = keras.Input((224, 224, 3), batch_size=1, name="input")
    return keras.applications.MobileNetV2(alpha=alpha, weights=None, input_tensor=inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs per model and thread count")
    parser.add_argument("--calibration", type=int, default=50, help="calibration images")
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args()

    from edgeshuffle.bench import BenchConfig, run_bench
    from edgeshuffle.data.sets import calibration_set
    from edgeshuffle.export.quantize import quantize_tflite
    from edgeshuffle.export.tflite import float_tflite_bytes
    from edgeshuffle.models.complexity import total_macs
    from edgeshuffle.preprocessing import Preprocessing
    from edgeshuffle.models.variants import ModelSpec
    from edgeshuffle.runtime.delegation import xnnpack_delegation

    folder = Path(tempfile.mkdtemp(prefix="bench_shuffle_"))
    images = REPO / "calibration" / "imagenet-val-200"
    spec = ModelSpec(groups=3, scale=1.0)
    calibration = calibration_set(images, spec.preprocessing, args.calibration)
    unit_range = Preprocessing(input_size=224, resize_size=256, mean=(127.5,) * 3, std=(127.5,) * 3)
    mobilenet_calibration = calibration_set(images, unit_range, args.calibration)

    macs = {}
    files = []

    def add(name: str, model, calib, count: int, precision: str = "int8"):
        quiet = contextlib.redirect_stdout(io.StringIO())
        with quiet:
            data = quantize_tflite(model, calib) if precision == "int8" else float_tflite_bytes(model)
        path = folder / f"{name}_{precision}.tflite"
        path.write_bytes(data)
        macs[path.name] = count
        files.append(path)
        print(f"built {path.name}", flush=True)

    default = {}
    for groups, forms in ((3, [("reshape", False), ("reshape", True), ("planar", False), ("planar", True)]),
                          (8, [("reshape", False), ("planar", True)])):
        count = total_macs(ModelSpec(groups=groups, scale=1.0))
        for shuffle, after_dw in forms:
            model = shufflenet(groups, shuffle, after_dw)
            add(f"shufflenet_g{groups}_{label(model)}", model, calibration, count)
        default[groups] = f"shufflenet_g{groups}_{label(shufflenet(groups))}_int8.tflite"
    add("shufflenet_g3_reshape_before_dw", shufflenet(3, "reshape", False), calibration,
        total_macs(spec), "float32")
    with shuffles_removed():
        bare = shufflenet(3)
        count = total_macs(spec)
        add("shufflenet_g3_noshuffle", bare, calibration, count)
        add("shufflenet_g3_noshuffle", bare, calibration, count, "float32")
    for alpha in (0.5, 1.0):
        model = mobilenet_v2(alpha)
        add(f"mobilenetv2_{alpha:g}", model, mobilenet_calibration, MOBILENET_V2_MACS[alpha])
        if alpha == 0.5:
            add(f"mobilenetv2_{alpha:g}", model, mobilenet_calibration, MOBILENET_V2_MACS[alpha], "float32")

    print("\nXNNPACK partitions (int8):")
    for path in files:
        if path.name.endswith("_int8.tflite"):
            report = xnnpack_delegation(path)
            print(f"  {path.name:38s} {report.partitions} partition(s), undelegated {report.undelegated_ops}")

    threads = tuple(int(t) for t in args.threads.split(","))
    report = run_bench(BenchConfig(models=tuple(files), threads=threads, runs=args.runs))
    machine = report.machine
    load = os.getloadavg()
    print(f"\n{machine.get('cpu_model')} ({machine.get('architecture')}, {machine.get('logical_cores')} cores, "
          f"{' '.join(machine.get('isa_features', []))}); {args.runs} interleaved runs per model; "
          f"load average after the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for count in threads:
        p50 = {Path(r.model).name: r.latency_ms.p50 for r in report.results if r.threads == count}
        print(f"\n{count} thread(s):  {'p50 ms':>8s} {'MMACs/ms':>9s}")
        for path in files:
            print(f"  {path.name:38s} {p50[path.name]:8.3f} {macs[path.name] / 1e6 / p50[path.name]:9.1f}")
        without = p50["shufflenet_g3_noshuffle_int8.tflite"]
        print(f"  edge form (convert/quantize default): {default[3]}, {default[8]}")
        for name in files:
            if name.name.startswith("shufflenet_g3_") and name.name.endswith("_dw_int8.tflite"):
                print(f"  share of the shuffles, {name.name}: {(p50[name.name] - without) / p50[name.name]:6.1%}")
        float_with = p50["shufflenet_g3_reshape_before_dw_float32.tflite"]
        float_without = p50["shufflenet_g3_noshuffle_float32.tflite"]
        print(f"  share of the shuffles, g=3 float32 (reshape, before dw): "
              f"{(float_with - float_without) / float_with:6.1%}")
        with_ = p50[default[3]]
        mnv2_half = p50["mobilenetv2_0.5_int8.tflite"]
        print(f"  ShuffleNet 1x g=3 int8 / MobileNetV2 0.5 int8: {with_ / mnv2_half:5.2f}x (edge form)")
        print(f"  ShuffleNet 1x g=3 int8 / MobileNetV2 1.0 int8: {with_ / p50['mobilenetv2_1_int8.tflite']:5.2f}x")
        print(f"  ShuffleNet 1x g=8 int8 / MobileNetV2 0.5 int8: {p50[default[8]] / mnv2_half:5.2f}x")
        print(f"  int8 / float32: ShuffleNet g=3 (reshape, before dw) "
              f"{p50['shufflenet_g3_reshape_before_dw_int8.tflite'] / float_with:5.2f}x, MobileNetV2 0.5 "
              f"{mnv2_half / p50['mobilenetv2_0.5_float32.tflite']:5.2f}x")

if __name__ == "__main__":
    main()
