"""Interruption and determinism of convert and quantize.

- A run killed with SIGINT or SIGTERM in the middle of writing leaves every
  previous artifact byte-identical and no partial file.
- Converting and quantizing the same model twice with the same calibration
  images gives byte-identical ``.tflite`` files; the ``.onnx`` files are the
  same graph (same ops, same weights) but tf2onnx numbers its generated names
  from a process-wide counter and orders constants differently from run to
  run, so for them the test asserts identical outputs on evaluation images
  (docs/exit-codes.md).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

CALIBRATION = Path(__file__).resolve().parents[1] / "calibration" / "cifar10-test-2000"
ARTIFACTS = ("model.keras", "float32.tflite", "float32.onnx", "int8.tflite", "int8.onnx", "convert.json",
             "quantize.json")


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    """The same model converted and quantized twice (same calibration images) into two folders."""
    from edgeshuffle.export.convert import ConvertConfig, convert
    from edgeshuffle.export.quantize import QuantizeConfig, quantize
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.variants import ModelSpec

    model = build_shufflenet(ModelSpec(groups=2, scale=0.25, input_size=32, classes=10, stem="cifar"))
    folders = []
    for name in ("first", "second"):
        folder = tmp_path_factory.mktemp(name)
        convert(model, folder, ConvertConfig(samples=2))
        quantize(model, folder, QuantizeConfig(calibration=CALIBRATION, num_calibration=8, seed=0))
        folders.append(folder)
    return folders


def test_tflite_files_are_byte_identical(twice):
    first, second = twice
    for name in ("float32.tflite", "int8.tflite"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_onnx_files_are_the_same_graph_with_identical_outputs(twice):
    import onnx

    from edgeshuffle.data.images import find_images, load_rgb, preprocess
    from edgeshuffle.metadata import read_metadata
    from edgeshuffle.runtime import open_runner

    first, second = twice
    paths = find_images(CALIBRATION)[::125][:16]  # 16 images across the classes
    pre = read_metadata(first / "int8.onnx").preprocessing
    batch = np.stack([preprocess(load_rgb(p), pre) for p in paths])
    for name in ("float32.onnx", "int8.onnx"):
        a, b = onnx.load(first / name), onnx.load(second / name)
        assert collections.Counter(n.op_type for n in a.graph.node) == \
            collections.Counter(n.op_type for n in b.graph.node), name
        assert sorted(i.raw_data for i in a.graph.initializer) == sorted(i.raw_data for i in b.graph.initializer)
        assert list(a.metadata_props) == list(b.metadata_props)
        outputs = []
        for folder in twice:
            with open_runner(folder / name) as runner:
                outputs.append(np.concatenate([runner.infer(batch[i:i + 1]) for i in range(len(batch))]))
        assert outputs[0].shape == (16, 10)
        np.testing.assert_array_equal(outputs[0], outputs[1], err_msg=name)


def _assert_complete(path: Path) -> None:
    """A whole, loadable artifact (a torn write would fail to parse)."""
    import json

    from edgeshuffle.runtime import open_runner

    if path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".keras":
        from edgeshuffle.models.io import load_model

        load_model(path)
    else:
        with open_runner(path):
            pass


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _interrupt_mid_write(folder: Path, sig: int, args: list[str]) -> subprocess.CompletedProcess:
    """Start the CLI, wait until it is writing a temporary file in ``folder``, then send ``sig``."""
    command = [sys.executable, "-c", "from edgeshuffle.cli import main; main()", *args]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 240
    sent = False
    while process.poll() is None and time.monotonic() < deadline:
        if any(".partial" in p.name for p in folder.iterdir()):
            process.send_signal(sig)
            sent = True
            break
        time.sleep(0.002)
    try:
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert sent, f"the run ended (exit {process.returncode}) before writing anything: {err.decode()[-500:]}"
    return subprocess.CompletedProcess(command, process.returncode, out.decode(), err.decode())


@pytest.mark.parametrize("verb,sig", [("convert", signal.SIGINT), ("convert", signal.SIGTERM),
                                      ("quantize", signal.SIGTERM)],
                         ids=["convert-SIGINT", "convert-SIGTERM", "quantize-SIGTERM"])
def test_interrupted_run_keeps_every_previous_artifact(twice, tmp_path, verb, sig):
    """Another model written into a folder of good artifacts, killed while it writes its model.keras."""
    import shutil

    from edgeshuffle.models.io import save_model
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.variants import ModelSpec

    other = tmp_path / "other.keras"
    save_model(build_shufflenet(ModelSpec(groups=1, scale=0.25, input_size=32, classes=10, stem="cifar")), other)
    folder = tmp_path / "out"
    shutil.copytree(twice[0], folder)
    before = _snapshot(folder)
    assert set(ARTIFACTS) <= set(before)
    args = [verb, str(other), "-o", str(folder)]
    if verb == "quantize":
        args += ["-c", str(CALIBRATION), "--num-calibration", "8"]
    result = _interrupt_mid_write(folder, sig, args)
    assert not [p.name for p in folder.iterdir() if ".partial" in p.name]
    # The signal is sent while a temporary file exists; it can still land just after that file's
    # rename. Either way each artifact is the previous file or a complete new one, never a torn one.
    assert result.returncode in (0, 130), result.stderr[-2000:]
    if result.returncode == 130:
        assert result.stderr.strip().splitlines()[-1] == "error: interrupted"
    assert "Traceback" not in result.stderr
    after = _snapshot(folder)
    assert set(before) <= set(after)
    changed = [name for name in before if after[name] != before[name]]
    for name in changed:
        _assert_complete(folder / name)
