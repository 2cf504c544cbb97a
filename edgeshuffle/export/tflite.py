"""Float TFLite conversion of a (rewritten, static-batch) ShuffleNet, with metadata.

The Keras model is traced once into a TensorFlow function with a fixed input
signature, its variables frozen into constants, and handed to
``tf.lite.TFLiteConverter``. Freezing lets the converter fold BatchNorm into
the convs and keeps resource-variable ops (``READ_VARIABLE``, ``VAR_HANDLE``)
out of the graph.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import warnings
from pathlib import Path

from edgeshuffle.errors import ConversionError

log = logging.getLogger(__name__)

# Ops that mean a dynamic shape leaked into the graph, or that need TF itself at run time.
FORBIDDEN_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")


def input_signature(model):
    """The model's input as a ``tf.TensorSpec`` named ``input`` (batch None if the form is dynamic)."""
    import tensorflow as tf

    return [tf.TensorSpec(tuple(model.input_shape), tf.float32, name="input")]


def traced_function(model):
    """``model(x, training=False)`` as a ``tf.function`` over :func:`input_signature`."""
    import tensorflow as tf

    return tf.function(lambda x: model(x, training=False), input_signature=input_signature(model))


def frozen_concrete_function(model):
    """The traced inference function with every variable folded into a constant."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    return convert_variables_to_constants_v2(traced_function(model).get_concrete_function())


def float_tflite_bytes(model) -> bytes:
    """Convert ``model`` (any form; static batch for an edge graph) to a float32 TFLite flatbuffer.

    Builtin ops only: a graph that would need Flex (TensorFlow) ops fails
    here instead of failing on the board.

    Raises:
        ConversionError: the converter failed (first line of its message).
    """
    import tensorflow as tf

    function = frozen_concrete_function(model)
    try:
        with converter_warnings_silenced():
            converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            return converter.convert()
    except Exception as error:  # the converter raises ConverterError and plain exceptions alike
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConversionError(f"TFLite conversion failed: {first_line}") from error


@contextlib.contextmanager
def converter_warnings_silenced():
    """Drop the converter's two Python warnings that do not apply to edgeshuffle's frozen functions.

    "Please consider providing the trackable_obj argument" (absl log): the
    function is frozen on purpose, no variables are left to track.
    "Statistics for quantized inputs were expected" (UserWarning): the int8
    input's scale comes from the representative dataset, not from stats.
    """
    absl_logger = logging.getLogger("absl")
    quiet = _DropMessage("trackable_obj")
    absl_logger.addFilter(quiet)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            yield
    finally:
        absl_logger.removeFilter(quiet)


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str):
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def tflite_op_histogram(path: Path) -> dict[str, int]:
    """Every op of the TFLite graph by name (no delegate applied)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    counts = collections.Counter(op["op_name"] for op in interpreter._get_ops_details())
    return dict(sorted(counts.items()))


def tflite_max_tensor_rank(path: Path) -> int:
    """The largest rank of any tensor in the TFLite graph."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return max(len(detail["shape"]) for detail in interpreter.get_tensor_details())


def tflite_custom_op_codes(path: Path) -> list[str]:
    """Custom-code names of the graph's custom operators (Flex ops are ``Flex*`` customs)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(bytearray(Path(path).read_bytes()), 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            codes.append((code.CustomCode() or b"?").decode("utf-8", "replace"))
    return sorted(codes)


def forbidden_ops(histogram: dict[str, int], custom_codes: list[str] = ()) -> list[str]:
    """Ops of :data:`FORBIDDEN_OPS`, Flex and custom ops present in a graph."""
    found = {name for name in histogram if name in FORBIDDEN_OPS or name.startswith("Flex")}
    return sorted(found | {f"custom:{code}" for code in custom_codes})
