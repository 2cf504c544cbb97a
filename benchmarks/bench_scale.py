"""Dataset-sized parity and calibration: wall time, images per second and peak memory, --jobs 1 vs default.

Makes folders of N images (links to, or copies of, real images given by
--images, reused cyclically), builds ShuffleNet 1x g=3 224x224 artifacts once
(`edgeshuffle convert`, then `quantize` on a small calibration), then runs, each
in its own process so that its peak RSS is its own:

- `edgeshuffle parity` of the four artifacts (float32/int8 TFLite and ONNX) on
  N = 1,000 and 10,000 images;
- `edgeshuffle quantize` with 200 and 2,000 calibration images (the float
  artifacts reused; the time includes the TFLite conversion, a fixed cost);

each with `--jobs 1` and the default (the usable cores), interleaved, --repeats
times, and prints a table of medians and the speed ratios, then JSON.

    .venv/bin/python benchmarks/bench_scale.py [--images ../shared/data/imagenet-val-1300] [--quick]
        [--repeats 1] [--json results.json]

--quick runs parity on 200 and 1,000 images and calibration with 50 and 200; --only parity
--sizes 1000,10000 --repeats 2 repeats one command's cases.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_folder(source: list[Path], target: Path, count: int) -> Path:
    """``count`` images in ``target``, cycling through ``source`` (hard links where possible)."""
    target.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        original = source[i % len(source)]
        path = target / f"{i:06d}{original.suffix.lower()}"
        if not path.exists():
            try:
                os.link(original, path)
            except OSError:
                shutil.copyfile(original, path)
    return target


def run(command: list[str], log: Path) -> dict:
    """Run ``command`` in a child process: its wall time, CPU time and peak RSS (from wait4)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(log, "ab") as out:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({os.waitstatus_to_exitcode(status)}): {' '.join(command)}; see {log}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=Path("../shared/data/imagenet-val-1300"),
                        help="a folder of real images (relative to the repository root, or absolute)")
    parser.add_argument("--quick", action="store_true", help="parity on 200/1,000 images, calibration 50/200")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each case (interleaved)")
    parser.add_argument("--only", choices=("parity", "quantize"), default=None, help="run only this command")
    parser.add_argument("--sizes", type=lambda text: tuple(int(n) for n in text.split(",")), default=None,
                        help="two comma-separated image counts instead of the defaults (with --only)")
    parser.add_argument("--work", type=Path, default=None, help="work folder [default: a temporary one]")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from edgeshuffle.data.images import find_images
    from edgeshuffle.data.stream import default_jobs
    from edgeshuffle.machine import machine_info

    images = find_images(args.images if args.images.is_absolute() else REPO / args.images)
    parity_sizes, calibration_sizes = ((200, 1000), (50, 200)) if args.quick else ((1000, 10000), (200, 2000))
    if args.sizes:
        parity_sizes = calibration_sizes = args.sizes
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    python = [sys.executable, "-c", "from edgeshuffle.cli import main; main()"]
    artifacts = work / "artifacts"
    if not (artifacts / "int8.onnx").is_file():
        run(python + ["convert", "-o", str(artifacts)], log)
        run(python + ["quantize", str(artifacts / "model.keras"), "-c", str(make_folder(images, work / "cal16", 16)),
                      "--num-calibration", "16", "-o", str(artifacts)], log)
    models = [str(artifacts / name) for name in ("float32.tflite", "int8.tflite", "float32.onnx", "int8.onnx")]
    calibration = work / f"calibration{max(calibration_sizes)}"
    if args.only in (None, "quantize"):
        make_folder(images, calibration, max(calibration_sizes))
    cases = []
    for n in parity_sizes if args.only in (None, "parity") else ():
        folder = make_folder(images, work / f"parity{n}", n)
        cases.append(("parity", n, lambda jobs, folder=folder: python + ["parity", *models, "--images", str(folder),
                                                                          "--jobs", str(jobs)]))
    for n in calibration_sizes if args.only in (None, "quantize") else ():
        def quantize(jobs, n=n):
            out = work / f"quantize{n}_j{jobs}"
            if not (out / "float32.tflite").is_file():  # the float artifacts of this model: quantize reuses them
                out.mkdir(parents=True, exist_ok=True)
                for name in ("model.keras", "float32.tflite", "float32.onnx"):
                    shutil.copyfile(artifacts / name, out / name)
            return python + ["quantize", str(out / "model.keras"), "-c", str(calibration), "--num-calibration",
                             str(n), "-o", str(out), "--jobs", str(jobs)]
        cases.append(("quantize", n, quantize))

    default = default_jobs()
    results = {}
    loads = []
    for repeat in range(args.repeats):
        for kind, n, command in cases:
            order = (1, default) if repeat % 2 == 0 else (default, 1)
            for jobs in order:
                loads.append(os.getloadavg()[0])
                measured = run(command(jobs), log)
                measured["images_per_s"] = n / measured["wall_s"]
                results.setdefault((kind, n, jobs), []).append(measured)
                print(f"{kind} n={n} jobs={jobs}: {measured['wall_s']:.1f} s, {measured['images_per_s']:.1f} img/s, "
                      f"CPU {measured['cpu_s']:.1f} s, peak RSS {measured['peak_rss_mb']:.0f} MB "
                      f"(load {loads[-1]:.2f})", flush=True)

    machine = machine_info()
    rows = []
    for (kind, n, jobs), runs in results.items():
        rows.append({"command": kind, "images": n, "jobs": jobs, "runs": len(runs),
                     **{key: statistics.median(r[key] for r in runs)
                        for key in ("wall_s", "cpu_s", "images_per_s", "peak_rss_mb")}})
    by_key = {(r["command"], r["images"], r["jobs"]): r for r in rows}
    ratios = {f"{kind} n={n}": by_key[(kind, n, default)]["images_per_s"] / by_key[(kind, n, 1)]["images_per_s"]
              for kind, n, _ in cases}
    growth = {f"{kind} jobs={jobs}": by_key[(kind, sizes[1], jobs)]["peak_rss_mb"]
              - by_key[(kind, sizes[0], jobs)]["peak_rss_mb"]
              for kind, sizes in (("parity", parity_sizes), ("quantize", calibration_sizes)) for jobs in (1, default)
              if args.only in (None, kind)}
    print(f"\nmachine: {machine.cpu_model} ({machine.architecture}, {machine.logical_cores} cores, "
          f"{' '.join(machine.isa_features)}); default --jobs {default}; load average at the runs' starts "
          f"{min(loads):.2f}-{max(loads):.2f}")
    print(f"{'command':<10}{'images':>8}{'jobs':>6}{'wall s':>9}{'img/s':>9}{'CPU s':>9}{'peak RSS MB':>13}")
    for r in rows:
        print(f"{r['command']:<10}{r['images']:>8}{r['jobs']:>6}{r['wall_s']:>9.1f}{r['images_per_s']:>9.1f}"
              f"{r['cpu_s']:>9.1f}{r['peak_rss_mb']:>13.0f}")
    for name, ratio in ratios.items():
        print(f"speed, default jobs / jobs 1, {name}: {ratio:.2f}x")
    for name, mb in growth.items():
        print(f"peak RSS growth, largest vs smallest, {name}: {mb:+.0f} MB")
    report = {"machine": machine.to_dict(), "default_jobs": default, "load_average": [min(loads), max(loads)],
              "results": rows, "speed_ratios": ratios, "rss_growth_mb": growth}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
