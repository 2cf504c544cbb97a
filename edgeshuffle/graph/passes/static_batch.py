"""Static batch: the input's batch dimension fixed (dynamic ``None`` becomes ``options.batch``).

Exact: no layer of an image classifier mixes samples, so each sample's output
is the same whatever the batch size. With a known batch TFLite's converter
folds the ``SHAPE``/``STRIDED_SLICE``/``PACK`` chains it otherwise puts in
front of every fixed-shape ``Reshape``, which also split the XNNPACK delegate.
"""

from __future__ import annotations

from edgeshuffle.graph.ir import Graph


def rewrite_static_batch(graph: Graph, options) -> list[str]:
    if graph.input_shape[0] == options.batch:
        return []
    graph.input_shape = (options.batch, *graph.input_shape[1:])
    return [graph.input_name]
