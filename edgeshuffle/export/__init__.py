"""Export for edge runtimes: exact graph rewrites, float TFLite and ONNX conversion, the convert step.

Imports TensorFlow (inside functions); never imported by the board path.
"""

from edgeshuffle.export.convert import ConvertConfig, ConvertReport, FloatArtifacts, convert, export_float
from edgeshuffle.export.rewrites import EDGE_REWRITES, edge_form, reference_form

__all__ = ["EDGE_REWRITES", "ConvertConfig", "ConvertReport", "FloatArtifacts", "convert", "edge_form",
           "export_float", "reference_form"]
