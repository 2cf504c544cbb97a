"""Latency of artifacts on this machine: statistics, delegation, memory, interleaved runs.

What one benchmark does, per thread count:

1. load every model (timed: interpreter/session creation, tensor allocation
   and delegate application) and run it once (the first inference, timed);
2. warm up, then time runs **round-robin across the models** (model A, B,
   C, A, B, C, ... with the starting model rotating each round), so that a
   machine's drift (thermal throttling, a neighbour's load, frequency
   scaling) lands on every model alike and ratios to a baseline cancel it;
3. keep going until every model has ``runs`` timed runs and at least
   ``min_seconds`` of timed compute.

A timed run is the compute call alone: ``Interpreter.invoke()`` for LiteRT
(inputs are set before the clock starts, as the TFLite ``benchmark_model``
tool does), ``InferenceSession.run()`` for onnxruntime.

Never imports TensorFlow: this runs on the board.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeshuffle.errors import InputFileError, require
from edgeshuffle.runtime.base import InputInfo, Runner, open_runner
from edgeshuffle.runtime.memory import MIB, current_rss_bytes, peak_rss_bytes

log = logging.getLogger(__name__)

SCHEMA = "edgeshuffle.bench"
SCHEMA_VERSION = 1
RUNTIMES = ("auto", "tflite", "onnx")
IMAGE_DTYPES = ("float32", "int8", "uint8")

Progress = Callable[[str, int, int], None]  # (phase, done, total)



@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """What to benchmark and how.

    ``baseline`` (a path; added to ``models`` if missing) gives every result
    a ratio to the baseline's median at the same thread count.
    ``input_samples`` distinct inputs are cycled through (random with
    ``seed``, or the first images of ``inputs``). ``preprocessing`` (a
    :class:`~edgeshuffle.preprocessing.Preprocessing` or
    :class:`~edgeshuffle.preprocessing.PreprocessingOptions`) preprocesses
    ``inputs`` for artifacts without metadata.
    """

    models: tuple[Path, ...]
    threads: tuple[int, ...] = (1,)
    runs: int = 100
    warmup: int = 10
    min_seconds: float = 0.0
    runtime: str = "auto"
    tflite_kernels: str = "xnnpack"
    inputs: Path | None = None
    baseline: Path | None = None
    seed: int = 0
    input_samples: int = 8
    preprocessing: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(Path(m) for m in self.models))
        object.__setattr__(self, "threads", tuple(self.threads))
        if self.baseline is not None:
            baseline = Path(self.baseline)
            object.__setattr__(self, "baseline", baseline)
            if not any(_same(baseline, m) for m in self.models):
                object.__setattr__(self, "models", (baseline, *self.models))
        require(len(self.models) >= 1, "Give at least one model.", "models", "()")
        require(isinstance(self.runs, int) and self.runs >= 1, "Runs must be at least 1.", "runs", self.runs)
        require(isinstance(self.warmup, int) and self.warmup >= 0, "Warmup must be 0 or more.",
                 "warmup", self.warmup)
        require(self.min_seconds >= 0, "Min seconds must be 0 or more.", "min_seconds", self.min_seconds)
        require(len(self.threads) >= 1, "Give at least one thread count.", "threads", "()")
        for count in self.threads:
            require(isinstance(count, int) and count >= 1, "Thread counts must be at least 1.", "threads", count)
        require(self.runtime in RUNTIMES, f"Runtime must be one of {RUNTIMES}.", "runtime", self.runtime)
        require(self.input_samples >= 1, "Input samples must be at least 1.", "input_samples",
                 self.input_samples)
        for model in self.models:
            if not model.is_file():
                raise InputFileError(f"no model file at {model}")

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["models"] = [str(m) for m in self.models]
        data["threads"] = list(self.threads)
        data["inputs"] = str(self.inputs) if self.inputs else None
        data["baseline"] = str(self.baseline) if self.baseline else None
        return data


def _same(a: Path, b: Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """Milliseconds over the timed runs; percentiles interpolate linearly (numpy's default)."""

    runs: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def from_seconds(cls, seconds) -> "LatencyStats":
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        if ms.size == 0:
            raise ValueError("no timed runs")
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(runs=int(ms.size), mean=float(ms.mean()), std=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
                   min=float(ms.min()), p50=float(p50), p90=float(p90), p99=float(p99), max=float(ms.max()))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ModelResult:
    """One model at one thread count."""

    model: str  # the path as given
    label: str  # a short unique name for tables
    threads: int
    runner: dict  # runtime, version and options (XNNPACK; onnxruntime providers, optimization level)
    precision: str | None  # from the artifact's metadata, when it has some
    input: dict  # name, shape, dtype, scale, zero_point
    load_ms: float
    first_inference_ms: float
    latency_ms: LatencyStats
    throughput_per_s: float  # images per second, one stream: batch / mean latency
    rss_growth_mb: float  # resident memory added by loading the model and its first inference
    delegation: dict | None  # TFLite: the DelegationReport (partitions, ops outside the delegate)
    baseline_ratio: float | None = None  # p50 / the baseline's p50 at the same thread count
    samples_ms: tuple[float, ...] = ()

    @property
    def speedup(self) -> float | None:
        return 1.0 / self.baseline_ratio if self.baseline_ratio else None

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["latency_ms"] = self.latency_ms.to_dict()
        data["samples_ms"] = list(self.samples_ms)
        data["speedup_vs_baseline"] = self.speedup
        return data


@dataclasses.dataclass(frozen=True)
class BenchReport:
    config: BenchConfig
    machine: dict
    results: tuple[ModelResult, ...]
    peak_rss_mb: float
    inputs_source: str  # "random" or the image folder
    inputs_skipped: int = 0  # images under --inputs that failed to decode
    created: str = ""

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "created": self.created,
            "config": self.config.to_dict(),
            "machine": self.machine,
            "inputs": {"source": self.inputs_source, "skipped": self.inputs_skipped},
            "peak_rss_mb": self.peak_rss_mb,
            "results": [r.to_dict() for r in self.results],
        }


def short_labels(paths: tuple[Path, ...]) -> list[str]:
    """The shortest path suffix that tells the models apart (file name, then parent/name, ...)."""
    depth = 1
    while True:
        labels = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels) or depth >= max(len(p.parts) for p in paths):
            return labels
        depth += 1


def check_image_input(info: InputInfo, path: Path) -> tuple[int, int, int, int]:
    """The NHWC shape to feed (a dynamic batch becomes 1); an error if the input is not an image tensor."""
    shape = info.shape
    if len(shape) != 4 or shape[-1] != 3 or any(d is None or d < 1 for d in shape[1:]) \
            or info.dtype not in IMAGE_DTYPES:
        raise InputFileError(f"{path}: input '{info.name}' ({info.dtype}, shape {list(shape)}) is not an "
                             f"NHWC image tensor (batch, height, width, 3) of {'/'.join(IMAGE_DTYPES)}")
    return (shape[0] if shape[0] and shape[0] > 0 else 1, shape[1], shape[2], shape[3])


def load_input_images(folder: Path, count: int, strict: bool = False):
    """Decode up to ``count`` images from ``folder`` (PIL RGB); returns (images, skipped)."""
    from edgeshuffle.data.images import find_images, load_rgb

    paths = find_images(folder)
    if not paths:
        raise InputFileError(f"no images (.jpg, .jpeg, .png, .bmp) under {folder}")
    images, skipped = [], 0
    for path in paths:
        if len(images) >= count:
            break
        try:
            images.append(load_rgb(path))
        except InputFileError:
            if strict:
                raise
            skipped += 1
            log.warning("skipping an image that does not decode: %s", path)
    if not images:
        raise InputFileError(f"none of the images under {folder} decodes ({skipped} tried)")
    return images, skipped


def make_inputs(runner: Runner, path: Path, count: int, seed: int, images=None,
                preprocessing=None) -> list[np.ndarray]:
    """``count`` inputs in the model's own shape and dtype (integers quantized with the input's scale).

    Random: standard normal floats with ``seed`` (the range of a normalised
    image). Images: preprocessed as the artifact's own metadata says, or as
    ``preprocessing`` says for an artifact without metadata.
    """
    shape = check_image_input(runner.input_info(), path)
    if images is None:
        rng = np.random.default_rng(seed)
        floats = [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]
    else:
        from edgeshuffle.data.images import preprocess
        from edgeshuffle.metadata import artifact_metadata

        pre = artifact_metadata(path, preprocessing).preprocessing
        if (pre.input_size, pre.input_size) != shape[1:3]:
            raise InputFileError(f"{path}: its metadata's input size {pre.input_size} does not match its "
                                 f"input shape {list(shape)}")
        pixels = [preprocess(image, pre) for image in images]
        floats = [np.stack([pixels[(i * shape[0] + b) % len(pixels)] for b in range(shape[0])])
                  for i in range(min(count, max(1, len(pixels) // shape[0])))]
    return [np.ascontiguousarray(runner.quantize_input(x)) for x in floats]


def _precision(path: Path) -> str | None:
    from edgeshuffle.metadata import read_metadata

    try:
        metadata = read_metadata(path)
    except InputFileError:
        return None
    return metadata.precision if metadata else None


@dataclasses.dataclass
class _Loaded:
    path: Path
    label: str
    runner: Runner
    feeds: list[np.ndarray]
    load_seconds: float
    first_seconds: float
    rss_growth: int
    samples: list[float] = dataclasses.field(default_factory=list)


def _load(path: Path, label: str, config: BenchConfig, threads: int, images) -> _Loaded:
    runner = open_runner(path, runtime=config.runtime, threads=threads, tflite_kernels=config.tflite_kernels)
    if runner.kind not in ("tflite", "onnx"):
        raise InputFileError(f"bench runs .tflite and .onnx artifacts, not {runner.kind}: {path}")
    before = current_rss_bytes()
    start = time.perf_counter()
    runner.activate()
    load_seconds = time.perf_counter() - start
    try:
        feeds = make_inputs(runner, path, config.input_samples, config.seed, images, config.preprocessing)
        first = runner.timed_call(feeds[0])
    except BaseException:
        runner.deactivate()
        raise
    return _Loaded(path, label, runner, feeds, load_seconds, first, current_rss_bytes() - before)


def _timed_rounds(loaded: list[_Loaded], rounds: int | None, min_seconds: float, record: bool,
                  progress: Progress | None, phase: str) -> None:
    """Round-robin over the models, the starting model rotating each round."""
    count = len(loaded)
    spent = [0.0] * count
    done = 0
    while True:
        if rounds is not None and done >= rounds and all(s >= min_seconds for s in spent):
            break
        for k in range(count):
            i = (done + k) % count
            item = loaded[i]
            seconds = item.runner.timed_call(item.feeds[done % len(item.feeds)])
            spent[i] += seconds
            if record:
                item.samples.append(seconds)
        done += 1
        if progress and (done % 10 == 0 or done == rounds):
            progress(phase, done, max(rounds or 0, done))


def run_bench(config: BenchConfig, progress: Progress | None = None) -> BenchReport:
    """Benchmark every model of ``config`` at every thread count (see the module docstring)."""
    from edgeshuffle.machine import machine_info

    machine = machine_info()
    for threads in config.threads:
        if threads > machine.usable_cores:
            log.warning("%d threads on %d usable cores: the threads will share cores", threads,
                        machine.usable_cores)
    images, skipped = (None, 0)
    if config.inputs is not None:
        images, skipped = load_input_images(config.inputs, config.input_samples)
    labels = short_labels(config.models)
    precisions = {m: _precision(m) for m in config.models}
    results: list[ModelResult] = []
    for threads in config.threads:
        loaded: list[_Loaded] = []
        try:
            for path, label in zip(config.models, labels):
                log.info("loading %s with %d thread(s)", path, threads)
                loaded.append(_load(path, label, config, threads, images))
            _timed_rounds(loaded, config.warmup, 0.0, False, progress, f"warm-up, {threads} thread(s)")
            _timed_rounds(loaded, config.runs, config.min_seconds, True, progress, f"timing, {threads} thread(s)")
            batch_results = [_result(item, threads, precisions[item.path]) for item in loaded]
        finally:
            for item in loaded:
                item.runner.deactivate()
        if config.baseline is not None:
            base = next(r for r, item in zip(batch_results, loaded) if _same(item.path, config.baseline))
            batch_results = [dataclasses.replace(r, baseline_ratio=r.latency_ms.p50 / base.latency_ms.p50)
                             for r in batch_results]
        results.extend(batch_results)
    return BenchReport(config=config, machine=machine.to_dict(), results=tuple(results),
                       peak_rss_mb=peak_rss_bytes() / MIB,
                       inputs_source=str(config.inputs) if config.inputs else f"random (seed {config.seed})",
                       inputs_skipped=skipped,
                       created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))


def _result(item: _Loaded, threads: int, precision: str | None) -> ModelResult:
    runner = item.runner
    stats = LatencyStats.from_seconds(item.samples)
    batch = item.feeds[0].shape[0]
    delegation = None
    if runner.kind == "tflite":
        delegation = runner.delegation().to_dict()
    return ModelResult(
        model=str(item.path), label=item.label, threads=threads, runner=runner.describe(), precision=precision,
        input=dataclasses.asdict(runner.input_info()), load_ms=item.load_seconds * 1e3,
        first_inference_ms=item.first_seconds * 1e3, latency_ms=stats,
        throughput_per_s=batch * 1e3 / stats.mean, rss_growth_mb=item.rss_growth / MIB,
        delegation=delegation, samples_ms=tuple(s * 1e3 for s in item.samples))
