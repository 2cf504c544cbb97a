"""ONNX export from the Keras model (tf2onnx), NCHW inside, with exact post-passes.

tf2onnx writes an NHWC TensorFlow graph as NCHW ONNX convs wrapped in
transposes and lets its optimizer cancel them, but it cannot move them
through the channel shuffle's reshapes or through ops with a layout-bound
constant, which leaves about three ``Transpose`` nodes per shuffle. The
passes of :data:`ONNX_PASSES` rewrite those patterns into their NCHW
equivalents, each exact (a pure permutation of where the same numbers go).
The result has one ``Transpose`` per shuffle, plus one at the input (the
artifact keeps an NHWC input, like the TFLite one) and, for a headless
model, one at the output.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import numpy as np

from edgeshuffle.errors import ConversionError, InvalidArgumentError

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 13, 18  # tf2onnx 1.17 supports opsets up to 18
INPUT_NAME, OUTPUT_NAME = "input", "logits"
NHWC_TO_NCHW, NCHW_TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)
_CONSTANT_BINARY_OPS = ("Mul", "Add", "Sub", "Div")


class _Graph:
    """Producer/consumer/initializer lookups over an ``onnx.GraphProto`` (rebuilt after each change)."""

    def __init__(self, graph):
        from onnx import numpy_helper

        self.graph = graph
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        self.outputs = {out.name for out in graph.output}

    def only_consumer(self, tensor: str, node) -> bool:
        return tensor not in self.outputs and [_key(n) for n in self.consumers.get(tensor, [])] == [_key(node)]

    def produced_by(self, tensor: str, op_type: str):
        node = self.producer.get(tensor)
        return node if node is not None and node.op_type == op_type else None

    def unique_name(self, base: str) -> str:
        taken = set(self.producer) | set(self.constants) | {i.name for i in self.graph.input}
        name, index = base, 0
        while name in taken:
            index += 1
            name = f"{base}_{index}"
        return name


def _key(node) -> str:
    """A node's identity: its first output (tensor names are unique in a valid graph)."""
    return node.output[0]


def _set_nodes(graph, nodes: list) -> None:
    copies = []
    for node in nodes:
        copy = type(node)()
        copy.CopyFrom(node)
        copies.append(copy)
    del graph.node[:]
    graph.node.extend(copies)


def _perm(node) -> tuple[int, ...]:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == "perm":
            return tuple(helper.get_attribute_value(attribute))
    return ()


def _attribute(node, name, default=None):
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _add_constant(g: _Graph, base: str, value: np.ndarray) -> str:
    from onnx import numpy_helper

    name = g.unique_name(base)
    g.graph.initializer.append(numpy_helper.from_array(value, name))
    g.constants[name] = value
    return name


def _replace(g: _Graph, old_nodes: list, new_nodes: list) -> None:
    """Put ``new_nodes`` where the last of ``old_nodes`` was (their inputs exist by then), drop the old."""
    graph = g.graph
    old = {_key(node) for node in old_nodes}
    position = max(i for i, node in enumerate(graph.node) if _key(node) in old)
    nodes = []
    for i, node in enumerate(graph.node):
        if i == position:
            nodes.extend(new_nodes)
        elif _key(node) not in old:
            nodes.append(node)
    _set_nodes(graph, nodes)


def fold_shuffle_transposes(model) -> int:
    """Rewrite tf2onnx's NHWC channel shuffle into an NCHW one; returns how many it rewrote.

    Pattern (tf2onnx's output for the reshape shuffle, C = a*b, H*W = S)::

        x (NCHW) -> Transpose(0,2,3,1) -> Reshape(B,S,a,b) -> Transpose(0,1,3,2)
                 -> Reshape(B,H,W,C) -> Transpose(0,3,1,2)

    becomes ``Reshape(B,a,b,S) -> Transpose(0,2,1,3) -> Reshape(B,C,H,W)``.
    Exact: both send input channel ``i*b + j`` to output channel ``j*a + i`` at
    every position and move nothing else; only one transpose is left.
    """
    from onnx import helper

    rewritten = 0
    while True:
        g = _Graph(model.graph)
        for last in g.graph.node:
            if last.op_type != "Transpose" or _perm(last) != NHWC_TO_NCHW:
                continue
            back = g.produced_by(last.input[0], "Reshape")
            swap = back and g.produced_by(back.input[0], "Transpose")
            view = swap and g.produced_by(swap.input[0], "Reshape")
            first = view and g.produced_by(view.input[0], "Transpose")
            if not first or _perm(swap) != (0, 1, 3, 2) or _perm(first) != NCHW_TO_NHWC:
                continue
            if back.input[1] not in g.constants or view.input[1] not in g.constants:
                continue
            batch, height, width, channels = (int(v) for v in g.constants[back.input[1]])
            _, spatial, a, b = (int(v) for v in g.constants[view.input[1]])
            if spatial != height * width or a * b != channels:
                continue
            if not (g.only_consumer(first.output[0], view) and g.only_consumer(view.output[0], swap)
                    and g.only_consumer(swap.output[0], back) and g.only_consumer(back.output[0], last)):
                continue
            base = view.name or "shuffle"
            shape_in = _add_constant(g, f"{base}_nchw_view", np.array([batch, a, b, spatial], np.int64))
            shape_out = _add_constant(g, f"{base}_nchw_back", np.array([batch, channels, height, width], np.int64))
            t1, t2 = g.unique_name(f"{base}_nchw_view:0"), g.unique_name(f"{base}_nchw_swap:0")
            new_nodes = [
                helper.make_node("Reshape", [first.input[0], shape_in], [t1], name=f"{base}_nchw_view"),
                helper.make_node("Transpose", [t1], [t2], perm=[0, 2, 1, 3], name=f"{base}_nchw_swap"),
                helper.make_node("Reshape", [t2, shape_out], [last.output[0]], name=f"{base}_nchw_back"),
            ]
            _replace(g, [first, view, swap, back, last], new_nodes)
            rewritten += 1
            break
        else:
            return rewritten


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def sink_transpose_pairs(model) -> int:
    """Remove ``Transpose(p) -> op -> Transpose(p^-1)`` around a layout-free op; returns how many.

    ``op`` is a ``Mul``/``Add``/``Sub``/``Div`` with a constant operand (the
    constant is transposed with ``p^-1`` instead, after broadcasting it to
    rank 4) or a ``Gather`` with constant 1-D indices (its axis becomes
    ``p[axis]``). Exact: an elementwise op commutes with any permutation of
    axes applied to all its operands, and gathering along axis ``k`` of
    ``transpose(x, p)`` is gathering along axis ``p[k]`` of ``x``.
    """
    from onnx import helper

    rewritten = 0
    while True:
        g = _Graph(model.graph)
        for last in g.graph.node:
            if last.op_type != "Transpose":
                continue
            middle = g.producer.get(last.input[0])
            if middle is None or middle.op_type not in (*_CONSTANT_BINARY_OPS, "Gather"):
                continue
            data_index = 0 if middle.op_type == "Gather" else next(
                (i for i, name in enumerate(middle.input) if name not in g.constants), None)
            if data_index is None or len(middle.input) != 2:
                continue
            first = g.produced_by(middle.input[data_index], "Transpose")
            other = middle.input[1 - data_index]
            if not first or other not in g.constants or _inverse(_perm(first)) != _perm(last):
                continue
            if not (g.only_consumer(first.output[0], middle) and g.only_consumer(middle.output[0], last)):
                continue
            perm = _perm(first)
            if middle.op_type == "Gather":
                axis = _attribute(middle, "axis", 0) % len(perm)
                if g.constants[other].ndim != 1:
                    continue
                new = helper.make_node("Gather", [first.input[0], other], [last.output[0]],
                                       axis=perm[axis], name=f"{middle.name}_nchw")
            else:
                value = g.constants[other]
                if value.ndim > len(perm):
                    continue
                value = value.reshape((1,) * (len(perm) - value.ndim) + value.shape)
                constant = _add_constant(g, f"{other.split(':')[0]}_nchw",
                                         np.ascontiguousarray(np.transpose(value, _perm(last))))
                inputs = [first.input[0], constant] if data_index == 0 else [constant, first.input[0]]
                new = helper.make_node(middle.op_type, inputs, [last.output[0]], name=f"{middle.name}_nchw")
            _replace(g, [first, middle, last], [new])
            rewritten += 1
            break
        else:
            return rewritten


def merge_reshape_chains(model) -> int:
    """Replace ``Reshape(Reshape(x, s1), s2)`` by ``Reshape(x, s2)``; returns how many.

    Exact: a reshape keeps the row-major order of the elements, so two in a
    row equal one to the final shape. tf2onnx writes the layout transposes of
    1x1 feature maps as reshapes, which leaves such chains around shuffles.
    Only for constant ``s2`` without zeros (a zero copies a dimension of the
    intermediate shape).
    """
    from onnx import helper

    rewritten = 0
    while True:
        g = _Graph(model.graph)
        for last in g.graph.node:
            if last.op_type != "Reshape" or last.input[1] not in g.constants:
                continue
            first = g.produced_by(last.input[0], "Reshape")
            if not first or 0 in g.constants[last.input[1]].tolist() or not g.only_consumer(first.output[0], last):
                continue
            new = helper.make_node("Reshape", [first.input[0], last.input[1]], [last.output[0]], name=last.name)
            _replace(g, [first, last], [new])
            rewritten += 1
            break
        else:
            return rewritten


def remove_unused(model) -> int:
    """Drop nodes and initializers nothing reads; returns how many nodes it dropped."""
    graph, dropped = model.graph, 0
    while True:
        used = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
        keep = [node for node in graph.node if any(out in used for out in node.output)]
        if len(keep) == len(graph.node):
            break
        dropped += len(graph.node) - len(keep)
        _set_nodes(graph, keep)
    used = {name for node in graph.node for name in node.input}
    inits = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    return dropped


def name_output(model, name: str = OUTPUT_NAME) -> None:
    """Rename the graph's single output tensor to ``name``."""
    graph = model.graph
    old = graph.output[0].name
    if old == name:
        return
    for node in graph.node:
        node.output[:] = [name if out == old else out for out in node.output]
        node.input[:] = [name if inp == old else inp for inp in node.input]
    graph.output[0].name = name


@dataclasses.dataclass(frozen=True)
class OnnxPass:
    name: str
    apply: Callable  # (ModelProto) -> int, the number of rewritten places


# Run in order after tf2onnx, then the chosen form's passes (edgeshuffle.export.onnx_forms), then
# remove_unused; a failing pass is named in the error.
ONNX_PASSES: tuple[OnnxPass, ...] = (
    OnnxPass("fold_shuffle_transposes", fold_shuffle_transposes),
    OnnxPass("sink_transpose_pairs", sink_transpose_pairs),
    OnnxPass("merge_reshape_chains", merge_reshape_chains),
)


def onnx_passes(form: str) -> tuple[OnnxPass, ...]:
    """Every pass :func:`float_onnx_model` runs for ONNX form ``form``, in order."""
    from edgeshuffle.export.onnx_forms import validate_onnx_form

    form_passes = (OnnxPass(apply.__name__, apply) for apply in validate_onnx_form(form).passes)
    return (*ONNX_PASSES, *form_passes, OnnxPass("remove_unused", remove_unused))


def validate_opset(opset: int) -> int:
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise InvalidArgumentError(f"ONNX opset must be {MIN_OPSET}..{MAX_OPSET} (tf2onnx 1.17). "
                                   f"Received: `opset={opset}`")
    return opset


def float_onnx_model(model, opset: int = DEFAULT_OPSET, metadata_props: dict[str, str] | None = None,
                     form: str | None = None):
    """Convert ``model`` (the edge form, static batch) to an ``onnx.ModelProto``.

    tf2onnx traces the Keras model's inference function (not the TFLite
    file); then :func:`onnx_passes` of ``form`` run (a key of
    :data:`~edgeshuffle.export.onnx_forms.ONNX_FORMS`, default
    :data:`~edgeshuffle.export.onnx_forms.DEFAULT_ONNX_FORM`); the input is named ``input`` (NHWC
    float, like the TFLite artifact) and the output ``logits``; the result
    passes ``onnx.checker`` (full check).

    Raises:
        InvalidArgumentError: an unsupported opset or form.
        ConversionError: tf2onnx, a pass or the checker failed (named in the message).
    """
    import onnx
    import tf2onnx

    from edgeshuffle.export.onnx_forms import DEFAULT_ONNX_FORM
    from edgeshuffle.export.tflite import input_signature, traced_function

    validate_opset(opset)
    passes = onnx_passes(form or DEFAULT_ONNX_FORM)
    try:
        proto, _ = tf2onnx.convert.from_function(traced_function(model), input_signature=input_signature(model),
                                                 opset=opset)
    except Exception as error:  # tf2onnx raises anything from ValueError to KeyError
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConversionError(f"tf2onnx failed: {first_line}") from error
    for onnx_pass in passes:
        try:
            count = onnx_pass.apply(proto)
        except Exception as error:
            raise ConversionError(f"ONNX pass {onnx_pass.name} failed: {error}") from error
        log.debug("ONNX pass %s: %d rewrites", onnx_pass.name, count)
    name_output(proto)
    if [i.name for i in proto.graph.input] != [INPUT_NAME]:
        raise ConversionError(f"unexpected ONNX inputs: {[i.name for i in proto.graph.input]}")
    proto.producer_name = "edgeshuffle (tf2onnx)"
    if metadata_props:
        onnx.helper.set_model_props(proto, dict(metadata_props))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as error:
        raise ConversionError(f"onnx.checker rejected the graph: {str(error).splitlines()[0]}") from error
    return proto


def onnx_op_histogram(proto) -> dict[str, int]:
    """Every node of the ONNX graph by ``op_type``."""
    import collections

    return dict(sorted(collections.Counter(node.op_type for node in proto.graph.node).items()))
