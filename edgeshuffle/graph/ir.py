"""A Keras functional graph as plain data that passes can edit, and its rebuild into a new Keras model.

:func:`read_graph` walks a functional (or Sequential) model's nodes: each
call of a layer or op becomes a :class:`Node` whose inputs are
:data:`Ref` s (producing node, output index). Passes replace and add nodes;
:func:`build_model` then calls every node reachable from the output on new
Keras tensors. A node read from the user's model is re-called through a clone
of its layer (from its config, with its weights set after the call), so the
user's model is never touched; a node a pass made calls its own new layer.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

Ref = tuple[str, int]  # (node name, output index)
INPUT = "input"


@dataclasses.dataclass
class Node:
    """One layer (or op) call: ``op`` applied to the tensors ``inputs``.

    ``call(op, tensors)`` performs it; ``shapes`` are its output shapes with
    the batch axis; ``weights`` (a pass's new layer) are set after the call;
    ``source`` nodes come from the user's model and are cloned on rebuild.
    """

    name: str
    op: Any
    inputs: list[Ref]
    call: Callable[[Any, list], Any]
    shapes: list[tuple]
    weights: list[np.ndarray] | None = None
    source: bool = False

    @property
    def shape(self) -> tuple:
        return self.shapes[0]


@dataclasses.dataclass
class Graph:
    """One image input, one output; ``nodes`` keyed by name (the input is :data:`INPUT`)."""

    nodes: dict[str, Node]
    output: Ref
    input_name: str
    input_shape: tuple  # with the batch axis (None: dynamic)
    name: str

    def node(self, ref: Ref) -> Node:
        return self.nodes[ref[0]]

    def shape(self, ref: Ref) -> tuple:
        return self.nodes[ref[0]].shapes[ref[1]]

    def consumers(self, ref: Ref) -> list[Node]:
        """Nodes reading ``ref``, once each, in graph order (reachable ones only)."""
        return [node for node in self.ordered() if ref in node.inputs]

    def only_consumer(self, ref: Ref) -> Node | None:
        """The single node reading ``ref``, None when it has several readers or is the output."""
        readers = self.consumers(ref)
        return readers[0] if len(readers) == 1 and ref != self.output else None

    def ordered(self) -> list[Node]:
        """The nodes reachable from the output, producers before consumers (the input first)."""
        order, seen = [], set()
        stack = [(self.output[0], False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                order.append(self.nodes[name])
                continue
            if name in seen:
                continue
            seen.add(name)
            stack.append((name, True))
            stack.extend((ref[0], False) for ref in reversed(self.nodes[name].inputs) if ref[0] not in seen)
        return order

    def unique_name(self, base: str) -> str:
        for name in itertools.chain([base], (f"{base}_{i}" for i in itertools.count(1))):
            if name not in self.nodes:
                return name
        raise AssertionError  # unreachable

    def add(self, base_name: str, layer, inputs: list[Ref], shape: tuple, weights=None) -> Ref:
        """A new node calling ``layer`` on ``inputs`` (one tensor, or a list when several); its output."""
        name = self.unique_name(base_name)
        self.nodes[name] = Node(name, layer, list(inputs), _call_plain, [tuple(shape)], weights)
        return name, 0

    def redirect(self, old: Ref, new: Ref) -> None:
        """Every reader of ``old`` (the graph output included) reads ``new`` instead."""
        for node in self.nodes.values():
            node.inputs = [new if ref == old else ref for ref in node.inputs]
        if self.output == old:
            self.output = new

    def prune(self) -> None:
        """Drop nodes nothing reads any more."""
        keep = {node.name for node in self.ordered()}
        self.nodes = {name: node for name, node in self.nodes.items() if name in keep or name == INPUT}

    def evaluate(self, output: Ref, feeds: dict[Ref, np.ndarray]) -> np.ndarray:
        """Run the nodes between ``feeds`` and ``output`` eagerly with the original layers (numbers only)."""
        values = dict(feeds)

        def value(ref: Ref):
            if ref not in values:
                node = self.node(ref)
                if node.name == INPUT:
                    raise ValueError(f"{output[0]} depends on the model input, which is not fed")
                outputs = node.call(node.op, [value(r) for r in node.inputs])
                for i, out in enumerate(outputs if isinstance(outputs, (list, tuple)) else [outputs]):
                    values[(node.name, i)] = np.asarray(out)
            return values[ref]

        return value(output)


def _call_plain(layer, tensors: list):
    return layer(tensors[0] if len(tensors) == 1 else tensors)


def _call_recorded(arguments, tensor_ids: list[int]):
    """Re-perform a recorded Keras call (its non-tensor arguments kept) on new tensors."""

    def call(op, tensors: list):
        args, kwargs = arguments.fill_in(dict(zip(tensor_ids, tensors)))
        return op(*args, **kwargs)

    return call


def read_graph(model) -> Graph:
    """The graph of a built functional or Sequential Keras model with one input and one output."""
    import keras

    functional = model._functional if isinstance(model, keras.Sequential) else model
    (input_tensor,) = functional.inputs
    (output_tensor,) = functional.outputs
    refs = {id(input_tensor): (INPUT, 0)}
    input_name = input_tensor._keras_history.operation.name if input_tensor._keras_history.operation else INPUT
    nodes = {INPUT: Node(INPUT, None, [], lambda op, tensors: None, [tuple(input_tensor.shape)])}
    taken: dict[str, int] = {}
    for depth in sorted(functional._nodes_by_depth, reverse=True):
        for keras_node in functional._nodes_by_depth[depth]:
            if keras_node.is_input or keras_node.operation is None:
                continue
            tensors = keras_node.input_tensors
            op = keras_node.operation
            count = taken.get(op.name, 0)
            taken[op.name] = count + 1
            name = op.name if not count else f"{op.name}_{count}"
            nodes[name] = Node(name, op, [refs[id(t)] for t in tensors],
                               _call_recorded(keras_node.arguments, [id(t) for t in tensors]),
                               [tuple(t.shape) for t in keras_node.outputs], source=True)
            for i, tensor in enumerate(keras_node.outputs):
                refs[id(tensor)] = (name, i)
    return Graph(nodes, refs[id(output_tensor)], input_name, tuple(input_tensor.shape), model.name)


def _clone(op):
    """A fresh copy of a layer from its config (weights set after its call); stateless ops as they are."""
    import keras

    if not isinstance(op, keras.layers.Layer) or isinstance(op, (keras.layers.Lambda, keras.Model)):
        return op  # ops and Lambdas hold no weights; a nested model is called as it is
    try:
        return op.__class__.from_config(op.get_config())
    except Exception:  # a layer whose config does not round-trip: call the original (it is not modified)
        return op


def build_model(graph: Graph):
    """A new functional ``keras.Model`` computing ``graph``; the source model is left as it was."""
    import keras

    inputs = keras.Input(graph.input_shape[1:], batch_size=graph.input_shape[0], name=graph.input_name)
    tensors = {(INPUT, 0): inputs}
    for node in graph.ordered():
        if node.name == INPUT:
            continue
        op = _clone(node.op) if node.source else node.op
        outputs = node.call(op, [tensors[ref] for ref in node.inputs])
        for i, out in enumerate(outputs if isinstance(outputs, (list, tuple)) else [outputs]):
            tensors[(node.name, i)] = out
        weights = node.weights if node.weights is not None else (
            node.op.get_weights() if node.source and op is not node.op else None)
        if weights:
            op.set_weights(weights)
    return keras.Model(inputs, tensors[graph.output], name=graph.name)
