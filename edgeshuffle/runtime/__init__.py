"""One runner interface for every form of the model (Polygraphy-style).

Importing this package never imports TensorFlow; only :class:`KerasRunner`
does, when it is activated.
"""

from edgeshuffle.runtime.base import InputInfo, Runner, open_runner
from edgeshuffle.runtime.keras_runner import KerasRunner
from edgeshuffle.runtime.onnx_runner import OnnxRunner
from edgeshuffle.runtime.tflite_runner import TFLiteRunner

__all__ = ["InputInfo", "KerasRunner", "OnnxRunner", "Runner", "TFLiteRunner", "open_runner"]
