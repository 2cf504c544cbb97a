"""Each edge rewrite computes the same function as the original model, on random inputs."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from edgeshuffle.errors import ConversionError, InvalidArgumentError  # noqa: E402
from edgeshuffle.export import rewrites  # noqa: E402
from edgeshuffle.models.variants import ModelSpec  # noqa: E402


def _inputs(model, batch, seed=3):
    size = model.spec.input_size
    return np.random.default_rng(seed).normal(size=(batch, size, size, 3)).astype(np.float32)


def _assert_same_function(rewritten, original, batch=2):
    x = _inputs(original, batch)
    expected = np.asarray(original(x, training=False))
    got = np.asarray(rewritten(x, training=False))
    scale = np.abs(expected).max()
    assert scale > 0.1
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)


SPECS = {
    "g3": dict(groups=3),
    # PyTorch padding (explicit pads, pool counting the padding), official shuffle order and position.
    "official_g8": dict(spec=ModelSpec.official(groups=8, scale=0.5, input_size=32, classes=10)),
}


@pytest.mark.parametrize("variant", SPECS)
@pytest.mark.parametrize("rewrite", [
    lambda m: rewrites.rewrite_static_batch(m, 2),
    rewrites.rewrite_shortcut_pool_as_dwconv,
    rewrites.rewrite_relu_on_branch,
    lambda m: rewrites.rewrite_shuffle(m, "gather"),
], ids=["static_batch", "shortcut_pool_as_dwconv", "relu_on_branch", "shuffle_gather"])
def test_rewrite_is_exact_in_keras(small_model, variant, rewrite):
    original = small_model(**SPECS[variant])
    rewritten = rewrite(original)
    assert rewritten.form != original.form
    _assert_same_function(rewritten, original)


def test_static_batch_fixes_the_input_shape(small_model):
    model = rewrites.rewrite_static_batch(small_model(), 4)
    assert model.input_shape == (4, 32, 32, 3)


def test_native_grouped_conv_is_exact_through_litert(small_model, tmp_path):
    """TensorFlow's CPU kernels cannot run a native grouped conv; LiteRT's can (and XNNPACK's)."""
    from ai_edge_litert.interpreter import Interpreter

    from edgeshuffle.export.tflite import float_tflite_bytes

    original = small_model(groups=4)
    native = rewrites.rewrite_native_grouped_conv(rewrites.rewrite_static_batch(original, 1))
    assert native.form.grouped_conv == "native"
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


def test_edge_rewrites_are_listed_in_order():
    assert [r.name for r in rewrites.EDGE_REWRITES] == [
        "static_batch", "native_grouped_conv", "shortcut_pool_as_dwconv", "relu_on_branch", "shuffle_after_dw",
        "shuffle"]


def test_edge_form_names_the_failing_rewrite(small_model, monkeypatch):
    def broken(model, batch, shuffle):
        raise RuntimeError("boom\nsecond line")

    broken_list = tuple(rewrites.Rewrite(r.name, broken) if r.name == "static_batch" else r
                        for r in rewrites.EDGE_REWRITES)
    monkeypatch.setattr(rewrites, "EDGE_REWRITES", broken_list)
    with pytest.raises(ConversionError, match=r"^rewrite static_batch failed: boom$"):
        rewrites.edge_form(small_model())


@pytest.mark.parametrize("kwargs,culprit", [({"batch": 0}, "batch=0"), ({"shuffle": "roll"}, "shuffle=roll")])
def test_edge_form_rejects_bad_options(small_model, kwargs, culprit):
    with pytest.raises(InvalidArgumentError, match=culprit):
        rewrites.edge_form(small_model(), **kwargs)
