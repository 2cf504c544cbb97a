"""Training throughput of `edgeshuffle train`'s step on this machine (images/s, steady state).

    python benchmarks/bench_train_speed.py                      # 0.5x g=3 CIFAR variant, 32x32, batch 128
    python benchmarks/bench_train_speed.py --batch-size 256 --steps 30
    python benchmarks/bench_train_speed.py --jit                # XLA on for the whole model, for comparison
    python benchmarks/bench_train_speed.py --compare --rounds 3 # training form vs two slower forms, interleaved

Times `--steps` training steps (forward, backward, SGD update, augmentation)
after `--warmup` untimed ones, with the same compile settings as
`edgeshuffle train`. Prints the figure and the machine's load average,
because on a shared machine the figure is only meaningful with the load
beside it, and the throughput per CPU-second this process used (all its
threads), which the load hides less: with both cores free, images/s is at
most twice that. `--compare` also times the training form with one of its
choices undone: Keras' own BatchNormalization in place of the XLA-compiled
one, and a channel shuffle op in place of the shuffle folded into the
grouped conv; it alternates the three for `--rounds` rounds and prints the
medians and their ratios. TensorFlow's oneDNN kernels are on, as in
`edgeshuffle train`, unless TF_ENABLE_ONEDNN_OPTS=0 is set. Requirement
(issue 6): >= 200 images/s for the 0.5x g=3 CIFAR variant at 32x32 on the
2-core build machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--scale", type=float, default=0.5)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--stem", default="cifar", choices=("cifar", "imagenet"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--jit", action="store_true", help="XLA-compile the whole step (edgeshuffle train does not)")
    parser.add_argument("--compare", action="store_true",
                        help="also time the training form with Keras' BatchNormalization, and with a shuffle op "
                        "instead of the folded shuffle, interleaved")
    parser.add_argument("--rounds", type=int, default=1, help="measurements per form (alternating with --compare)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    # edgeshuffle.train first: it turns on TensorFlow's oneDNN kernels, read when TensorFlow loads.
    from edgeshuffle.train import TRAINING_FORM, measure_training_speed

    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

    from edgeshuffle.models.variants import ModelSpec

    spec = ModelSpec(groups=args.groups, scale=args.scale, input_size=args.input_size, classes=10, stem=args.stem)
    forms = {"training form": TRAINING_FORM}
    if args.compare:
        forms["Keras BatchNorm"] = dataclasses.replace(TRAINING_FORM, batch_norm="keras")
        forms["shuffle op"] = dataclasses.replace(TRAINING_FORM, shuffle="reshape")
    load_before = os.getloadavg()[0]
    runs = {name: [] for name in forms}
    for _ in range(args.rounds):
        for name, form in forms.items():
            runs[name].append(measure_training_speed(spec, args.batch_size, args.warmup, args.steps,
                                                     jit_compile=args.jit, form=form))
    load_after = os.getloadavg()[0]
    medians = {name: {"images_per_second": round(statistics.median(r.images_per_second for r in results), 1),
                      "images_per_cpu_second": round(statistics.median(r.images_per_cpu_second for r in results), 1)}
               for name, results in runs.items()}
    record = {"model": spec.name, "input_size": spec.input_size, "batch_size": args.batch_size,
              "jit_compile": args.jit, "warmup_steps": args.warmup, "steps": args.steps, "rounds": args.rounds,
              "medians": medians,
              "runs": {name: [{"seconds": round(r.seconds, 2), "cpu_seconds": round(r.cpu_seconds, 2),
                               "images_per_second": round(r.images_per_second, 1)} for r in results]
                       for name, results in runs.items()},
              "onednn": _pywrap_util_port.IsMklEnabled(),
              "cpu_count": os.cpu_count(), "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
              "load_average_1min": [round(load_before, 2), round(load_after, 2)]}
    if args.json:
        print(json.dumps(record, indent=2))
        return
    print(f"{spec.name} at {spec.input_size}x{spec.input_size}, batch {args.batch_size}, jit_compile={args.jit}, "
          f"oneDNN {'on' if record['onednn'] else 'off'}, "
          f"{args.steps} timed steps after {args.warmup} warm-up steps, median of {args.rounds} run(s); "
          f"{os.cpu_count()} CPUs, 1-min load average {load_before:.1f} -> {load_after:.1f}")
    for name, median in medians.items():
        print(f"  {name:16s} {median['images_per_second']:6.0f} images/s  "
              f"{median['images_per_cpu_second']:6.0f} images per CPU-second used")
    for name in list(medians)[1:]:
        ratio = medians["training form"]["images_per_cpu_second"] / medians[name]["images_per_cpu_second"]
        print(f"  training form / {name}, per CPU-second: {ratio:.2f}x")


if __name__ == "__main__":
    main()
