"""Each edge pass computes the same function as the original model (edgeshuffle's own), on random inputs."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from edgeshuffle import graph  # noqa: E402
from edgeshuffle.errors import ConversionError, InvalidArgumentError  # noqa: E402
from edgeshuffle.graph.passes import PASSES, GraphPass  # noqa: E402
from edgeshuffle.models.variants import ModelSpec  # noqa: E402


def _inputs(model, batch, seed=3):
    size = model.input_shape[1]
    return np.random.default_rng(seed).normal(size=(batch, size, size, 3)).astype(np.float32)


def _assert_same_function(rewritten, original, batch=2):
    x = _inputs(original, batch)
    expected = np.asarray(original(x, training=False))
    step = rewritten.input_shape[0] or batch
    got = np.concatenate([np.asarray(rewritten(x[i:i + step], training=False)) for i in range(0, batch, step)])
    scale = np.abs(expected).max()
    assert scale > 0.1
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)


def only(*names, batch=1, shuffle="reshape"):
    """Rewrite with just the named passes."""
    return lambda model: graph.rewrite(model, graph.RewriteOptions(batch=batch, shuffle=shuffle),
                                       passes=[p for p in PASSES if p.name in names])


SPECS = {
    "g3": dict(groups=3),
    # PyTorch padding (explicit pads, pool counting the padding), official shuffle order and position.
    "official_g8": dict(spec=ModelSpec.official(groups=8, scale=0.5, input_size=32, classes=10)),
}


@pytest.mark.parametrize("variant", SPECS)
@pytest.mark.parametrize("rewrite,name", [
    (only("static_batch", batch=2), "static_batch"),
    (only("average_pool"), "average_pool"),
    (only("relu_before_concat"), "relu_before_concat"),
    (only("channel_shuffle", shuffle="gather"), "channel_shuffle"),
    (only("channel_shuffle", shuffle="planar"), "channel_shuffle"),
], ids=["static_batch", "average_pool", "relu_before_concat", "shuffle_gather", "shuffle_planar"])
def test_pass_is_exact_in_keras(small_model, variant, rewrite, name):
    original = small_model(**SPECS[variant])
    rewritten = rewrite(original)
    (result,) = rewritten.report.passes
    assert result.name == name and result.fired > 0
    _assert_same_function(rewritten.model, original)


def test_the_source_model_is_unchanged(small_model):
    original = small_model(groups=3)
    before = [w.copy() for w in original.get_weights()]
    layers = [layer.name for layer in original.layers]
    x = _inputs(original, 2)
    expected = np.asarray(original(x, training=False))
    edge = graph.rewrite(original).model
    assert not set(map(id, edge.layers)) & set(map(id, original.layers))  # new layer objects
    assert [layer.name for layer in original.layers] == layers and original.input_shape[0] is None
    for w0, w1 in zip(before, original.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    np.testing.assert_array_equal(np.asarray(original(x, training=False)), expected)


def test_static_batch_fixes_the_input_shape(small_model):
    model = only("static_batch", batch=4)(small_model()).model
    assert model.input_shape == (4, 32, 32, 3)


def test_native_grouped_conv_is_exact_through_litert(small_model, tmp_path):
    """TensorFlow's CPU kernels cannot run a native grouped conv; LiteRT's can (and XNNPACK's)."""
    from ai_edge_litert.interpreter import Interpreter

    from edgeshuffle.export.tflite import float_tflite_bytes
    from edgeshuffle.graph.layers import NativeGroupedConv

    original = small_model(groups=4)
    native = only("static_batch", "grouped_conv")(original).model
    assert sum(isinstance(layer, NativeGroupedConv) for layer in native.layers) == 2 * 16 - 1
    path = tmp_path / "native.tflite"
    path.write_bytes(float_tflite_bytes(native))
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    x = _inputs(original, 1)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    expected = np.asarray(original(x, training=False))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    # One grouped CONV_2D per grouped 1x1 conv: kernels with C_in/g input channels.
    grouped = [op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"
               and interpreter.get_tensor_details()[op["inputs"][1]]["shape"][3]
               != interpreter.get_tensor_details()[op["inputs"][0]]["shape"][3]]
    assert len(grouped) == 2 * 16 - 1  # every unit's two pointwise convs but Stage 2's first


def test_passes_are_listed_in_order():
    assert [p.name for p in PASSES] == [
        "static_batch", "grouped_conv", "channel_shuffle", "shuffle_after_depthwise", "average_pool",
        "relu_before_concat"]


def test_rewrite_names_the_failing_pass(small_model):
    def broken(graph_, options):
        raise RuntimeError("boom\nsecond line")

    passes = [GraphPass(p.name, broken) if p.name == "average_pool" else p for p in PASSES]
    with pytest.raises(ConversionError, match=r"^rewrite average_pool failed: boom$"):
        graph.rewrite(small_model(), passes=passes)


@pytest.mark.parametrize("kwargs,culprit", [({"batch": 0}, "batch=0"), ({"shuffle": "roll"}, "shuffle=roll")])
def test_rewrite_rejects_bad_options(kwargs, culprit):
    with pytest.raises(InvalidArgumentError, match=culprit):
        graph.RewriteOptions(**kwargs)
