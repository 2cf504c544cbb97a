"""LiteRT (ai_edge_litert) runner, with XNNPACK unless asked not to."""

from __future__ import annotations

import numpy as np

from edgeshuffle.errors import InputFileError
from edgeshuffle.runtime.base import InputInfo, Runner


class TFLiteRunner(Runner):
    kind = "tflite"

    def __init__(self, path, threads: int = 1, xnnpack: bool = True):
        super().__init__(path, threads)
        self.xnnpack = xnnpack
        self.interpreter = None

    def _activate(self) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if self.xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
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
        scale, zero_point = self._input["quantization"]
        return InputInfo(self._input["name"], tuple(int(d) for d in self._input["shape"]),
                         np.dtype(self._input["dtype"]).name, float(scale), int(zero_point))

    def _run(self, feed: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._input["index"], feed)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])
        scale, zero_point = self._output["quantization"]
        if scale:
            return (out.astype(np.float32) - zero_point) * scale
        return out.astype(np.float32, copy=False)
