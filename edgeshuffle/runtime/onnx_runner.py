"""onnxruntime runner (CPU execution provider)."""

from __future__ import annotations

import numpy as np

from edgeshuffle.errors import InputFileError
from edgeshuffle.runtime.base import InputInfo, Runner

_ORT_TYPES = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}


class OnnxRunner(Runner):
    """onnxruntime session; inputs are NHWC float (the artifact's own layout)."""

    kind = "onnx"

    def __init__(self, path, threads: int = 1, optimization: str = "all"):
        super().__init__(path, threads)
        self.optimization = optimization
        self.session = None

    def _activate(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.optimization]
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own untyped exceptions
            raise InputFileError(f"not a valid ONNX model: {self.path} ({str(error).splitlines()[0]})") from None
        self._input = self.session.get_inputs()[0]
        self._output_name = self.session.get_outputs()[0].name

    def _deactivate(self) -> None:
        self.session = None

    def input_info(self) -> InputInfo:
        shape = tuple(d if isinstance(d, int) else -1 for d in self._input.shape)
        return InputInfo(self._input.name, shape, _ORT_TYPES.get(self._input.type, "float32"))

    def _run(self, feed: np.ndarray) -> np.ndarray:
        return self.session.run([self._output_name], {self._input.name: feed})[0].astype(np.float32, copy=False)
