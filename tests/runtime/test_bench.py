"""`edgeshuffle bench` on artifacts made in the test: statistics, JSON schema, delegation, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeshuffle.cli import main

STATS = ("runs", "mean", "std", "min", "p50", "p90", "p99", "max")
FAST = ["--runs", "12", "--warmup", "2"]


def _bench(tmp_path, *args):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", *map(str, args), *FAST, "--json", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), result.output


def test_bench_json_schema_statistics_and_partitions(artifacts, tmp_path):
    report, output = _bench(tmp_path, artifacts["edge_int8"], artifacts["plain_int8"], artifacts["onnx_int8"],
                            "--threads", "1,2")
    assert report["schema"] == "edgeshuffle.bench" and report["schema_version"] == 1
    assert set(report) >= {"created", "config", "machine", "inputs", "peak_rss_mb", "results"}
    assert set(report["machine"]) >= {"cpu_model", "architecture", "logical_cores", "isa_features", "os",
                                      "python", "versions", "emulated"}
    assert report["config"]["threads"] == [1, 2] and report["config"]["runs"] == 12
    # One result per model and thread count.
    assert [(r["model"], r["threads"]) for r in report["results"]] == [
        (str(artifacts[m]), t) for t in (1, 2) for m in ("edge_int8", "plain_int8", "onnx_int8")]
    for r in report["results"]:
        s = r["latency_ms"]
        assert set(s) == set(STATS)
        assert 0 < s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
        samples = np.asarray(r["samples_ms"])
        assert s["runs"] == len(samples) >= 12
        # The statistics are those of the recorded samples (numpy's own definitions).
        assert s["mean"] == pytest.approx(samples.mean())
        assert s["std"] == pytest.approx(samples.std(ddof=1))
        assert [s["min"], s["p50"], s["p99"], s["max"]] == pytest.approx(
            [samples.min(), np.median(samples), np.percentile(samples, 99), samples.max()])
        assert r["throughput_per_s"] == pytest.approx(1000 / s["mean"])
        assert r["load_ms"] > 0 and r["first_inference_ms"] > 0
        assert r["runner"]["threads"] == r["threads"]
    tflite = {(r["model"], r["threads"]): r for r in report["results"] if r["runner"]["runtime"] == "tflite"}
    for threads in (1, 2):
        edge = tflite[(str(artifacts["edge_int8"]), threads)]["delegation"]
        plain = tflite[(str(artifacts["plain_int8"]), threads)]["delegation"]
        # DESIGN: the rewritten int8 graph is one XNNPACK partition; the plain one is split around
        # the int8 AVERAGE_POOL_2D and standalone RELU XNNPACK does not take.
        assert edge["partitions"] == 1 and edge["undelegated_ops"] == {} and edge["fully_delegated"]
        assert plain["partitions"] > 1
        assert set(plain["undelegated_ops"]) == {"AVERAGE_POOL_2D", "RELU"}
        assert plain["delegated_nodes"] < plain["nodes"]
    onnx_result = next(r for r in report["results"] if r["runner"]["runtime"] == "onnx")
    assert onnx_result["delegation"] is None
    assert onnx_result["runner"]["providers"] == ["CPUExecutionProvider"]
    assert onnx_result["runner"]["graph_optimization_level"] == "all"
    assert "XNNPACK 1 partition" in output and "outside: AVERAGE_POOL_2D" in output
    assert "CPU" in output and "p99" in output
    assert not [p.name for p in tmp_path.iterdir() if p.name != "bench.json"]  # atomic: no leftovers


def test_bench_inputs_are_the_models_own_dtype(artifacts):
    from edgeshuffle.bench import make_inputs
    from edgeshuffle.runtime import open_runner

    with open_runner(artifacts["edge_int8"]) as runner:
        scale, zero_point = runner.input_info().scale, runner.input_info().zero_point
        random = make_inputs(runner, artifacts["edge_int8"], 3, seed=7)
        again = make_inputs(runner, artifacts["edge_int8"], 3, seed=7)
    assert [x.dtype for x in random] == [np.int8] * 3 and random[0].shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(random[0], again[0])  # fixed seed
    assert not np.array_equal(random[0], random[1])  # distinct samples
    # int8 = round(x / scale) + zero_point of standard normal floats with the same seed.
    expected = np.random.default_rng(7).standard_normal((1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(random[0], np.clip(np.round(expected / scale) + zero_point, -128, 127))


def test_bench_baseline_ratios_and_real_images(artifacts, tmp_path):
    report, output = _bench(tmp_path, artifacts["edge_int8"], "--baseline", artifacts["edge_float32"],
                            "--inputs", artifacts["images"])
    results = {r["model"]: r for r in report["results"]}
    base = results[str(artifacts["edge_float32"])]  # added to the models by --baseline
    int8 = results[str(artifacts["edge_int8"])]
    assert base["baseline_ratio"] == 1.0
    assert int8["baseline_ratio"] == pytest.approx(int8["latency_ms"]["p50"] / base["latency_ms"]["p50"])
    assert int8["speedup_vs_baseline"] == pytest.approx(1 / int8["baseline_ratio"])
    assert report["inputs"] == {"source": str(artifacts["images"]), "skipped": 1}  # broken.jpg
    assert "speedup" in output


def test_bench_interleaves_models_round_robin(artifacts):
    from edgeshuffle.bench import _Loaded, _timed_rounds

    calls = []

    class Recorder:
        def __init__(self, name):
            self.name = name

        def timed_call(self, feed):
            calls.append(self.name)
            return 0.001

    loaded = [_Loaded(artifacts["edge_int8"], n, Recorder(n), [np.zeros(1)], 0, 0, 0) for n in "ABC"]
    _timed_rounds(loaded, 3, 0.0, True, None, "t")
    assert calls == list("ABCBCACAB")  # every round visits every model; the first rotates
    assert [len(item.samples) for item in loaded] == [3, 3, 3]
    calls.clear()
    _timed_rounds(loaded, 1, 0.0025, True, None, "t")  # min-seconds extends the rounds
    assert len(calls) == 9


def test_bench_without_xnnpack(artifacts, tmp_path):
    report, output = _bench(tmp_path, artifacts["edge_float32"], "--tflite-kernels", "builtin")
    result = report["results"][0]
    assert result["runner"]["kernels"] == "builtin"
    assert result["delegation"]["partitions"] == 0 and result["delegation"]["delegated_nodes"] == 0
    assert "XNNPACK off" in output


@pytest.mark.parametrize("args,culprit,code", [
    (["{missing}"], "no model file at", 1),
    (["{zero.tflite}"], "not a valid TFLite model", 1),
    (["{random.tflite}"], "not a valid TFLite model", 1),
    (["{zero.onnx}"], "not a valid ONNX model", 1),
    (["{random.onnx}"], "not a valid ONNX model", 1),
    (["{onnx_vector}"], "is not an NHWC image tensor", 1),
    (["{edge_int8}", "--runs", "0"], "runs=0", 2),
    (["{edge_int8}", "--runs", "-3"], "runs=-3", 2),
    (["{edge_int8}", "--threads", "0"], "threads=0", 2),
    (["{edge_int8}", "--threads", "1,-2"], "threads=-2", 2),
    (["{edge_int8}", "--threads", "two"], "threads=two", 2),
    (["{edge_int8}", "--warmup", "-1"], "warmup=-1", 2),
    (["{edge_int8}", "--inputs", "{missing}"], "not a folder of images", 1),
    (["{onnx_float32}", "--runtime", "tflite"], "not a valid TFLite model", 1),
])
def test_bench_errors_are_one_line(artifacts, tmp_path, args, culprit, code):
    paths = {**{k: str(v) for k, v in artifacts.items()}, "missing": str(tmp_path / "nope.tflite")}
    args = [paths[a[1:-1]] if a.startswith("{") else a for a in args]
    result = CliRunner().invoke(main, ["bench", *args, "--json", str(tmp_path / "out.json")])
    assert result.exit_code == code, result.output
    assert culprit in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "out.json").exists()
