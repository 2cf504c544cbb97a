"""Artifacts made elsewhere (no edgeshuffle metadata): parity and bench take the preprocessing as options.

The reference is the same artifact with its metadata: given the preprocessing
the metadata holds, the bare copy must give identical logits; given another,
it must not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from edgeshuffle.cli import main
from edgeshuffle.errors import InvalidArgumentError
from edgeshuffle.metadata import METADATA_NAME, artifact_metadata, read_metadata
from edgeshuffle.parity import image_parity
from edgeshuffle.preprocessing import CIFAR10_MEAN, CIFAR10_STD, Preprocessing, PreprocessingOptions

CIFAR_OPTIONS = ["--mean", ",".join(map(str, CIFAR10_MEAN)), "--std", ",".join(map(str, CIFAR10_STD)),
                 "--resize", "32"]


def _strip_tflite(source, target):
    from ai_edge_litert import schema_py_generated as schema
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(bytearray(source.read_bytes()), 0)
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.write_bytes(bytes(builder.Output()))


def _strip_onnx(source, target):
    import onnx

    proto = onnx.load(str(source))
    del proto.metadata_props[:]
    onnx.save(proto, str(target))


@pytest.fixture(scope="module")
def bare(artifacts, tmp_path_factory):
    """Copies of the session's artifacts without their metadata."""
    folder = tmp_path_factory.mktemp("bare")
    made = {}
    for name in ("edge_float32", "edge_int8"):
        made[name] = folder / f"{name}.tflite"
        _strip_tflite(artifacts[name], made[name])
    for name in ("onnx_float32", "onnx_int8"):
        made[name] = folder / f"{name}.onnx"
        _strip_onnx(artifacts[name], made[name])
    for path in made.values():
        assert read_metadata(path) is None
    labels = folder / "labels.txt"
    labels.write_text("\n".join(read_metadata(artifacts["edge_float32"]).class_names) + "\n")
    made["labels"] = labels
    return made


@pytest.mark.parametrize("name", ["edge_float32", "edge_int8", "onnx_float32", "onnx_int8"])
def test_bare_artifact_with_the_metadata_preprocessing_gives_identical_logits(artifacts, bare, name, tmp_path):
    with_metadata = read_metadata(artifacts[name])
    options = PreprocessingOptions(mean=CIFAR10_MEAN, std=CIFAR10_STD, resize_size=32)
    made = artifact_metadata(bare[name], options)
    assert made.preprocessing == with_metadata.preprocessing
    assert made.precision == with_metadata.precision  # read from the graph
    report = image_parity([artifacts[name], bare[name]], artifacts["images"], reference=artifacts[name],
                          preprocessing=options, logits_path=tmp_path / "same.npz")
    assert report.evaluated == 12
    logits = np.load(tmp_path / "same.npz")["logits"]
    np.testing.assert_array_equal(logits[1], logits[0])
    image_parity([artifacts[name], bare[name]], artifacts["images"], reference=artifacts[name],
                 preprocessing=PreprocessingOptions(preset="tf"), logits_path=tmp_path / "other.npz")
    other = np.load(tmp_path / "other.npz")["logits"]
    assert np.abs(other[1] - other[0]).max() > 1e-3  # the check can fail


def test_parity_cli_on_bare_artifacts_with_options_and_labels(artifacts, bare, tmp_path):
    """Labelled images: accuracy needs --labels to map class folders to outputs, as the metadata's names do."""
    out = tmp_path / "parity.json"
    result = CliRunner().invoke(main, ["parity", str(artifacts["edge_float32"]), str(bare["edge_float32"]),
                                       str(bare["onnx_float32"]), "--images", str(artifacts["images"]),
                                       *CIFAR_OPTIONS, "--labels", str(bare["labels"]), "--json", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())["results"]
    assert results[1]["max_abs_error"] == 0.0 and results[1]["accuracy"] == results[0]["accuracy"]
    assert results[2]["precision"] == "float32"


def test_preprocessing_of_another_input_size_is_refused(bare):
    with pytest.raises(InvalidArgumentError, match=r"artifact's \(32x32.*input_size=224"):
        artifact_metadata(bare["edge_float32"], Preprocessing.imagenet(224))
    with pytest.raises(InvalidArgumentError, match="3 names"):
        artifact_metadata(bare["onnx_float32"], PreprocessingOptions(preset="tf"), class_names=("a", "b", "c"))


def test_bench_inputs_on_bare_artifacts(artifacts, bare, tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", str(bare["edge_int8"]), str(bare["onnx_float32"]), "--runs", "2",
                                       "--warmup", "0", "--inputs", str(artifacts["images"]), "--preprocess", "torch",
                                       "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["config"]["preprocessing"]["preset"] == "torch" and len(report["results"]) == 2


def test_bare_artifacts_on_the_board_path_import_no_tensorflow(artifacts, bare, tmp_path):
    from tests.runtime.test_no_tensorflow import SCRIPT

    calls = [["parity", str(bare["edge_int8"]), str(bare["onnx_float32"]), "--images", str(artifacts["images"]),
              *CIFAR_OPTIONS, "--labels", str(bare["labels"])],
             ["bench", str(bare["edge_int8"]), "--runs", "2", "--warmup", "0", "--inputs", str(artifacts["images"]),
              *CIFAR_OPTIONS]]
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(calls)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.split("RESULT ")[-1]) == {"codes": [0, 0], "loaded": []}, done.stderr[-2000:]
