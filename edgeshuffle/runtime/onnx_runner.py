"""onnxruntime runner (CPU execution provider unless told otherwise)."""

from __future__ import annotations

import numpy as np

from edgeshuffle.errors import InputFileError, InvalidArgumentError
from edgeshuffle.runtime.base import InputInfo, Runner

_ORT_TYPES = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
              "tensor(float16)": "float16", "tensor(int32)": "int32", "tensor(int64)": "int64"}
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


class OnnxRunner(Runner):
    """onnxruntime session; inputs are NHWC float (the artifact's own layout).

    ``providers`` defaults to the CPU execution provider alone, so a number
    measured on one machine means the same kernels as on another.
    """

    kind = "onnx"

    def __init__(self, path, threads: int = 1, optimization: str = "all",
                 providers: tuple[str, ...] = ("CPUExecutionProvider",)):
        super().__init__(path, threads)
        if optimization not in OPTIMIZATION_LEVELS:
            raise InvalidArgumentError(f"optimization must be one of {OPTIMIZATION_LEVELS}. "
                                       f"Received: `optimization={optimization}`")
        self.optimization = optimization
        self.providers = tuple(providers)
        self.session = None

    def _activate(self) -> None:
        import onnxruntime as ort

        if self.threads < 1:
            raise InvalidArgumentError(f"threads must be at least 1. Received: `threads={self.threads}`")
        missing = [p for p in self.providers if p not in ort.get_available_providers()]
        if missing:
            raise InvalidArgumentError(f"onnxruntime has no provider {missing[0]} here (available: "
                                       f"{', '.join(ort.get_available_providers())})")
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
            self.session = ort.InferenceSession(str(self.path), options, providers=list(self.providers))
        except Exception as error:  # onnxruntime raises its own untyped exceptions
            raise InputFileError(f"not a valid ONNX model: {self.path} ({str(error).splitlines()[0]})") from None
        self._input = self.session.get_inputs()[0]
        self._output_name = self.session.get_outputs()[0].name

    def _deactivate(self) -> None:
        self.session = None

    def input_info(self) -> InputInfo:
        return _info(self._input)

    def output_info(self) -> InputInfo:
        return _info(self.session.get_outputs()[0])

    def tensor_details(self) -> tuple[list[InputInfo], list[InputInfo]]:
        return [_info(i) for i in self.session.get_inputs()], [_info(o) for o in self.session.get_outputs()]

    def describe(self) -> dict:
        import onnxruntime as ort

        return {"runtime": self.kind, "runtime_version": ort.__version__, "threads": self.threads,
                "providers": list(self.session.get_providers()) if self.session else list(self.providers),
                "graph_optimization_level": self.optimization}

    def _run(self, feed: np.ndarray) -> np.ndarray:
        return self.session.run([self._output_name], {self._input.name: feed})[0].astype(np.float32, copy=False)

    def timed_call(self, feed: np.ndarray) -> float:
        import time

        start = time.perf_counter()
        self.session.run([self._output_name], {self._input.name: feed})
        return time.perf_counter() - start


def _info(node) -> InputInfo:
    shape = tuple(d if isinstance(d, int) else -1 for d in node.shape)
    return InputInfo(node.name, shape, _ORT_TYPES.get(node.type, node.type))
