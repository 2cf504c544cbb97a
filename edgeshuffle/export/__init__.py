"""Export for edge runtimes: float TFLite and ONNX conversion of the passes' edge graph, the convert step.

Imports TensorFlow (inside functions); never imported by the board path. The
rewrites themselves are :mod:`edgeshuffle.graph`; the convert step is
:func:`edgeshuffle.export.convert.convert` (not re-exported here, so that
``edgeshuffle.export.convert`` stays the module).
"""

from edgeshuffle.export.convert import ConvertConfig, ConvertReport, FloatArtifacts, export_float

__all__ = ["ConvertConfig", "ConvertReport", "FloatArtifacts", "export_float"]
