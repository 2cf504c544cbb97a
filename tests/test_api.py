"""The Python API: edgeshuffle.convert / quantize / Preprocessing over the code the CLI runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeshuffle
from edgeshuffle.errors import InputFileError, InvalidArgumentError

CALIBRATION = Path(__file__).resolve().parents[1] / "calibration" / "cifar10-test-2000"


def test_import_edgeshuffle_is_light():
    """No TensorFlow, Keras or numpy at import time: the functions import them when called."""
    script = ("import sys, edgeshuffle\n"
              "assert edgeshuffle.__all__ == ['Preprocessing', 'convert', 'load_model', 'quantize']\n"
              "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & "
              "{'numpy', 'tensorflow', 'keras', 'onnx', 'onnxruntime', 'ai_edge_litert', 'PIL'}))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.rstrip().endswith("LOADED []"), done.stdout


def _shufflenet():
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.variants import ModelSpec

    return build_shufflenet(ModelSpec(groups=2, scale=0.25, input_size=32, classes=10, stem="cifar"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    pytest.importorskip("keras")
    model = _shufflenet()
    out = tmp_path_factory.mktemp("api") / "out"
    return model, out, edgeshuffle.convert(model, out, samples=2, seed=3)


def test_convert_a_keras_model_returns_the_report_of_the_files_it_wrote(converted, capsys):
    model, out, report = converted
    assert report.passed and report.config["samples"] == 2 and report.config["trust_code"] is False
    for name in report.files.values():
        assert (out / name).is_file(), name
    assert json.loads((out / "convert.json").read_text()) == json.loads(json.dumps(report.to_dict()))
    # the artifact computes what the user's model computes (an independent run of Keras itself)
    from edgeshuffle.runtime import open_runner

    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype(np.float32)
    with open_runner(out / "float32.tflite") as runner:
        np.testing.assert_allclose(runner.infer(x), np.asarray(model(x, training=False)), rtol=1e-4, atol=1e-4)
    assert capsys.readouterr().out == ""  # the library never prints


def test_quantize_a_keras_model(converted, capsys):
    model, out, _ = converted
    report = edgeshuffle.quantize(model, CALIBRATION, out, num_calibration=4)
    assert report.status == "ungated" and report.calibration["images"] == 4
    assert (out / "int8.tflite").is_file() and (out / "int8.onnx").is_file()
    assert capsys.readouterr().out == ""


def test_unknown_option_and_contradicting_preprocessing_are_refused(tmp_path):
    pytest.importorskip("keras")
    with pytest.raises(InvalidArgumentError, match=r"Received: `batchsize=2`"):
        edgeshuffle.convert(_shufflenet(), tmp_path, batchsize=2)
    with pytest.raises(InvalidArgumentError, match=r"known: .*num_calibration.*Received: `num_calibrations=4`"):
        edgeshuffle.quantize(_shufflenet(), CALIBRATION, tmp_path, num_calibrations=4)
    with pytest.raises(InvalidArgumentError, match=r"input_size=224"):
        edgeshuffle.convert(_shufflenet(), tmp_path, preprocessing=edgeshuffle.Preprocessing(input_size=224))
    with pytest.raises(InputFileError, match="no model file"):
        edgeshuffle.convert(tmp_path / "missing.keras", tmp_path)
    assert not any(tmp_path.iterdir())


def test_convert_a_foreign_model_with_preprocessing_and_labels(tmp_path):
    import keras

    from edgeshuffle.metadata import read_metadata

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)), name="mine")
    pre = edgeshuffle.Preprocessing(input_size=32, resize_size=36, mean=(127.5,) * 3, std=(127.5,) * 3)
    report = edgeshuffle.convert(model, tmp_path, preprocessing=pre, class_names=["a", "b", "c"], samples=2)
    assert report.passed
    for name in ("model.keras", "float32.tflite", "float32.onnx"):
        metadata = read_metadata(tmp_path / name)
        assert metadata.preprocessing == pre and metadata.class_names == ("a", "b", "c"), name
