"""Per-layer int8 error: which layer's quantization hurts.

Every int8 activation tensor of the TFLite graph is matched to the Keras
layer it implements through the stable layer names the converter keeps in
tensor names (``.../stage3_unit2_relu1_1/Relu;.../stage3_unit2_gconv1_1/...``:
a fused op names all the layers it fused, and the last of them in the
network's order is the one whose output it holds). The error is the RMSE of
the dequantized int8 tensor against the float Keras output, in units of the
tensor's quantization step.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

_LAYER_IN_NAME = re.compile(r"(?:^|/|;)((?:stem|stage\d_unit\d+)_[a-z0-9]+|global_pool|logits)(?:_\d+)?/")


# The converter folds each BatchNormalization into the conv before it.
_FOLDED_INTO = {"conv": "bn", "gconv1": "bn1", "dwconv": "bn2", "gconv2": "bn3"}


def _folded(layer: str, order: dict[str, int]) -> str:
    """The layer whose output a converted conv holds: its BatchNorm, when folded."""
    prefix, _, role = layer.rpartition("_")
    folded = f"{prefix}_{_FOLDED_INTO[role]}" if role in _FOLDED_INTO else layer
    return folded if folded in order else layer


@dataclasses.dataclass(frozen=True)
class LayerError:
    layer: str
    tensor: str
    shape: tuple[int, ...]
    scale: float
    rmse: float
    rmse_steps: float  # RMSE divided by the quantization scale
    relative_rmse: float  # RMSE divided by the float activation's standard deviation

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def layer_errors(int8_tflite: Path, reference_model, inputs: np.ndarray) -> list[LayerError]:
    """Per-layer error of ``int8_tflite`` against ``reference_model`` (a Keras model with the
    same layer names, runnable on CPU), on ``inputs`` (float, preprocessed), worst first."""
    import keras
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    order = {layer.name: i for i, layer in enumerate(reference_model.layers)}
    interpreter = Interpreter(model_path=str(int8_tflite), experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()[0]
    batch = int(details["shape"][0])
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    output_index = interpreter.get_output_details()[0]["index"]
    candidates = {}
    # In execution order, so a layer's last tensor (after a fused multiply, say) wins.
    for op in interpreter._get_ops_details():
        for tensor in (tensors[i] for i in op["outputs"]):
            names = [n for n in _LAYER_IN_NAME.findall(tensor["name"]) if n in order]
            if tensor["index"] == output_index:  # the graph output keeps a signature name instead
                names = [reference_model.layers[-1].name]
            if not names or not tensor["quantization"][0] or tensor["dtype"] not in (np.int8, np.uint8):
                continue
            layer = _folded(max(names, key=order.get), order)
            if tuple(tensor["shape"][1:]) == tuple(reference_model.get_layer(layer).output.shape[1:]):
                candidates[layer] = tensor
    if not candidates:  # no layer named as edgeshuffle's builder names them
        return []
    probe = keras.Model(reference_model.input, [reference_model.get_layer(n).output for n in candidates])
    sums = {name: [0.0, 0.0, 0] for name in candidates}  # squared error, float variance, count
    in_scale, in_zero = details["quantization"]
    for start in range(0, len(inputs) - batch + 1, batch):
        x = inputs[start:start + batch]
        feed = x if not in_scale else np.clip(np.round(x / in_scale) + in_zero, -128, 127).astype(details["dtype"])
        interpreter.set_tensor(details["index"], feed)
        interpreter.invoke()
        floats = probe(x, training=False)
        floats = floats if isinstance(floats, list) else [floats]
        for (name, tensor), reference in zip(candidates.items(), floats):
            scale, zero = tensor["quantization"]
            value = (interpreter.get_tensor(tensor["index"]).astype(np.float64) - zero) * scale
            reference = np.asarray(reference, dtype=np.float64)
            sums[name][0] += float(np.sum((value - reference) ** 2))
            sums[name][1] += float(np.sum((reference - reference.mean()) ** 2))
            sums[name][2] += reference.size
    errors = []
    for name, tensor in candidates.items():
        squared, variance, count = sums[name]
        rmse = (squared / max(count, 1)) ** 0.5
        std = (variance / max(count, 1)) ** 0.5
        scale = float(tensor["quantization"][0])
        errors.append(LayerError(name, tensor["name"].split(";")[0], tuple(int(d) for d in tensor["shape"]),
                                 scale, rmse, rmse / scale, rmse / std if std else 0.0))
    return sorted(errors, key=lambda e: e.relative_rmse, reverse=True)
