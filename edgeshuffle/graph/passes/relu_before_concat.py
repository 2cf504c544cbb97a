"""A ReLU after a ``Concatenate`` moves onto the concat's inputs, and is dropped where an input is never negative.

Exact: ReLU acts element by element, so ReLU(concat(a, b)) = concat(ReLU(a),
ReLU(b)) along any axis; and ReLU(a) = a for an ``a`` that cannot be negative
(a ReLU output, or a pool, padding, shuffle or concat of such). The ReLU on a
conv's output then fuses into that conv in TFLite. A ReLU after ``Add``
stays: TFLite fuses ``ADD`` + ``RELU`` itself.
"""

from __future__ import annotations

from edgeshuffle.graph.ir import INPUT, Graph, Ref
from edgeshuffle.graph.pattern import Match, Pattern, Rule, apply_rules


def is_relu(node) -> bool:
    import keras

    op = node.op
    if type(op) is keras.layers.ReLU:
        return op.max_value is None and not op.negative_slope and not op.threshold
    return type(op) is keras.layers.Activation and getattr(op.activation, "__name__", "") == "relu"


_NON_NEGATIVE_ACTIVATIONS = ("relu", "relu6", "sigmoid", "softmax", "softplus", "hard_sigmoid", "exponential")


def non_negative(graph: Graph, ref: Ref, depth: int = 0) -> bool:
    """Whether the tensor ``ref`` is provably never negative (from the layers that make it)."""
    import keras

    from edgeshuffle.models.layers import ChannelShuffle, ShortcutAvgPool

    node = graph.node(ref)
    if node.name == INPUT or depth > 50:
        return False
    op = node.op
    if type(op) is keras.layers.ReLU:
        return not op.negative_slope and (op.threshold or 0) >= 0
    activation = getattr(getattr(op, "activation", None), "__name__", None)
    if activation in _NON_NEGATIVE_ACTIVATIONS:
        return True
    keeps_sign = (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.GlobalAveragePooling2D,
                  keras.layers.GlobalMaxPooling2D, keras.layers.ZeroPadding2D, keras.layers.Concatenate,
                  keras.layers.Add, ChannelShuffle, ShortcutAvgPool, keras.layers.Reshape, keras.layers.Permute)
    if isinstance(op, keeps_sign) and node.inputs:
        return all(non_negative(graph, r, depth + 1) for r in node.inputs)
    return False


def _concatenate(node) -> bool:
    import keras

    return type(node.op) is keras.layers.Concatenate


def _replace(graph: Graph, found: Match, options) -> None:
    import keras

    relu, concat = found["relu"], found["concat"]
    needs = [not non_negative(graph, ref) for ref in concat.inputs]
    inputs = []
    for i, (ref, need) in enumerate(zip(concat.inputs, needs)):
        if not need:
            inputs.append(ref)
            continue
        name = relu.op.name if sum(needs) == 1 else f"{relu.op.name}_{i}"  # one ReLU left: it keeps its name
        inputs.append(graph.add(name, keras.layers.ReLU(name=name), [ref], graph.shape(ref)))
    layer = keras.layers.Concatenate(axis=concat.op.axis, name=concat.op.name)
    graph.redirect((relu.name, 0), graph.add(concat.name, layer, inputs, relu.shape))


RULES = (Rule(Pattern(is_relu, inputs=(Pattern(_concatenate, name="concat"),), name="relu"), _replace,
              interior=("concat",)),)


def rewrite_relu_before_concat(graph: Graph, options) -> list[str]:
    return apply_rules(graph, RULES, options)
