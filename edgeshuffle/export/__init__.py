"""Export for edge runtimes: exact graph rewrites, float TFLite and ONNX conversion, the convert step.

Imports TensorFlow (inside functions); never imported by the board path. The
convert step itself is :func:`edgeshuffle.export.convert.convert` (not
re-exported here, so that ``edgeshuffle.export.convert`` stays the module).
"""

from edgeshuffle.export.convert import ConvertConfig, ConvertReport, FloatArtifacts, export_float
from edgeshuffle.export.rewrites import EDGE_REWRITES, edge_form, reference_form

__all__ = ["EDGE_REWRITES", "ConvertConfig", "ConvertReport", "FloatArtifacts", "edge_form", "export_float",
           "reference_form"]
