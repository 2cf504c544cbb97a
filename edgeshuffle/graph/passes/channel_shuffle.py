"""Channel shuffles, however written, become edgeshuffle's rank-4 ``ChannelShuffle`` (``options.shuffle``).

Found numerically, not by name: a chain of weightless layout layers
(``Reshape``, ``Permute``, ``Lambda``, a custom layer or a Keras op, each read
only by the next) from a rank-4 tensor to one of the same shape, whose output
is a fixed permutation of its input's channels (the blog's 5-D ``Reshape`` →
``Permute`` → ``Reshape``, a ``Lambda`` doing the same, a layer called
``ChannelShuffle``). Exact: when that permutation is a shuffle of g groups in
either order (:func:`~edgeshuffle.models.layers.shuffle_permutation`), the
replacement moves every channel to the same place, with tensors of rank 4 at
most; an identity chain is removed. Other permutations stay as they are.
"""

from __future__ import annotations

import numpy as np

from edgeshuffle.graph.ir import INPUT, Graph, Node
from edgeshuffle.graph.probe import channel_permutation

ORDERS = ("paper", "official")


def is_layout(node: Node) -> bool:
    """A weightless one-tensor layer that may only move values: Reshape, Permute, Lambda, custom or op."""
    import keras

    if node.name == INPUT or len(node.inputs) != 1 or len(node.shapes) != 1:
        return False
    op = node.op
    if not isinstance(op, keras.layers.Layer):
        return True  # a Keras op (ops.reshape, ops.transpose) called in the functional graph
    if op.weights:
        return False
    keras_builtin = type(op).__module__.startswith("keras.")
    return not keras_builtin or isinstance(op, (keras.layers.Reshape, keras.layers.Permute, keras.layers.Lambda))


def shuffle_of(perm: np.ndarray) -> tuple[int, str] | None:
    """``(groups, order)`` of a channel shuffle equal to ``perm``."""
    from edgeshuffle.models.layers import shuffle_permutation

    channels = len(perm)
    for groups in range(2, channels):
        if channels % groups:
            continue
        for order in ORDERS:
            if np.array_equal(shuffle_permutation(channels, groups, order), perm):
                return groups, order
    return None


def _chain_ending_at(graph: Graph, end: Node) -> list[Node]:
    chain = [end]
    while True:
        producer = graph.node(chain[0].inputs[0])
        if not is_layout(producer) or graph.only_consumer((producer.name, 0)) is not chain[0]:
            return chain
        chain.insert(0, producer)


def _done(chain: list[Node], groups: int, order: str, impl: str) -> bool:
    from edgeshuffle.models.layers import ChannelShuffle

    op = chain[0].op
    return (len(chain) == 1 and isinstance(op, ChannelShuffle)
            and (op.groups, op.order, op.impl) == (groups, order, impl))


def _rewrite_one(graph: Graph, options) -> str | None:
    from edgeshuffle.models.layers import ChannelShuffle

    for end in graph.ordered():
        if not is_layout(end) or len(end.shape) != 4:
            continue
        chain = _chain_ending_at(graph, end)
        for start in range(len(chain)):  # the longest chain first
            piece = chain[start:]
            source = piece[0].inputs[0]
            if graph.shape(source)[1:] != end.shape[1:]:
                continue
            perm = channel_permutation(graph, source, (end.name, 0))
            if perm is None:
                continue
            if np.array_equal(perm, np.arange(len(perm))):
                graph.redirect((end.name, 0), source)
                return end.name
            found = shuffle_of(perm)
            if found is None or _done(piece, *found, options.shuffle):
                continue
            groups, order = found
            name = piece[0].op.name if len(piece) == 1 else f"{end.op.name}_shuffle"
            layer = ChannelShuffle(groups, order=order, impl=options.shuffle, name=name)
            graph.redirect((end.name, 0), graph.add(name, layer, [source], end.shape))
            return end.name
    return None


def rewrite_channel_shuffle(graph: Graph, options) -> list[str]:
    fired = []
    for _ in range(len(graph.nodes)):
        name = _rewrite_one(graph, options)
        if name is None:
            break
        graph.prune()
        fired.append(name)
    return fired
