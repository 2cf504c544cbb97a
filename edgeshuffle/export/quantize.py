"""Post-training int8 quantization: TFLite (TFLiteConverter) and ONNX (onnxruntime QDQ).

Both are calibrated on the same preprocessed images. The TFLite path converts
the edge form of the model (see :mod:`edgeshuffle.export.rewrites`), in which
every op of the int8 graph is one XNNPACK delegates, so the whole graph runs
as one partition.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edgeshuffle.errors import ConversionError

log = logging.getLogger(__name__)

IO_TYPES = ("int8", "uint8", "float32")


def quantize_tflite(edge_model, calibration: np.ndarray, io_type: str = "int8") -> bytes:
    """Full-integer int8 TFLite flatbuffer of ``edge_model`` (a static-batch edge-form model).

    Weights are per-channel, activations per-tensor (TFLite's int8 scheme);
    the input and output are ``io_type``.
    """
    import tensorflow as tf

    if io_type not in IO_TYPES:
        raise ConversionError(f"unknown input/output type {io_type!r} (choose from {', '.join(IO_TYPES)})")
    batch = edge_model.input_shape[0] or 1

    def representative_dataset():
        for start in range(0, len(calibration) - batch + 1, batch):
            yield [calibration[start:start + batch]]

    converter = tf.lite.TFLiteConverter.from_keras_model(edge_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[io_type]
    converter.inference_output_type = converter.inference_input_type
    try:
        return converter.convert()
    except Exception as error:  # the converter raises many unrelated types
        raise ConversionError(f"TFLite int8 conversion failed: {str(error).splitlines()[0]}") from None


class _CalibrationReader:
    """onnxruntime's CalibrationDataReader over preprocessed images, one batch at a time."""

    def __init__(self, inputs: np.ndarray, input_name: str, batch: int):
        self._feeds = iter([{input_name: inputs[i:i + batch]} for i in range(0, len(inputs) - batch + 1, batch)])

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self):  # not needed by MinMax calibration, part of the reader protocol
        raise NotImplementedError


def quantize_onnx(float_onnx: Path, calibration: np.ndarray, target: Path, work_dir: Path) -> None:
    """QDQ int8 ONNX of ``float_onnx`` with ``onnxruntime.quantization.quantize_static``.

    Per-channel int8 weights, uint8 activations (onnxruntime's fast U8S8
    path on x86 and ARM), MinMax calibration on ``calibration``. Writes
    ``target`` (the caller makes it atomic) using ``work_dir`` for the
    pre-processed model.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(float_onnx))
    input_name = model.graph.input[0].name
    dims = model.graph.input[0].type.tensor_type.shape.dim
    batch = dims[0].dim_value or 1
    prepared = work_dir / "float32.prepared.onnx"
    try:
        quant_pre_process(str(float_onnx), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(target), _CalibrationReader(calibration, input_name, batch),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    except Exception as error:  # onnxruntime.quantization raises untyped errors
        raise ConversionError(f"ONNX int8 quantization failed: {str(error).splitlines()[0]}") from None
    finally:
        prepared.unlink(missing_ok=True)
