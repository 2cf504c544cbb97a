"""Training throughput of `edgeshuffle train`'s step on this machine (images/s, steady state).

    python benchmarks/bench_train_speed.py                      # 0.5x g=3 CIFAR variant, 32x32, batch 128
    python benchmarks/bench_train_speed.py --batch-size 256 --steps 30
    python benchmarks/bench_train_speed.py --jit                # XLA on, for comparison

Times `--steps` training steps (forward, backward, SGD update, augmentation)
after `--warmup` untimed ones, with the same compile settings as
`edgeshuffle train`. Prints the figure and the machine's load average,
because on a shared machine the figure is only meaningful with the load
beside it, and the throughput per CPU-second this process used (all its
threads), which the load hides less: with both cores free, images/s is at
most twice that. Requirement (issue 6): >= 200 images/s for the 0.5x g=3 CIFAR
variant at 32x32 on the 2-core build machine.
"""

from __future__ import annotations

import argparse
import json
import os

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
    parser.add_argument("--jit", action="store_true", help="XLA-compile the step (edgeshuffle train does not)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import tensorflow as tf

    from edgeshuffle.models.variants import ModelSpec
    from edgeshuffle.train import measure_training_speed

    spec = ModelSpec(groups=args.groups, scale=args.scale, input_size=args.input_size, classes=10, stem=args.stem)
    load_before = os.getloadavg()[0]
    result = measure_training_speed(spec, args.batch_size, args.warmup, args.steps, jit_compile=args.jit)
    load_after = os.getloadavg()[0]
    record = {"model": result.model, "input_size": spec.input_size, "batch_size": result.batch_size,
              "jit_compile": result.jit_compile, "warmup_steps": result.warmup_steps, "steps": result.steps,
              "seconds": round(result.seconds, 2), "images_per_second": round(result.images_per_second, 1),
              "cpu_seconds": round(result.cpu_seconds, 2),
              "images_per_cpu_second": round(result.images_per_cpu_second, 1),
              "cpu_count": os.cpu_count(), "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
              "load_average_1min": [round(load_before, 2), round(load_after, 2)]}
    if args.json:
        print(json.dumps(record, indent=2))
        return
    print(f"{result.model} at {spec.input_size}x{spec.input_size}, batch {result.batch_size}, "
          f"jit_compile={result.jit_compile}: {result.images_per_second:.0f} images/s "
          f"({result.steps} steps in {result.seconds:.1f} s after {result.warmup_steps} warm-up steps; "
          f"{os.cpu_count()} CPUs, 1-min load average {load_before:.1f} -> {load_after:.1f}); "
          f"{result.images_per_cpu_second:.0f} images per CPU-second used")


if __name__ == "__main__":
    main()
