"""The CLI on a user's own .keras model: preprocessing options, --labels, --trust-code, then parity on the board."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgeshuffle.cli import main

keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Lambda(lambda t: t * 0.5)(x)
    lambda_model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
    lambda_model.save(folder / "lambda.keras")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inputs)
    plain = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)), name="mine")
    plain.save(folder / "mine.keras")
    (folder / "labels.txt").write_text("cat\ndog\nship\n")
    (folder / "two.txt").write_text("cat\ndog\n")
    return folder


def test_trust_code_loads_a_lambda_file_and_says_so(files, tmp_path):
    """Loaded with safe mode off (the next check, the label count, is reached), and stderr says so."""
    result = CliRunner().invoke(main, ["convert", str(files / "lambda.keras"), "-o", str(tmp_path / "out"),
                                       "--trust-code", "--labels", str(files / "two.txt")])
    assert result.exit_code == 2, result.output
    assert "--trust-code" in result.stderr and "safe mode off" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: Need one class name per output class (3)")


def test_own_model_from_keras_file_to_parity_on_the_board(files, tmp_path):
    out = tmp_path / "out"
    images = tmp_path / "images"
    images.mkdir()
    import numpy as np
    from PIL import Image

    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(images / f"{i}.png")
    result = CliRunner().invoke(main, ["convert", str(files / "lambda.keras"), "-o", str(out), "--trust-code",
                                       "--preprocess", "tf", "--resize", "36", "--labels", str(files / "labels.txt"),
                                       "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["config"]["trust_code"] is True
    from edgeshuffle.metadata import read_metadata

    for name in ("model.keras", "float32.tflite", "float32.onnx"):
        metadata = read_metadata(out / name)
        assert metadata.class_names == ("cat", "dog", "ship") and metadata.preprocessing.mean == (127.5,) * 3
    result = CliRunner().invoke(main, ["parity", str(out / "float32.tflite"), str(out / "float32.onnx"),
                                       "--images", str(images), "--json", str(tmp_path / "p.json")])
    assert result.exit_code == 0, result.output
    assert all(r["top1_agreement"] == 1.0 for r in json.loads((tmp_path / "p.json").read_text())["results"])


def test_quantize_own_model_with_preset(files, tmp_path):
    from pathlib import Path

    calibration = Path(__file__).resolve().parents[1] / "calibration" / "cifar10-test-2000"
    result = CliRunner().invoke(main, ["quantize", str(files / "mine.keras"), "-c", str(calibration),
                                       "--num-calibration", "4", "-o", str(tmp_path), "--preprocess", "torch",
                                       "--json"])
    assert result.exit_code == 0, result.output
    from edgeshuffle.metadata import read_metadata

    assert read_metadata(tmp_path / "int8.tflite").preprocessing.std == (58.395, 57.12, 57.375)
    # model.keras carries the same preprocessing, so it serves as parity's reference
    assert read_metadata(tmp_path / "model.keras").preprocessing == read_metadata(tmp_path / "int8.tflite").preprocessing
    result = CliRunner().invoke(main, ["parity", str(tmp_path / "int8.tflite"), str(tmp_path / "float32.tflite"),
                                       "--reference", str(tmp_path / "model.keras"), "--images", str(calibration),
                                       "--limit", "8"])
    assert result.exit_code == 0, result.output
