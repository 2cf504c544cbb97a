"""Property tests of what reads untrusted bytes: the image loader and the artifact readers.

Whatever the bytes, the result is either correct or :class:`InputFileError`;
nothing else escapes. Bounded for ``make test`` (a few seconds);
``make fuzz`` runs the same properties with many more examples
(``HYPOTHESIS_PROFILE=fuzz``, registered in ``tests/conftest.py``).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from edgeshuffle.data.images import load_rgb, preprocess
from edgeshuffle.errors import InputFileError
from edgeshuffle.metadata import ArtifactMetadata, read_metadata
from edgeshuffle.models.variants import ModelSpec
from edgeshuffle.runtime import open_runner

SPEC = ModelSpec(groups=2, scale=0.25, input_size=32, classes=10, stem="cifar")
FUZZ = settings()  # the profile from tests/conftest.py: bounded, or HYPOTHESIS_PROFILE=fuzz


def _image_bytes(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


VALID_IMAGES = {"png": _image_bytes("PNG"), "jpg": _image_bytes("JPEG")}


@st.composite
def mutated(draw, original: bytes):
    """``original`` with a few bytes overwritten, a cut, or junk appended."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=16))


def _check_image(path: Path) -> None:
    try:
        image = load_rgb(path)
    except InputFileError as error:
        assert "\n" not in str(error) and str(path) in str(error)
        return
    try:
        array = preprocess(image, SPEC.preprocessing)
    except InputFileError:
        return
    assert array.shape == (32, 32, 3) and array.dtype == np.float32
    assert np.isfinite(array).all()


@FUZZ
@given(data=st.binary(max_size=512), suffix=st.sampled_from([".png", ".jpg", ".bmp"]))
def test_image_loader_on_random_bytes(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("img") / f"x{suffix}"
    path.write_bytes(data)
    _check_image(path)


@FUZZ
@given(data=st.sampled_from(sorted(VALID_IMAGES)).flatmap(lambda fmt: mutated(VALID_IMAGES[fmt])))
def test_image_loader_on_mutated_images(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("img") / "x.png"
    path.write_bytes(data)
    _check_image(path)


def test_valid_image_loads_exactly():
    """The reference the properties rest on: an undamaged PNG gives its own pixels, normalised."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.png"
        path.write_bytes(VALID_IMAGES["png"])
        pixels = np.asarray(load_rgb(path), dtype=np.float32)
    rng = np.random.default_rng(0)
    assert np.array_equal(pixels, rng.integers(0, 255, (24, 20, 3), dtype=np.uint8).astype(np.float32))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """A tiny float TFLite (from a 4-filter Keras conv net) and a tiny ONNX, both carrying metadata."""
    import keras
    import onnx
    import tensorflow as tf
    from onnx import TensorProto, helper

    from edgeshuffle.metadata import tflite_with_metadata

    folder = tmp_path_factory.mktemp("fuzz_artifacts")
    metadata = ArtifactMetadata.for_spec(SPEC)
    net = keras.Sequential([keras.Input((8, 8, 3), batch_size=1), keras.layers.Conv2D(4, 3),
                            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    tflite = tflite_with_metadata(tf.lite.TFLiteConverter.from_keras_model(net).convert(), metadata)
    (folder / "good.tflite").write_bytes(tflite)

    weight = helper.make_tensor("w", TensorProto.FLOAT, [3, 10], np.arange(30, dtype=np.float32) / 30)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["nchw"], ["pooled"]),
         helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
         helper.make_node("Flatten", ["pooled"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8, 8, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], [weight])
    graph = helper.make_graph(sorted(graph.node, key=lambda n: n.op_type != "Transpose"), "tiny", graph.input,
                              graph.output, graph.initializer)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for key, value in metadata.onnx_props().items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    (folder / "good.onnx").write_bytes(model.SerializeToString())
    return {"tflite": tflite, "onnx": model.SerializeToString()}


def _check_artifact(path: Path) -> None:
    """Either the reader and the runner work, or they raise InputFileError with one line naming the file."""
    try:
        metadata = read_metadata(path)
        assert metadata is None or isinstance(metadata, ArtifactMetadata)
        runner = open_runner(path)
        runner.activate()
        info = runner.input_info()
        assert all(isinstance(d, int) for d in info.shape)
        runner.deactivate()
    except InputFileError as error:
        assert "\n" not in str(error) and str(path) in str(error)


def test_good_artifacts_read_back(artifacts, tmp_path):
    """The reference: undamaged files give their metadata and run."""
    for suffix in ("tflite", "onnx"):
        path = tmp_path / f"good.{suffix}"
        path.write_bytes(artifacts[suffix])
        assert read_metadata(path).spec == SPEC
        with open_runner(path) as runner:
            out = runner.infer(np.ones((1, 8, 8, 3), np.float32))
        assert out.shape == (1, 10) and np.isfinite(out).all()
    expected = np.arange(30, dtype=np.float32).reshape(3, 10).sum(0) / 30  # ones through the pool, then MatMul
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)


@FUZZ
@given(data=st.binary(max_size=256), suffix=st.sampled_from([".tflite", ".onnx"]))
def test_artifact_readers_on_random_bytes(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("art") / f"x{suffix}"
    path.write_bytes(data)
    _check_artifact(path)


@FUZZ
@given(suffix=st.sampled_from(["tflite", "onnx"]), data=st.data())
def test_artifact_readers_on_mutated_artifacts(artifacts, tmp_path_factory, suffix, data):
    path = tmp_path_factory.mktemp("art") / f"x.{suffix}"
    path.write_bytes(data.draw(mutated(artifacts[suffix])))
    _check_artifact(path)
