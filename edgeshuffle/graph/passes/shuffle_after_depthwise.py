"""A channel shuffle before a depthwise conv (and its BatchNorm) moves after them.

Exact: a depthwise conv (multiplier 1, with its padding, bias and activation)
and a BatchNorm on the last axis act channel by channel, so applying them to
shuffled channels equals applying them, with channel ``c``'s kernel, bias and
statistics moved to ``perm[c]``, before the shuffle. In a stride-2 unit the
shuffle then moves a quarter of the bytes.
"""

from __future__ import annotations

import numpy as np

from edgeshuffle.graph.ir import Graph
from edgeshuffle.graph.pattern import Match, Pattern, Rule, apply_rules


def _shuffle(node) -> bool:
    from edgeshuffle.models.layers import ChannelShuffle

    return isinstance(node.op, ChannelShuffle)


def _depthwise(node) -> bool:
    import keras

    op = node.op
    return (type(op) is keras.layers.DepthwiseConv2D and op.depth_multiplier == 1
            and op.data_format == "channels_last")


def _batch_norm(node) -> bool:
    import keras

    op = node.op
    return type(op) is keras.layers.BatchNormalization and op.axis in (-1, 3) and len(node.inputs) == 1


def _moved(graph: Graph, node, index: np.ndarray, axis_of_weight) -> tuple:
    """A clone of ``node``'s layer and its weights with the channels reordered by ``index``."""
    layer = node.op.__class__.from_config(node.op.get_config())
    weights = [np.take(w, index, axis=axis_of_weight(w)) for w in node.op.get_weights()]
    return layer, weights


def _replace(graph: Graph, found: Match, options) -> None:
    from edgeshuffle.models.layers import ChannelShuffle, shuffle_permutation

    shuffle, depthwise, norm = found["shuffle"], found["dw"], found.get("bn")
    channels = shuffle.shape[-1]
    perm = shuffle_permutation(channels, shuffle.op.groups, shuffle.op.order)
    index = np.argsort(perm)  # new[perm[c]] = old[c]
    layer, weights = _moved(graph, depthwise, index, lambda w: 2 if w.ndim == 4 else 0)
    out = graph.add(depthwise.name, layer, shuffle.inputs, depthwise.shape, weights)
    last = norm or depthwise
    if norm is not None:
        layer, weights = _moved(graph, norm, index, lambda w: 0)
        out = graph.add(norm.name, layer, [out], norm.shape, weights)
    moved = ChannelShuffle(shuffle.op.groups, order=shuffle.op.order, impl=shuffle.op.impl, name=shuffle.op.name)
    graph.redirect((last.name, 0), graph.add(shuffle.name, moved, [out], last.shape))


_DEPTHWISE_OF_SHUFFLE = Pattern(_depthwise, inputs=(Pattern(_shuffle, name="shuffle"),), name="dw")
RULES = (
    Rule(Pattern(_batch_norm, inputs=(_DEPTHWISE_OF_SHUFFLE,), name="bn"), _replace, interior=("shuffle", "dw")),
    Rule(_DEPTHWISE_OF_SHUFFLE, _replace, interior=("shuffle",)),
)


def rewrite_shuffle_after_depthwise(graph: Graph, options) -> list[str]:
    return apply_rules(graph, RULES, options)
