"""The runner interface: activate, infer, deactivate; float in, float logits out."""

from __future__ import annotations

import abc
import dataclasses
import time
from pathlib import Path

import numpy as np

from edgeshuffle.errors import InputFileError


@dataclasses.dataclass(frozen=True)
class InputInfo:
    """The model's input: shape (NHWC), dtype, and quantization (scale 0: none)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


class Runner(abc.ABC):
    """Runs one model file. Use as a context manager, or activate()/deactivate().

    ``infer(batch)`` takes float32 NHWC inputs, preprocessed as the model's
    metadata says, quantizes them if the model wants integers, and returns
    float32 logits (dequantized). ``last_inference_seconds`` is the time of
    the compute call alone.
    """

    kind = "?"

    def __init__(self, path: Path, threads: int = 1):
        self.path = Path(path)
        self.threads = threads
        self.last_inference_seconds = 0.0
        self.active = False

    def __enter__(self) -> "Runner":
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def activate(self) -> None:
        if not self.path.is_file():
            raise InputFileError(f"no model file at {self.path}")
        self._activate()
        self.active = True

    def deactivate(self) -> None:
        self._deactivate()
        self.active = False

    @abc.abstractmethod
    def _activate(self) -> None: ...

    def _deactivate(self) -> None:
        pass

    @abc.abstractmethod
    def input_info(self) -> InputInfo: ...

    @abc.abstractmethod
    def _run(self, feed: np.ndarray) -> np.ndarray: ...

    def output_info(self) -> InputInfo | None:
        """The model's (first) output, when the runtime says; same fields as :meth:`input_info`."""
        return None

    def describe(self) -> dict:
        """What a report should say about how this runner runs its model (runtime, version, options)."""
        return {"runtime": self.kind, "threads": self.threads}

    def timed_call(self, feed: np.ndarray) -> float:
        """Run once on an already-typed input; return the seconds of the compute call alone.

        Runners override this to keep input copies and output conversion out
        of the timed region (TFLite: ``invoke()`` only, like ``benchmark_model``).
        """
        self.run_raw(feed)
        return self.last_inference_seconds

    def quantize_input(self, batch: np.ndarray) -> np.ndarray:
        info = self.input_info()
        if not info.quantized:
            return batch.astype(info.dtype, copy=False)
        limits = np.iinfo(info.dtype)
        q = np.round(batch / info.scale) + info.zero_point
        return np.clip(q, limits.min, limits.max).astype(info.dtype)

    def run_raw(self, feed: np.ndarray) -> np.ndarray:
        """One compute call on an already-typed input; timed."""
        start = time.perf_counter()
        out = self._run(feed)
        self.last_inference_seconds = time.perf_counter() - start
        return out

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Float NHWC batch -> float32 logits, one model call per batch of the model's size."""
        batch = np.asarray(batch, dtype=np.float32)
        model_batch = self.input_info().shape[0]
        if model_batch in (None, -1, 0) or model_batch == batch.shape[0]:
            return self.run_raw(self.quantize_input(batch))
        if batch.shape[0] % model_batch:
            raise ValueError(f"batch of {batch.shape[0]} does not divide into the model's {model_batch}")
        return np.concatenate([self.run_raw(self.quantize_input(batch[i:i + model_batch]))
                               for i in range(0, batch.shape[0], model_batch)])


TFLITE_IDENTIFIER = b"TFL3"  # the flatbuffer file identifier at bytes 4..8 of every TFLite model


def detect_kind(path: Path) -> str:
    """``tflite``, ``onnx`` or ``keras`` from the suffix; a file without a known suffix is sniffed.

    Raises:
        InputFileError: the file is missing.
    """
    path = Path(path)
    suffix = path.suffix.lstrip(".").lower()
    if suffix in ("tflite", "onnx", "keras"):
        return suffix
    if not path.is_file():
        raise InputFileError(f"no model file at {path}")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head[4:8] == TFLITE_IDENTIFIER:
        return "tflite"
    if head[:2] == b"PK":
        return "keras"
    return "onnx" if head[:1] == b"\x08" else suffix  # ModelProto starts with ir_version (field 1, varint)


def open_runner(path: Path, runtime: str = "auto", threads: int = 1, tflite_kernels: str = "xnnpack") -> Runner:
    """A runner for ``path`` chosen by its suffix (``.tflite``, ``.onnx``, ``.keras``) or ``runtime``.

    ``tflite_kernels`` picks the kernels of a TFLite model (see
    :data:`edgeshuffle.runtime.tflite_kernels.TFLITE_KERNELS`); other runtimes ignore it.
    """
    from edgeshuffle.runtime.keras_runner import KerasRunner
    from edgeshuffle.runtime.onnx_runner import OnnxRunner
    from edgeshuffle.runtime.tflite_runner import TFLiteRunner

    path = Path(path)
    kinds = {"tflite": TFLiteRunner, "onnx": OnnxRunner, "keras": KerasRunner}
    kind = detect_kind(path) if runtime == "auto" else runtime
    if kind not in kinds:
        raise InputFileError(f"not a .tflite, .onnx or .keras model: {path}")
    if kind == "tflite":
        return TFLiteRunner(path, threads=threads, kernels=tflite_kernels)
    return kinds[kind](path, threads=threads)
