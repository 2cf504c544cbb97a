"""Models written elsewhere go through the same passes as edgeshuffle's own: each pass exact, artifacts edge-friendly.

The references are the user's own Keras models (random weights and BatchNorm
statistics), run by Keras; the artifacts are run by LiteRT and onnxruntime.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
onnx = pytest.importorskip("onnx")

from edgeshuffle.graph import RewriteOptions, rewrite  # noqa: E402
from edgeshuffle.graph.passes import PASSES  # noqa: E402
from edgeshuffle.preprocessing import Preprocessing  # noqa: E402

from .foreign import blog_shufflenet, lambda_shufflenet, randomize  # noqa: E402

FORBIDDEN = {"SHAPE", "STRIDED_SLICE", "PACK"}
_CACHE = {}


def model(name: str):
    """Built once per session, random weights and BatchNorm statistics (do not modify)."""
    if name not in _CACHE:
        builders = {
            "blog": lambda: blog_shufflenet(input_size=64, repetitions=(1, 2, 1)),
            "blog_full": lambda: blog_shufflenet(input_size=64),  # the blog's 3, 7, 3 units
            "lambda": lambda: lambda_shufflenet(input_size=64),
            "mobilenetv2": lambda: keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3),
                                                                  classes=10),
        }
        _CACHE[name] = randomize(builders[name](), seed=len(_CACHE))
    return _CACHE[name]


def _inputs(m, count=2, seed=5):
    return np.random.default_rng(seed).normal(size=(count, *m.input_shape[1:])).astype(np.float32)


def _passes(*names):
    return [p for p in PASSES if p.name in names]


def _assert_same(got, expected, tolerance=1e-5):
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance * scale)


def _run(edge, x):
    return np.concatenate([np.asarray(edge(x[i:i + 1], training=False)) for i in range(len(x))])


# The passes Keras can run (all but the native grouped conv, which only LiteRT and onnxruntime run).
KERAS_PASSES = {
    "static_batch": (("static_batch",), "reshape"),
    "channel_shuffle_reshape": (("channel_shuffle",), "reshape"),
    "channel_shuffle_planar": (("channel_shuffle",), "planar"),
    "shuffle_after_depthwise": (("channel_shuffle", "shuffle_after_depthwise"), "reshape"),
    "average_pool": (("average_pool",), "reshape"),
    "relu_before_concat": (("relu_before_concat",), "reshape"),
}
# How often each fires on the test models: one shuffle per unit (2 + 3 + 2 units in "blog", 6 in "lambda"),
# one pool and one concat per stride-2 unit (3).
FIRES = {"blog": {"channel_shuffle": 7, "shuffle_after_depthwise": 7, "average_pool": 3, "relu_before_concat": 3},
         "lambda": {"channel_shuffle": 6, "shuffle_after_depthwise": 6, "average_pool": 3, "relu_before_concat": 3}}


@pytest.mark.parametrize("name", ["blog", "lambda"])
@pytest.mark.parametrize("case", KERAS_PASSES)
def test_each_pass_is_exact_on_foreign_models(name, case):
    names, shuffle = KERAS_PASSES[case]
    original = model(name)
    rewritten = rewrite(original, RewriteOptions(shuffle=shuffle), passes=_passes(*names))
    last = rewritten.report.passes[-1]
    assert last.fired == FIRES[name].get(last.name, 1), rewritten.report
    x = _inputs(original)
    _assert_same(_run(rewritten.model, x), np.asarray(original(x, training=False)))


def test_the_blog_shuffle_is_found_in_its_order():
    """Reshape(w, h, c/g, g) -> Permute -> Reshape is the (n, g) -> (g, n) shuffle: "official" order."""
    from edgeshuffle.models.layers import ChannelShuffle

    edge = rewrite(model("blog"), passes=_passes("channel_shuffle")).model
    shuffles = [layer for layer in edge.layers if isinstance(layer, ChannelShuffle)]
    assert len(shuffles) == 7 and {(s.groups, s.order) for s in shuffles} == {(2, "official")}
    assert not any(isinstance(layer, (keras.layers.Reshape, keras.layers.Permute)) for layer in edge.layers)


def test_a_relu_after_add_stays_and_a_non_negative_input_gets_none():
    edge = rewrite(model("blog"), passes=_passes("relu_before_concat")).model
    for layer in edge.layers:
        if isinstance(layer, keras.layers.Concatenate):
            producers = [t._keras_history.operation for t in layer.input]
            # The branch (a conv) gets a ReLU; the average pool of a ReLU output does not.
            assert [type(p).__name__ for p in producers] == ["ReLU", "AveragePooling2D"]
    relus_after_add = [layer for layer in edge.layers if isinstance(layer, keras.layers.Activation)
                       and isinstance(layer.input._keras_history.operation, keras.layers.Add)]
    assert len(relus_after_add) == 4


def test_mobilenetv2_passes_through_unchanged():
    original = model("mobilenetv2")
    rewritten = rewrite(original)
    assert {p.name: p.fired for p in rewritten.report.passes} == {
        "static_batch": 1, "grouped_conv": 0, "channel_shuffle": 0, "shuffle_after_depthwise": 0,
        "average_pool": 0, "relu_before_concat": 0}
    assert [type(layer) for layer in rewritten.model.layers] == [type(layer) for layer in original.layers]
    x = _inputs(original)
    np.testing.assert_array_equal(_run(rewritten.model, x), _run(original, x))  # same batch of 1: same numbers


def test_the_user_model_is_left_as_it_was():
    original = model("lambda")
    weights = [w.copy() for w in original.get_weights()]
    config = original.get_config()
    rewrite(original)
    assert original.get_config() == config and original.input_shape[0] is None
    for w0, w1 in zip(weights, original.get_weights()):
        np.testing.assert_array_equal(w0, w1)


def _assert_tflite_edge_friendly(path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgeshuffle.runtime.delegation import xnnpack_delegation

    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not ops & FORBIDDEN, ops
    assert max(len(t["shape"]) for t in interpreter.get_tensor_details()) <= 4
    delegation = xnnpack_delegation(path)
    assert delegation.partitions == 1 and delegation.delegated_nodes == delegation.nodes, delegation
    return ops


def _independent_parity(reference, output_dir, x):
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    expected = np.asarray(reference(x, training=False))
    interpreter = Interpreter(model_path=str(output_dir / "float32.tflite"))
    interpreter.allocate_tensors()
    session = ort.InferenceSession(str(output_dir / "float32.onnx"), providers=["CPUExecutionProvider"])
    tflite, ort_out = [], []
    for i in range(len(x)):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[i:i + 1])
        interpreter.invoke()
        tflite.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
        ort_out.append(session.run(None, {"input": x[i:i + 1]})[0])
    for got in (np.concatenate(tflite), np.concatenate(ort_out)):
        _assert_same(got, expected, 1e-4)
        np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


@pytest.mark.parametrize("name,shuffles,groups", [("blog_full", 16, 2), ("lambda", 6, 3), ("mobilenetv2", 0, 0)])
def test_convert_foreign_models(tmp_path, name, shuffles, groups):
    from edgeshuffle.export.convert import convert
    from edgeshuffle.models.source import source_model

    original = model(name)
    size = original.input_shape[1]
    report = convert(source_model(original, preprocessing=Preprocessing.imagenet(size)), tmp_path)
    assert report.passed
    ops = _assert_tflite_edge_friendly(tmp_path / "float32.tflite")
    proto = onnx.load(str(tmp_path / "float32.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    nodes = [n.op_type for n in proto.graph.node]
    assert nodes.count("Transpose") <= shuffles + 2
    if shuffles:
        assert "AVERAGE_POOL_2D" not in ops
        conv_groups = [next((a.i for a in n.attribute if a.name == "group"), 1) for n in proto.graph.node
                       if n.op_type == "Conv"]
        assert conv_groups.count(groups) == 2 * shuffles  # every unit's two grouped 1x1 convs: Conv(group=g)
    _independent_parity(original, tmp_path, _inputs(original, 3, seed=11))
    fired = {p["name"]: p["fired"] for p in report.rewrites["passes"]}
    assert fired["channel_shuffle"] == shuffles and report.rewrites["outside_xnnpack"] == {}


def test_quantize_the_blog_model_keeps_softmax_in_the_partition(tmp_path):
    """int8: one XNNPACK partition holding everything, the softmax included, and close to the float model."""
    from edgeshuffle.data import find_images
    from edgeshuffle.data.sets import load_images
    from edgeshuffle.export.quantize import QuantizeConfig, quantize
    from edgeshuffle.models.source import source_model
    from edgeshuffle.runtime import open_runner

    calibration = __import__("pathlib").Path(__file__).parents[2] / "calibration" / "imagenet-val-200"
    original = model("blog")
    preprocessing = Preprocessing.imagenet(64)
    report = quantize(source_model(original, preprocessing=preprocessing), tmp_path,
                      QuantizeConfig(calibration=calibration, num_calibration=32))
    ops = _assert_tflite_edge_friendly(tmp_path / "int8.tflite")
    assert {"SOFTMAX", "DEQUANTIZE", "QUANTIZE"} <= ops and report.tflite["xnnpack"]["fully_delegated"]
    assert report.rewrites["outside_xnnpack"] == {}
    x = load_images(find_images(calibration)[-16:], preprocessing).inputs
    expected = np.asarray(original(x, training=False))
    with open_runner(tmp_path / "int8.tflite") as runner:
        got = runner.infer(x)
    assert np.abs(got.sum(1) - 1).max() < 0.05  # still probabilities
    assert np.abs(got - expected).max() < 0.1 * expected.max()
