"""No TensorFlow or LiteRT C++ log line in the command line's output unless -v is given.

The chatter is written from C++ straight to file descriptor 2, so the checks
run the real command line in a fresh interpreter (where descriptor 2 is the
process's stderr) and read what reached the terminal's place: its stdout and
stderr pipes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "calibration" / "cifar10-train-300"

# What TensorFlow 2.21 and LiteRT print on this stack when nothing filters them (seen before the filter).
KNOWN_CHATTER = [
    r"All log messages before absl::InitializeLog\(\)",
    r"^[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\]",
    r"oneDNN custom operations",
    r"Created TensorFlow Lite XNNPACK delegate",
    r"fully_quantize: \d+, inference_type",
    r"cpu_feature_guard",
    r"trackable_obj",
    r"Statistics for quantized inputs were expected",
]

# Several verbs in one interpreter, as the console script runs each: the filter is set up on the first.
RUN_VERBS = r"""
import json, sys
from edgeshuffle.cli import main

for args in json.loads(sys.argv[1]):
    try:
        main(args, standalone_mode=False)
    except SystemExit as exit:
        if exit.code:
            raise
"""


def _run(calls: list[list[str]], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_VERBS, json.dumps(calls)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def _chatter(output: str) -> list[str]:
    return [line for line in output.splitlines() if any(re.search(p, line) for p in KNOWN_CHATTER)]


@pytest.fixture(scope="module")
def quiet_run(tmp_path_factory):
    """convert, quantize, bench and parity of a tiny variant, without -v."""
    tmp = tmp_path_factory.mktemp("quiet")
    out = tmp / "out"
    calls = [["convert", "-g", "3", "-s", "0.25", "--stem", "cifar", "-o", str(out), "--samples", "2"],
             ["quantize", str(out / "model.keras"), "-c", str(IMAGES), "--num-calibration", "8", "-o", str(out)],
             ["bench", str(out / "int8.tflite"), str(out / "float32.tflite"), "--runs", "2", "--warmup", "0"],
             ["parity", str(out / "int8.tflite"), "--images", str(IMAGES), "--limit", "4"]]
    return _run(calls, tmp), out


def test_convert_quantize_bench_parity_print_no_native_log_line(quiet_run):
    done, out = quiet_run
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PASSED" in done.stdout and (out / "int8.tflite").is_file()
    assert _chatter(done.stdout + done.stderr) == [], done.stderr[-3000:]


def test_with_verbose_the_native_lines_show(quiet_run, tmp_path):
    """The check can fail: the LiteRT line the filter drops is there with -v."""
    done = _run([["-v", "bench", str(quiet_run[1] / "int8.tflite"), "--runs", "1", "--warmup", "0"]], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert any("Created TensorFlow Lite XNNPACK delegate" in line for line in _chatter(done.stderr)), done.stderr


@pytest.mark.parametrize("end", ["", "os.abort()"])
def test_other_native_lines_pass_even_when_the_process_aborts(tmp_path, end):
    """Errors written to descriptor 2 by C++ still show, also the last one before an abort."""
    script = ("import os\nfrom edgeshuffle.cli.native_logs import filter_native_logs\nfilter_native_logs()\n"
              "os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n'\n"
              "            b'E0000 00:00:1.5  42 graph.cc:7] a real error\\nsome other line\\n')\n" + end)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "E0000 00:00:1.5  42 graph.cc:7] a real error\nsome other line\n" in done.stderr
    assert "XNNPACK" not in done.stderr
