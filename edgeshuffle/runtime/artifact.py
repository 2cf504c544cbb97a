"""What an artifact is, read on the board: metadata, tensors, size, ops and delegation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgeshuffle.errors import InputFileError
from edgeshuffle.runtime.base import detect_kind, open_runner


def artifact_info(path: Path, threads: int = 1) -> dict:
    """A ``.tflite`` or ``.onnx`` artifact described as JSON-ready data (no TensorFlow, no ``onnx``).

    Keys: ``path``, ``format``, ``size_bytes``, ``metadata`` (the
    edgeshuffle metadata, or None), ``inputs``/``outputs`` (name, shape,
    dtype, quantization), ``op_histogram``; TFLite adds ``delegation`` (the
    XNNPACK partitions and ops outside them), ONNX adds ``opsets`` and
    ``providers``.

    Raises:
        InputFileError: missing file, or not a valid TFLite/ONNX model.
    """
    from edgeshuffle.metadata import read_metadata

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"no model file at {path}")
    kind = detect_kind(path)
    if kind not in ("tflite", "onnx"):
        raise InputFileError(f"not a .tflite or .onnx model: {path}")
    with open_runner(path, runtime=kind, threads=threads) as runner:  # validates the file first
        inputs, outputs = runner.tensor_details()
        info = {
            "path": str(path), "format": kind, "size_bytes": path.stat().st_size,
            "runner": runner.describe(),
            "inputs": [dataclasses.asdict(i) for i in inputs],
            "outputs": [dataclasses.asdict(o) for o in outputs],
        }
        if kind == "tflite":
            delegation = runner.delegation()
            info["op_histogram"] = delegation.op_histogram
            info["delegation"] = delegation.to_dict()
        else:
            from edgeshuffle.runtime.onnx_graph import onnx_ops

            info["op_histogram"], info["opsets"] = onnx_ops(path)
    metadata = read_metadata(path)
    info["metadata"] = None if metadata is None else {
        "model": metadata.name, "precision": metadata.precision, "schema_version": metadata.schema_version,
        "preprocessing": metadata.preprocessing.to_dict(), "class_names": metadata.class_names,
        "spec": metadata.spec.to_dict() if metadata.spec else None, "form": metadata.form,
    }
    return info
