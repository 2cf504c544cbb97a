"""A 3x3 stride-2 average pool (Keras ``'same'``, or edgeshuffle's ``ShortcutAvgPool``) becomes a depthwise conv.

Exact (to float rounding): a 3x3 stride-2 depthwise conv with weights 1/9
sums each window's taps / 9; multiplying every output position by
9 / (taps inside the image) gives Keras' ``'same'`` average, which counts only
the taps inside (PyTorch-style padding counts all 9 and needs no multiply):
:class:`~edgeshuffle.models.layers.ShortcutAvgPool` with ``impl="dwconv"``.
XNNPACK delegates both ops in int8, unlike ``AVERAGE_POOL_2D``.
"""

from __future__ import annotations

from edgeshuffle.graph.ir import Graph
from edgeshuffle.graph.pattern import Match, Pattern, Rule, apply_rules


def _keras_pool(node) -> bool:
    import keras

    op = node.op
    return (type(op) is keras.layers.AveragePooling2D and tuple(op.pool_size) == (3, 3)
            and tuple(op.strides) == (2, 2) and op.padding == "same" and op.data_format == "channels_last")


def _shortcut_pool(node) -> bool:
    from edgeshuffle.models.layers import ShortcutAvgPool

    return isinstance(node.op, ShortcutAvgPool) and node.op.impl == "avgpool"


def _replace(graph: Graph, found: Match, options) -> None:
    from edgeshuffle.models.layers import ShortcutAvgPool

    pool = found["pool"]
    padding = getattr(pool.op, "padding", "same")
    layer = ShortcutAvgPool(padding="pytorch" if padding == "pytorch" else "keras", impl="dwconv", name=pool.op.name)
    graph.redirect((pool.name, 0), graph.add(pool.name, layer, pool.inputs, pool.shape))


RULES = (
    Rule(Pattern(_keras_pool, name="pool"), _replace),
    Rule(Pattern(_shortcut_pool, name="pool"), _replace),
)


def rewrite_average_pool(graph: Graph, options) -> list[str]:
    return apply_rules(graph, RULES, options)
