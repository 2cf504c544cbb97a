"""Artifacts for the board-side tests, made once per session with the real converters.

A small ShuffleNet (0.25x, g=3, CIFAR stem, 32x32, 10 named classes) as
TFLite: float32 and full-integer int8 of the edge graph (every pass of
edgeshuffle.graph; one XNNPACK partition) and int8 of the plain graph (static
batch and native grouped convs only; several partitions); a tiny ONNX
classifier (NHWC input, Transpose, Conv, ReLU, GlobalAveragePool, Gemm) in
float32 and QDQ int8; an ONNX model whose input is not an image; and a
folder of labelled images (one subfolder per class, plus an undecodable file).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
EDGE_PASSES = None  # all of them
PLAIN_PASSES = ("static_batch", "grouped_conv")


def _spec():
    from edgeshuffle.models.variants import ModelSpec

    return ModelSpec(groups=3, scale=0.25, input_size=32, classes=10, stem="cifar", class_names=CLASS_NAMES)


def _calibration(spec, count: int = 8) -> np.ndarray:
    """Smooth random images, preprocessed as the spec says (what real calibration images look like)."""
    rng = np.random.default_rng(1)
    pre = spec.preprocessing
    low = rng.uniform(0, 255, size=(count, 4, 4, 3))
    pixels = np.repeat(np.repeat(low, 8, axis=1), 8, axis=2) + rng.normal(0, 20, size=(count, 32, 32, 3))
    pixels = np.clip(pixels, 0, 255)
    return ((pixels - np.asarray(pre.mean)) / np.asarray(pre.std)).astype(np.float32)


def _tflite(model, calibration: np.ndarray | None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def _onnx_classifier(spec, path: Path, precision: str, calibration: np.ndarray) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgeshuffle.metadata import ArtifactMetadata

    rng = np.random.default_rng(2)
    weights = {
        "conv_w": rng.normal(0, 0.3, size=(8, 3, 3, 3)).astype(np.float32),
        "conv_b": rng.normal(0, 0.1, size=(8,)).astype(np.float32),
        "fc_w": rng.normal(0, 0.5, size=(8, 10)).astype(np.float32),
        "fc_b": rng.normal(0, 0.1, size=(10,)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                           [1, 32, 32, 3])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
                              [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = ArtifactMetadata.for_spec(spec, precision=precision).onnx_props()
    helper.set_model_props(model, props)
    if precision == "float32":
        onnx.save(model, str(path))
        return
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": x[None]} for x in calibration])

        def get_next(self):
            return next(self.items, None)

    source = path.with_suffix(".float.onnx")
    onnx.save(model, str(source))
    quantize_static(str(source), str(path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    quantized = onnx.load(str(path))
    helper.set_model_props(quantized, props)
    onnx.save(quantized, str(path))
    source.unlink()


def _onnx_not_an_image(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "vector",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _images(spec, folder: Path) -> None:
    """Three classes of 4 smooth random images each (32x32 PNG), and one file that is not an image."""
    from PIL import Image

    rng = np.random.default_rng(3)
    for name in ("bird", "cat", "ship"):
        (folder / name).mkdir(parents=True)
        for i in range(4):
            low = rng.uniform(0, 255, size=(4, 4, 3))
            pixels = np.repeat(np.repeat(low, 8, axis=0), 8, axis=1) + rng.normal(0, 20, size=(32, 32, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / name / f"{i}.png")
    (folder / "bird" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    from edgeshuffle.graph import rewrite
    from edgeshuffle.graph.passes import PASSES
    from edgeshuffle.metadata import ArtifactMetadata, tflite_with_metadata
    from edgeshuffle.models.shufflenet import build_shufflenet

    folder = tmp_path_factory.mktemp("artifacts")
    spec = _spec()
    model = build_shufflenet(spec)
    calibration = _calibration(spec)
    made = {}
    for name, names, quantize in (("edge_float32", EDGE_PASSES, False), ("edge_int8", EDGE_PASSES, True),
                                  ("plain_int8", PLAIN_PASSES, True)):
        passes = [p for p in PASSES if names is None or p.name in names]
        graph = rewrite(model, passes=passes).model
        data = _tflite(graph, calibration if quantize else None)
        metadata = ArtifactMetadata.for_spec(spec, precision="int8" if quantize else "float32",
                                             form={"passes": [p.name for p in passes]})
        made[name] = folder / f"{name}.tflite"
        made[name].write_bytes(tflite_with_metadata(data, metadata))
    for precision in ("float32", "int8"):
        made[f"onnx_{precision}"] = folder / f"tiny_{precision}.onnx"
        _onnx_classifier(spec, made[f"onnx_{precision}"], precision, calibration)
    made["onnx_vector"] = folder / "vector.onnx"
    _onnx_not_an_image(made["onnx_vector"])
    made["zero.tflite"] = folder / "zero.tflite"
    made["zero.tflite"].write_bytes(b"")
    made["random.tflite"] = folder / "random.tflite"
    made["random.tflite"].write_bytes(np.random.default_rng(4).bytes(4096))
    made["zero.onnx"] = folder / "zero.onnx"
    made["zero.onnx"].write_bytes(b"")
    made["random.onnx"] = folder / "random.onnx"
    made["random.onnx"].write_bytes(np.random.default_rng(5).bytes(4096))
    made["images"] = folder / "images"
    _images(spec, made["images"])
    return made
