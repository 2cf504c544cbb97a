"""The edge passes, one module each, in the order :func:`edgeshuffle.graph.rewrite` runs them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from edgeshuffle.graph.passes.average_pool import rewrite_average_pool
from edgeshuffle.graph.passes.channel_shuffle import rewrite_channel_shuffle
from edgeshuffle.graph.passes.grouped_conv import rewrite_grouped_conv
from edgeshuffle.graph.passes.relu_before_concat import rewrite_relu_before_concat
from edgeshuffle.graph.passes.shuffle_after_depthwise import rewrite_shuffle_after_depthwise
from edgeshuffle.graph.passes.static_batch import rewrite_static_batch


@dataclasses.dataclass(frozen=True)
class GraphPass:
    name: str
    run: Callable  # (graph, options) -> names of the layers it fired on


# Grouped convs before shuffles (a shuffle search must not see a slice as a layout op it could absorb), shuffles
# before the depthwise move (which moves ChannelShuffle layers only).
PASSES: tuple[GraphPass, ...] = (
    GraphPass("static_batch", rewrite_static_batch),
    GraphPass("grouped_conv", rewrite_grouped_conv),
    GraphPass("channel_shuffle", rewrite_channel_shuffle),
    GraphPass("shuffle_after_depthwise", rewrite_shuffle_after_depthwise),
    GraphPass("average_pool", rewrite_average_pool),
    GraphPass("relu_before_concat", rewrite_relu_before_concat),
)
