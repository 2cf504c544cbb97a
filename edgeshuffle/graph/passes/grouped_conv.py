"""Grouped convolutions, however written, become one native grouped conv (:class:`NativeGroupedConv`).

Three forms: Keras 3 ``Conv2D(groups=g)``; edgeshuffle's
``GroupedPointwiseConv`` (split or dense); and g channel slices of one tensor
(``Lambda`` slices, ``ops.split``, anything whose output is numerically
``x[..., i*c:(i+1)*c]``), each feeding a ``Conv2D`` of the same configuration,
concatenated in order. Exact: all three convolve input group i with output
columns ``[i*F/g, (i+1)*F/g)`` of one kernel, which is the definition of a
grouped convolution; the per-group kernels and biases are stacked along the
output axis in group order, the numbers themselves unchanged.
"""

from __future__ import annotations

import numpy as np

from edgeshuffle.graph.ir import Graph
from edgeshuffle.graph.pattern import ANY, Match, Pattern, Rule, apply_rules
from edgeshuffle.graph.probe import channel_slice


def _conv2d(node) -> bool:
    import keras

    op = node.op
    return (type(op) is keras.layers.Conv2D and op.data_format == "channels_last"
            and tuple(op.dilation_rate) == (1, 1) and op.padding in ("same", "valid"))


def _native(graph: Graph, replaced, conv_layer, groups: int, kernel: np.ndarray, bias, inputs) -> None:
    """Replace ``replaced``'s output with one native grouped conv (``conv_layer``'s strides, padding and
    activation; a separate activation layer when not linear) reading ``inputs``."""
    import keras

    from edgeshuffle.graph.layers import NativeGroupedConv

    name = replaced.op.name
    layer = NativeGroupedConv(kernel.shape[-1], kernel.shape[:2], groups,
                              strides=getattr(conv_layer, "strides", (1, 1)),
                              padding=getattr(conv_layer, "padding", "valid"), use_bias=bias is not None, name=name)
    out = graph.add(name, layer, inputs, replaced.shape, weights=[kernel] if bias is None else [kernel, bias])
    activation = getattr(conv_layer, "activation", None)
    if activation is not None and activation.__name__ != "linear":
        out = graph.add(f"{name}_activation", keras.layers.Activation(activation, name=f"{name}_activation"),
                        [out], replaced.shape)
    graph.redirect((replaced.name, 0), out)


def _replace_keras_grouped(graph: Graph, found: Match, options) -> None:
    conv = found["conv"]
    weights = conv.op.get_weights()
    _native(graph, conv, conv.op, conv.op.groups, weights[0], weights[1] if conv.op.use_bias else None, conv.inputs)


def _replace_edgeshuffle_grouped(graph: Graph, found: Match, options) -> None:
    conv = found["conv"]
    _native(graph, conv, conv.op, conv.op.groups, conv.op.get_weights()[0], None, conv.inputs)


def _same_convs(convs) -> bool:
    first = convs[0].op.get_config()
    keys = ("filters", "kernel_size", "strides", "padding", "use_bias", "activation", "groups")
    return all(all(c.op.get_config()[k] == first[k] for k in keys) for c in convs) and first["groups"] == 1


def _slices_in_order(graph: Graph, found: Match) -> bool:
    """g convs of one configuration, conv i reading channels [i*C/g, (i+1)*C/g) of one tensor, concatenated."""
    convs = found["conv"]
    if len(convs) < 2 or not _same_convs(convs) or found["concat"].op.axis not in (-1, 3):
        return False
    parents = set()
    for conv in convs:
        producer = graph.node(conv.inputs[0])
        if len(producer.inputs) != 1:
            return False
        parents.add(producer.inputs[0])
    if len(parents) != 1:
        return False
    (x,) = parents
    width, remainder = divmod(graph.shape(x)[-1], len(convs))
    return not remainder and all(channel_slice(graph, x, conv.inputs[0]) == (i * width, (i + 1) * width)
                                 for i, conv in enumerate(convs))


def _replace_sliced(graph: Graph, found: Match, options) -> None:
    convs, concat = found["conv"], found["concat"]
    x = graph.node(convs[0].inputs[0]).inputs[0]
    weights = [c.op.get_weights() for c in convs]
    kernel = np.concatenate([w[0] for w in weights], axis=-1)  # group i's filters are output columns i
    bias = np.concatenate([w[1] for w in weights]) if convs[0].op.use_bias else None
    _native(graph, concat, convs[0].op, len(convs), kernel, bias, [x])


def _keras_grouped(node) -> bool:
    return _conv2d(node) and node.op.groups > 1


def _edgeshuffle_grouped(node) -> bool:
    from edgeshuffle.models.layers import GroupedPointwiseConv

    return isinstance(node.op, GroupedPointwiseConv) and node.op.input_shuffle is None


def _concatenate(node) -> bool:
    import keras

    return isinstance(node.op, keras.layers.Concatenate)


RULES = (
    Rule(Pattern(_keras_grouped, name="conv"), _replace_keras_grouped),
    Rule(Pattern(_edgeshuffle_grouped, name="conv"), _replace_edgeshuffle_grouped),
    Rule(Pattern(_concatenate, each=Pattern(lambda n: _conv2d(n) and n.op.groups == 1,
                                            inputs=(Pattern(ANY, name="slice"),), name="conv"), name="concat"),
         _replace_sliced, condition=_slices_in_order, interior=("conv", "slice")),
)


def rewrite_grouped_conv(graph: Graph, options) -> list[str]:
    return apply_rules(graph, RULES, options)
