"""LiteRT (ai_edge_litert) runner: XNNPACK by default, or LiteRT's built-in or reference kernels."""

from __future__ import annotations

import importlib.metadata
import time

import numpy as np

from edgeshuffle.errors import InputFileError, InvalidArgumentError
from edgeshuffle.runtime.base import InputInfo, Runner
from edgeshuffle.runtime.tflite_kernels import TFLITE_KERNELS


class TFLiteRunner(Runner):
    kind = "tflite"

    def __init__(self, path, threads: int = 1, kernels: str = "xnnpack"):
        super().__init__(path, threads)
        if kernels not in TFLITE_KERNELS:
            raise InvalidArgumentError(f"TFLite kernels must be one of {', '.join(TFLITE_KERNELS)}. "
                                       f"Received: `kernels={kernels}`")
        self.kernels = kernels
        self.interpreter = None

    def _activate(self) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        if self.threads < 1:
            raise InvalidArgumentError(f"threads must be at least 1. Received: `threads={self.threads}`")

        resolver = OpResolverType[TFLITE_KERNELS[self.kernels]]
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=self.threads,
                                           experimental_op_resolver_type=resolver)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise InputFileError(f"not a valid TFLite model: {self.path} ({str(error).splitlines()[0]})") from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]

    def _deactivate(self) -> None:
        self.interpreter = None

    def input_info(self) -> InputInfo:
        return _info(self._input)

    def _run(self, feed: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._input["index"], feed)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])
        scale, zero_point = self._output["quantization"]
        if scale:
            return (out.astype(np.float32) - zero_point) * scale
        return out.astype(np.float32, copy=False)

    def output_info(self) -> InputInfo:
        return _info(self._output)

    def tensor_details(self) -> tuple[list[InputInfo], list[InputInfo]]:
        """Every input and output of the model."""
        return ([_info(d) for d in self.interpreter.get_input_details()],
                [_info(d) for d in self.interpreter.get_output_details()])

    def ops_details(self) -> list[dict]:
        """The interpreter's nodes, with one ``DELEGATE`` node per delegate partition."""
        return self.interpreter._get_ops_details()

    def delegation(self):
        """The :class:`~edgeshuffle.runtime.delegation.DelegationReport` of this interpreter."""
        from edgeshuffle.runtime.delegation import delegation_of

        return delegation_of(self.ops_details())

    def describe(self) -> dict:
        try:
            version = importlib.metadata.version("ai-edge-litert")
        except importlib.metadata.PackageNotFoundError:
            version = None
        return {"runtime": self.kind, "runtime_version": version, "threads": self.threads,
                "kernels": self.kernels}

    def timed_call(self, feed: np.ndarray) -> float:
        self.interpreter.set_tensor(self._input["index"], feed)
        start = time.perf_counter()
        self.interpreter.invoke()
        return time.perf_counter() - start


def _info(details: dict) -> InputInfo:
    scale, zero_point = details["quantization"]
    return InputInfo(details["name"], tuple(int(d) for d in details["shape"]), np.dtype(details["dtype"]).name,
                     float(scale), int(zero_point))
