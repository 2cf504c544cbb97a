"""One runner interface for every form of the model (Polygraphy-style).

Importing this package never imports TensorFlow; only :class:`KerasRunner`
does, when it is activated. The names below load on first use, so importing
one light submodule (the CLI's :mod:`~edgeshuffle.runtime.tflite_kernels`)
does not load numpy and every runtime.
"""

import importlib

_EXPORTS = {"InputInfo": "base", "Runner": "base", "open_runner": "base", "KerasRunner": "keras_runner",
            "OnnxRunner": "onnx_runner", "TFLiteRunner": "tflite_runner"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
