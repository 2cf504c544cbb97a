"""Does `edgeshuffle bench` measure what a bare timing loop around Interpreter.invoke() measures?

For one .tflite model, alternates blocks of (a) ``edgeshuffle.bench.run_bench``
and (b) an independent loop written here against ``ai_edge_litert`` alone
(its own interpreter, its own input, ``time.perf_counter_ns`` around
``invoke()``, the median from the standard library), so that machine drift
hits both alike. Prints both medians and their ratio, and exits 1 if they
differ by more than ``--tolerance`` (default 10%).

    python benchmarks/bench_vs_invoke_loop.py build/demo/int8.tflite --threads 1 --runs 200 --blocks 5

Run it on a quiet machine: it measures the tool, not the model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


def invoke_loop_median_ms(model: Path, threads: int, runs: int, warmup: int, seed: int = 0) -> float:
    """Median of ``runs`` timed ``invoke()`` calls on a fresh interpreter (XNNPACK default delegate)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model), num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(seed)
    if np.issubdtype(detail["dtype"], np.integer):
        limits = np.iinfo(detail["dtype"])
        data = rng.integers(limits.min, limits.max, size=detail["shape"], endpoint=True).astype(detail["dtype"])
    else:
        data = rng.standard_normal(detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], data)
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        interpreter.invoke()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(times)


def bench_p50_ms(model: Path, threads: int, runs: int, warmup: int) -> float:
    from edgeshuffle.bench import BenchConfig, run_bench

    report = run_bench(BenchConfig(models=(model,), threads=(threads,), runs=runs, warmup=warmup))
    return report.results[0].latency_ms.p50


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a .tflite model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=200, help="timed runs per block and method")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=5, help="alternating blocks of each method")
    parser.add_argument("--tolerance", type=float, default=0.10)
    args = parser.parse_args(argv)
    if not args.model.is_file():
        print(f"error: no model file at {args.model}", file=sys.stderr)
        return 2

    bench, loop = [], []
    for block in range(args.blocks):
        order = (("bench", bench_p50_ms, bench), ("loop", invoke_loop_median_ms, loop))
        for name, measure, into in order if block % 2 == 0 else order[::-1]:
            into.append(measure(args.model, args.threads, args.runs, args.warmup))
        print(f"block {block + 1}/{args.blocks}: bench p50 {bench[-1]:.3f} ms, invoke loop median {loop[-1]:.3f} ms")
    bench_ms, loop_ms = statistics.median(bench), statistics.median(loop)
    ratio = bench_ms / loop_ms
    verdict = "AGREE" if abs(ratio - 1) <= args.tolerance else "DISAGREE"
    print(f"{args.model} ({args.threads} thread(s), {args.blocks} blocks x {args.runs} runs): "
          f"edgeshuffle bench p50 {bench_ms:.3f} ms, invoke() loop median {loop_ms:.3f} ms, "
          f"ratio {ratio:.3f} -> {verdict} within {args.tolerance:.0%}")
    return 0 if verdict == "AGREE" else 1


if __name__ == "__main__":
    sys.exit(main())
