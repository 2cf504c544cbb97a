"""Exact forms of the float ONNX graph for onnxruntime's CPU kernels, chosen by measurement.

A form is a list of rewrite passes run after tf2onnx and :data:`~edgeshuffle.export.onnx.ONNX_PASSES`
(:func:`~edgeshuffle.export.onnx.onnx_passes`). Each pass is an onnxscript rewrite rule (a target
pattern, a replacement and a condition, applied until nothing matches) and is exact: every output is
the same sum of the same products, regrouped, or with products by an added zero weight. The int8 ONNX
file is quantized from the float one, so it has the same form. ``benchmarks/bench_onnx_forms.py`` times
every form against the LiteRT artifacts; :data:`DEFAULT_ONNX_FORM` is the fastest it measured.

What the forms address (onnxruntime 1.32, ORT_ENABLE_ALL): the NCHWc layout transformer blocks a
grouped convolution only when its channels per group are a multiple of the CPU's block (8 floats with
AVX2, 16 with AVX-512); ShuffleNet's bottlenecks have 20, 40 and 80 per group at g=3, so those convs run
on the plain NCHW kernel between layout reorders. ``split-groups`` and ``dense`` make every pointwise
conv a plain one (blocked whatever its input width), at the cost of Split/Concat and more reorders, or
of g times the multiply-adds. onnxruntime fuses ``Conv -> Add(residual) -> Relu`` into one
``FusedConv`` only when the conv has a bias input, which a model with fresh BatchNorms converts
without (``nchw-bias``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from edgeshuffle.errors import InvalidArgumentError


def _conv_bias(node):
    """The constant bias of a ``Conv`` node as an array, or None when it has none."""
    return node.inputs[2].const_value.numpy() if len(node.inputs) > 2 and node.inputs[2] is not None else None


def _grouped_pointwise_check(out):
    """Why ``out``'s producer is not a grouped 1x1 ``Conv`` with constant weights and bias, or None."""
    node = out.producer()
    groups = node.attributes.get_int("group", 1)
    weights = node.inputs[1].const_value
    if groups <= 1 or weights is None or len(weights.shape) != 4:
        return "not a grouped conv with constant weights"
    if tuple(weights.shape[2:]) != (1, 1) or weights.shape[1] == 1:
        return "not a grouped 1x1 conv (depthwise and kxk convs stay)"
    if len(node.inputs) > 2 and node.inputs[2] is not None and node.inputs[2].const_value is None:
        return "bias is not constant"
    return None


def _rules():
    """The onnxscript rules, built on first use (onnxscript is imported only then)."""
    import numpy as np
    import onnx_ir as ir
    from onnxscript.rewriter import pattern

    def conv_pattern(op, x, w):
        return op.Conv(x, w, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["out"])

    def check_grouped(context, out, **_):
        reason = _grouped_pointwise_check(out)
        return pattern.MatchResult().fail(reason) if reason else pattern.MatchResult()

    def grouped_conv(out, w):
        """The matched grouped conv: node, groups, its other attributes, weights, bias, per-group out/in."""
        node = out.producer()
        groups = node.attributes.get_int("group")
        attributes = {k: v for k, v in node.attributes.items() if k != "group"}
        weights = w.const_value.numpy()
        return node, groups, attributes, weights, _conv_bias(node), weights.shape[0] // groups, weights.shape[1]

    def split_rewrite(op, x, w, out, **_):
        _, groups, attributes, weights, bias, per_group_out, per_group_in = grouped_conv(out, w)
        sizes = op.initializer(ir.tensor(np.full(groups, per_group_in, np.int64)), f"{w.name}_split")
        convs = []
        for i, part in enumerate(op.Split(x, sizes, axis=1, _outputs=groups)):
            rows = slice(i * per_group_out, (i + 1) * per_group_out)
            inputs = [part, op.initializer(ir.tensor(np.ascontiguousarray(weights[rows])), f"{w.name}_g{i}")]
            if bias is not None:
                inputs.append(op.initializer(ir.tensor(np.ascontiguousarray(bias[rows])), f"{w.name}_bias_g{i}"))
            convs.append(op.Conv(*inputs, **attributes))
        return op.Concat(*convs, axis=1)

    def dense_rewrite(op, x, w, out, **_):
        node, groups, attributes, weights, bias, per_group_out, per_group_in = grouped_conv(out, w)
        dense = np.zeros((weights.shape[0], per_group_in * groups, 1, 1), weights.dtype)
        for i in range(groups):
            rows = slice(i * per_group_out, (i + 1) * per_group_out)
            dense[rows, i * per_group_in:(i + 1) * per_group_in] = weights[rows]
        inputs = [x, op.initializer(ir.tensor(dense), f"{w.name}_dense")]
        if bias is not None:
            inputs.append(node.inputs[2])
        return op.Conv(*inputs, **attributes)

    def shuffle_conv_pattern(op, x, view, back, w):
        shuffled = op.Reshape(op.Transpose(op.Reshape(x, view), perm=[0, 2, 1, 3]), back)
        return op.Conv(shuffled, w, _allow_other_inputs=True, _allow_other_attributes=True, _outputs=["out"])

    def check_shuffle_conv(context, view, back, w, out, **_):
        node = out.producer()
        if view.const_value is None or back.const_value is None or w.const_value is None:
            return pattern.MatchResult().fail("shapes or weights are not constant")
        if node.attributes.get_int("group", 1) != 1:
            return pattern.MatchResult().fail("a grouped conv cannot take the shuffle into its weights")
        batch, a, b, _ = (int(v) for v in view.const_value.numpy())
        back_shape = [int(v) for v in back.const_value.numpy()]
        if len(back_shape) != 4 or back_shape[1] != a * b or back_shape[0] != batch:
            return pattern.MatchResult().fail("not a channel shuffle")
        return pattern.MatchResult()

    def shuffle_conv_rewrite(op, x, view, back, w, out, **_):
        node = out.producer()
        _, a, b, _ = (int(v) for v in view.const_value.numpy())
        # conv(shuffle(x), W) = conv(x, W'): shuffled channel j*a + i is channel i*b + j of x.
        source_of = np.arange(a * b).reshape(b, a).T.reshape(-1)  # source_of[i*b + j] = j*a + i
        weights = w.const_value.numpy()[:, source_of]
        inputs = [x, op.initializer(ir.tensor(np.ascontiguousarray(weights)), f"{w.name}_unshuffled"),
                  *node.inputs[2:]]
        return op.Conv(*inputs, **dict(node.attributes))

    def biasless_conv_pattern(op, x, w):
        return op.Conv(x, w, _allow_other_attributes=True, _outputs=["out"])

    def check_constant_weights(context, w, **_):
        if w.const_value is None or len(w.const_value.shape) != 4:
            return pattern.MatchResult().fail("weights are not a constant 4-D tensor")
        return pattern.MatchResult()

    def zero_bias_rewrite(op, x, w, out, **_):
        zeros = np.zeros(w.const_value.shape[0], w.const_value.numpy().dtype)
        return op.Conv(x, w, op.initializer(ir.tensor(zeros), f"{w.name}_zero_bias"), **dict(out.producer().attributes))

    return {
        "bias": pattern.RewriteRule(biasless_conv_pattern, zero_bias_rewrite, check_constant_weights,
                                    name="ZeroBiasConv"),
        "split": pattern.RewriteRule(conv_pattern, split_rewrite, check_grouped, name="SplitGroupedConv"),
        "dense": pattern.RewriteRule(conv_pattern, dense_rewrite, check_grouped, name="DenseGroupedConv"),
        "shuffle": pattern.RewriteRule(shuffle_conv_pattern, shuffle_conv_rewrite, check_shuffle_conv,
                                       name="ShuffleIntoConv"),
    }


def _apply_rule(model, rule_name: str) -> int:
    """Apply one of :func:`_rules` to ``model`` (an ``onnx.ModelProto``, changed in place) until nothing matches."""
    import onnx_ir as ir
    from onnxscript.rewriter import RewriteRuleSet

    graph = ir.serde.deserialize_model(model)
    count = RewriteRuleSet([_rules()[rule_name]]).apply_to_model(graph)
    if count:
        model.CopyFrom(ir.serde.serialize_model(graph))
    return count


def add_zero_conv_biases(model) -> int:
    """Give every bias-less ``Conv`` an explicit zero bias; returns how many.

    Exact (adding 0.0). onnxruntime fuses ``Conv -> Add(residual) -> Relu``
    into one ``FusedConv`` only when the conv has a bias input; a model whose
    BatchNorms have zero shift and mean (fresh weights) converts without one.
    """
    return _apply_rule(model, "bias")


def split_grouped_convs(model) -> int:
    """Every grouped 1x1 ``Conv`` as ``Split`` -> one plain ``Conv`` per group -> ``Concat``; returns how many.

    Exact: output channel ``o`` of group ``i`` is the same dot product of the
    same input channels (``i``'s slice) with the same weights either way.
    """
    return _apply_rule(model, "split")


def densify_grouped_convs(model) -> int:
    """Every grouped 1x1 ``Conv`` as one plain ``Conv`` with block-diagonal weights; returns how many.

    Exact: the added weights are zeros, whose products with finite inputs add
    exact zeros; ``g`` times the multiply-adds, but every conv can run in
    onnxruntime's blocked (NCHWc) layout.
    """
    return _apply_rule(model, "dense")


def fold_shuffles_into_convs(model) -> int:
    """``channel shuffle -> Conv`` (plain) as the ``Conv`` alone, its weight columns permuted; returns how many.

    The NCHW shuffle ``Reshape(B,a,b,S) -> Transpose(0,2,1,3) -> Reshape(B,C,H,W)``
    only reorders channels, and a plain conv sums over all of them, so the
    reorder moves into the order of the weights' input channels: exact, and
    the shuffle's ``Reshape``/``Transpose`` nodes are gone.
    """
    return _apply_rule(model, "shuffle")


@dataclasses.dataclass(frozen=True)
class OnnxForm:
    """A named list of exact passes over the float ONNX graph: functions ``(ModelProto) -> int`` (rewrites made)."""

    name: str
    passes: tuple[Callable, ...]
    summary: str


ONNX_FORMS: dict[str, OnnxForm] = {form.name: form for form in (
    OnnxForm("nchw", (), "tf2onnx's graph after the transpose passes: grouped convs as Conv(group=g)"),
    OnnxForm("nchw-bias", (add_zero_conv_biases,),
             "nchw, every conv with a bias input (so the residual Add + Relu fuse into it)"),
    OnnxForm("split-groups", (split_grouped_convs,), "every grouped 1x1 conv as Split -> g plain Convs -> Concat"),
    OnnxForm("dense", (densify_grouped_convs,), "every grouped 1x1 conv as a plain Conv with block-diagonal weights"),
    OnnxForm("dense-unshuffled", (densify_grouped_convs, fold_shuffles_into_convs),
             "dense, and each channel shuffle folded into the next conv's weights"),
)}
DEFAULT_ONNX_FORM = "nchw-bias"  # the fastest in benchmarks/bench_onnx_forms.py (docs: performance page)


def validate_onnx_form(form: str) -> OnnxForm:
    if form not in ONNX_FORMS:
        raise InvalidArgumentError(f"ONNX form must be one of {tuple(ONNX_FORMS)}. Received: `onnx_form={form}`")
    return ONNX_FORMS[form]
