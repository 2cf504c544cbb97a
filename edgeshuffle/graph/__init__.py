"""Exact rewrites of any Keras image classifier for edge runtimes, as passes over its functional graph.

:func:`rewrite` reads the model's graph (:mod:`edgeshuffle.graph.ir`), runs
every pass of :data:`~edgeshuffle.graph.passes.PASSES` in order (each one
module whose docstring says why it is exact; patterns as data,
:mod:`edgeshuffle.graph.pattern`) and builds a new functional model with the
same weights. The passes know no model family: edgeshuffle's own ShuffleNet
and a user's model go the same way; anything unmatched passes through. The
user's model is not modified: it stays the parity reference.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from edgeshuffle.errors import ConversionError, EdgeShuffleError, InvalidArgumentError

log = logging.getLogger(__name__)

SHUFFLES = ("reshape", "planar", "gather")
# Measured with benchmarks/bench_convert_float.py and bench_shuffle.py (README, "Channel shuffle cost"): the
# reshape shuffle is the fastest in float TFLite (and becomes one NCHW Transpose in ONNX), planar in int8 TFLite.
FLOAT_SHUFFLE, INT8_SHUFFLE = "reshape", "planar"


@dataclasses.dataclass(frozen=True)
class RewriteOptions:
    """The static batch and the channel shuffle's ops in the edge graph."""

    batch: int = 1
    shuffle: str = FLOAT_SHUFFLE

    def __post_init__(self) -> None:
        if not isinstance(self.batch, int) or isinstance(self.batch, bool) or self.batch < 1:
            raise InvalidArgumentError(f"Batch must be a positive integer. Received: `batch={self.batch}`")
        if self.shuffle not in SHUFFLES:
            raise InvalidArgumentError(f"Shuffle must be one of {SHUFFLES}. Received: `shuffle={self.shuffle}`")


@dataclasses.dataclass(frozen=True)
class PassResult:
    name: str
    fired: int
    layers: tuple[str, ...]  # the layers (of the graph as the pass saw it) it rewrote


@dataclasses.dataclass(frozen=True)
class RewriteReport:
    """Each pass in order, how often it fired and on which layers; what the edge graph holds."""

    options: dict[str, Any]
    passes: tuple[PassResult, ...]
    layers: dict[str, int]  # layer class -> count in the edge graph

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Rewritten:
    model: Any  # the edge graph as a keras.Model (traced for export; native grouped convs do not run in Keras)
    report: RewriteReport


def rewrite(model, options: RewriteOptions | None = None, passes=None) -> Rewritten:
    """``model`` rewritten for edge runtimes by every pass of ``passes`` (default: all, in order).

    Raises:
        ConversionError: a pass failed (``rewrite <name> failed: ...``), or the graph could not be read or rebuilt.
    """
    import collections

    from edgeshuffle.graph.ir import build_model, read_graph
    from edgeshuffle.graph.passes import PASSES

    options = options or RewriteOptions()
    try:
        graph = read_graph(model)
    except Exception as error:
        raise ConversionError(f"cannot read the graph of {model.name}: {_first_line(error)}") from error
    results = []
    for graph_pass in PASSES if passes is None else passes:
        try:
            fired = graph_pass.run(graph, options)
        except EdgeShuffleError:
            raise
        except Exception as error:  # a Keras or numerical error inside the pass: say which pass hit it
            raise ConversionError(f"rewrite {graph_pass.name} failed: {_first_line(error)}") from error
        log.debug("rewrite %s fired %d time(s): %s", graph_pass.name, len(fired), ", ".join(fired))
        results.append(PassResult(graph_pass.name, len(fired), tuple(fired)))
    try:
        edge = build_model(graph)
    except Exception as error:
        raise ConversionError(f"rebuilding the rewritten graph failed: {_first_line(error)}") from error
    layers = collections.Counter(type(layer).__name__ for layer in edge.layers)
    return Rewritten(edge, RewriteReport(dataclasses.asdict(options), tuple(results), dict(sorted(layers.items()))))


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
