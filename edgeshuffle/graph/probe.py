"""What a piece of graph does to channels, found numerically (for layers written as code, like ``Lambda``).

The probe input holds a distinct integer in every element (exact in float32
below 2**24 elements); where each one lands says which input element every
output element copies. A second run on random values then checks that the
piece really copies (no scaling, no arithmetic).
"""

from __future__ import annotations

import logging

import numpy as np

from edgeshuffle.graph.ir import Graph, Ref

log = logging.getLogger(__name__)


def _probe(graph: Graph, source: Ref):
    shape = graph.shape(source)[1:]
    if len(shape) != 3 or any(n is None for n in shape) or np.prod(shape) >= 2 ** 24:
        return None
    return np.arange(np.prod(shape), dtype=np.float32).reshape((1, *shape))


def _run(graph: Graph, source: Ref, output: Ref, x: np.ndarray):
    try:
        return graph.evaluate(output, {source: x})
    except Exception as error:  # it reads something else than ``source``, or does not run eagerly
        log.debug("probe of %s from %s: %s", output[0], source[0], error)
        return None


def _copies(graph: Graph, source: Ref, output: Ref, index) -> bool:
    """Whether ``output`` equals ``x[index]`` for random ``x`` too."""
    x = np.random.default_rng(0).normal(size=(1, *graph.shape(source)[1:])).astype(np.float32)
    y = _run(graph, source, output, x)
    return y is not None and y.shape == x[index].shape and np.array_equal(y, x[index])


def channel_permutation(graph: Graph, source: Ref, output: Ref) -> np.ndarray | None:
    """``perm`` such that ``output == source[..., perm]``, or None when it is not a channel permutation."""
    x = _probe(graph, source)
    if x is None:
        return None
    y = _run(graph, source, output, x)
    if y is None or y.shape != x.shape:
        return None
    perm = y[0, 0, 0].astype(np.int64)
    if sorted(perm.tolist()) != list(range(x.shape[-1])) or not np.array_equal(y, x[..., perm]):
        return None
    return perm if _copies(graph, source, output, (..., perm)) else None


def channel_slice(graph: Graph, source: Ref, output: Ref) -> tuple[int, int] | None:
    """``(start, stop)`` such that ``output == source[..., start:stop]``, or None."""
    x = _probe(graph, source)
    if x is None:
        return None
    y = _run(graph, source, output, x)
    if y is None or y.ndim != 4 or y.shape[:3] != x.shape[:3] or not y.size:
        return None
    start = int(y[0, 0, 0, 0])
    stop = start + y.shape[-1]
    if stop > x.shape[-1] or not np.array_equal(y, x[..., start:stop]):
        return None
    return (start, stop) if _copies(graph, source, output, (..., slice(start, stop))) else None
