"""The ONNX post-passes on hand-built graphs: same outputs (onnxruntime) before and after, fewer Transposes."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeshuffle.export.onnx import (  # noqa: E402
    fold_shuffle_transposes,
    merge_reshape_chains,
    remove_unused,
    sink_transpose_pairs,
)


def _model(nodes, inits, in_shape, out_shape, extra_outputs=()):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape),
         *[helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in extra_outputs]],
        [numpy_helper.from_array(value, name) for name, value in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["y"], {"x": x})[0]


def _count(model, op_type):
    return sum(node.op_type == op_type for node in model.graph.node)


def tf2onnx_nhwc_shuffle(batch, channels, height, width, groups):
    """What tf2onnx emits for the reshape shuffle between two NCHW convs."""
    n = channels // groups
    nodes = [
        helper.make_node("Transpose", ["x"], ["t1"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["t1", "view"], ["r1"]),
        helper.make_node("Transpose", ["r1"], ["t2"], perm=[0, 1, 3, 2]),
        helper.make_node("Reshape", ["t2", "back"], ["r2"]),
        helper.make_node("Transpose", ["r2"], ["y"], perm=[0, 3, 1, 2]),
    ]
    inits = {"view": np.array([-1, height * width, groups, n], np.int64),
             "back": np.array([-1, height, width, channels], np.int64)}
    shape = [batch, channels, height, width]
    return _model(nodes, inits, shape, shape)


def paper_shuffle_nchw(x, groups):
    """Zhang et al. Fig. 1(c) on NCHW: output channel j*g + i is input channel i*n + j."""
    n = x.shape[1] // groups
    out = np.empty_like(x)
    for i in range(groups):
        for j in range(n):
            out[:, j * groups + i] = x[:, i * n + j]
    return out


@pytest.mark.parametrize("batch,channels,height,width,groups", [(1, 12, 4, 5, 3), (2, 16, 3, 3, 4),
                                                                  (1, 48, 1, 1, 8), (1, 6, 2, 2, 2)])
def test_fold_shuffle_transposes_is_exact_and_leaves_one_transpose(batch, channels, height, width, groups):
    model = tf2onnx_nhwc_shuffle(batch, channels, height, width, groups)
    x = np.random.default_rng(0).normal(size=(batch, channels, height, width)).astype(np.float32)
    before = _run(model, x)
    np.testing.assert_array_equal(before, paper_shuffle_nchw(x, groups))
    assert fold_shuffle_transposes(model) == 1
    remove_unused(model)
    onnx.checker.check_model(model, full_check=True)
    assert _count(model, "Transpose") == 1
    np.testing.assert_array_equal(_run(model, x), before)


def test_fold_shuffle_transposes_leaves_a_shared_intermediate_alone():
    model = tf2onnx_nhwc_shuffle(1, 12, 2, 2, 3)
    model.graph.output.append(helper.make_tensor_value_info("r1", TensorProto.FLOAT, None))
    assert fold_shuffle_transposes(model) == 0
    assert _count(model, "Transpose") == 3


def test_fold_shuffle_transposes_ignores_other_permutations():
    model = tf2onnx_nhwc_shuffle(1, 12, 2, 2, 3)
    model.graph.node[2].attribute[0].ints[:] = [0, 2, 1, 3]
    assert fold_shuffle_transposes(model) == 0


@pytest.mark.parametrize("op_type", ["Mul", "Add", "Sub", "Div"])
@pytest.mark.parametrize("constant_first", [False, True])
def test_sink_transpose_pairs_through_a_constant_binary_op(op_type, constant_first):
    rng = np.random.default_rng(1)
    constant = rng.uniform(1, 2, size=(1, 3, 4, 1)).astype(np.float32)  # NHWC per-position constant
    inputs = ["c", "t1"] if constant_first else ["t1", "c"]
    nodes = [helper.make_node("Transpose", ["x"], ["t1"], perm=[0, 2, 3, 1]),
             helper.make_node(op_type, inputs, ["m"]),
             helper.make_node("Transpose", ["m"], ["y"], perm=[0, 3, 1, 2])]
    model = _model(nodes, {"c": constant}, [2, 5, 3, 4], [2, 5, 3, 4])
    x = rng.normal(size=(2, 5, 3, 4)).astype(np.float32)
    before = _run(model, x)
    assert sink_transpose_pairs(model) == 1
    remove_unused(model)
    onnx.checker.check_model(model, full_check=True)
    assert _count(model, "Transpose") == 0
    np.testing.assert_array_equal(_run(model, x), before)


def test_sink_transpose_pairs_through_a_constant_gather():
    rng = np.random.default_rng(2)
    permutation = rng.permutation(6).astype(np.int64)
    nodes = [helper.make_node("Transpose", ["x"], ["t1"], perm=[0, 2, 3, 1]),
             helper.make_node("Gather", ["t1", "idx"], ["g"], axis=3),
             helper.make_node("Transpose", ["g"], ["y"], perm=[0, 3, 1, 2])]
    model = _model(nodes, {"idx": permutation}, [1, 6, 2, 3], [1, 6, 2, 3])
    x = rng.normal(size=(1, 6, 2, 3)).astype(np.float32)
    assert sink_transpose_pairs(model) == 1
    remove_unused(model)
    assert _count(model, "Transpose") == 0
    np.testing.assert_array_equal(_run(model, x), x[:, permutation])


def test_sink_transpose_pairs_needs_inverse_permutations():
    nodes = [helper.make_node("Transpose", ["x"], ["t1"], perm=[0, 2, 3, 1]),
             helper.make_node("Mul", ["t1", "c"], ["m"]),
             helper.make_node("Transpose", ["m"], ["y"], perm=[0, 2, 3, 1])]
    model = _model(nodes, {"c": np.ones((1, 1, 1, 1), np.float32)}, [1, 2, 3, 4], [1, 4, 2, 3])
    assert sink_transpose_pairs(model) == 0


def test_merge_reshape_chains_is_exact():
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["r1"]),
             helper.make_node("Reshape", ["r1", "s2"], ["r2"]),
             helper.make_node("Reshape", ["r2", "s3"], ["y"])]
    inits = {"s1": np.array([2, 1, 1, 12], np.int64), "s2": np.array([-1, 1, 3, 4], np.int64),
             "s3": np.array([2, 12, 1, 1], np.int64)}
    model = _model(nodes, inits, [2, 12, 1, 1], [2, 12, 1, 1])
    x = np.random.default_rng(3).normal(size=(2, 12, 1, 1)).astype(np.float32)
    assert merge_reshape_chains(model) == 2
    remove_unused(model)
    assert _count(model, "Reshape") == 1
    np.testing.assert_array_equal(_run(model, x), x)


def test_merge_reshape_chains_keeps_zero_copying_shapes():
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["r1"]),
             helper.make_node("Reshape", ["r1", "s2"], ["y"])]
    inits = {"s1": np.array([2, 3, 4], np.int64), "s2": np.array([0, -1], np.int64)}
    model = _model(nodes, inits, [2, 12], [2, 12])
    assert merge_reshape_chains(model) == 0
