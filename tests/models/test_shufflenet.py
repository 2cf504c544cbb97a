"""The Keras builder: shuffle definition, rank, names; every variant builds to its parameter count and runs,
saves and loads."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edgeshuffle.models.complexity import total_params  # noqa: E402
from edgeshuffle.models.io import load_model, save_model  # noqa: E402
from edgeshuffle.models.layers import ChannelShuffle  # noqa: E402
from edgeshuffle.models.shufflenet import build_shufflenet  # noqa: E402
from edgeshuffle.models.variants import GROUPS, SCALES, ModelSpec  # noqa: E402


def paper_shuffle(x: np.ndarray, groups: int) -> np.ndarray:
    """Zhang et al. Fig. 1(c), written directly: output channel j*g + i is input channel i*n + j."""
    channels = x.shape[-1]
    n = channels // groups
    out = np.empty_like(x)
    for i in range(groups):
        for j in range(n):
            out[..., j * groups + i] = x[..., i * n + j]
    return out


@pytest.mark.parametrize("groups,channels", [(2, 8), (3, 12), (3, 60), (4, 16), (8, 48), (8, 384)])
@pytest.mark.parametrize("impl", ["reshape", "gather"])
def test_channel_shuffle_is_the_papers(groups, channels, impl):
    x = np.random.default_rng(0).normal(size=(2, 5, 3, channels)).astype("float32")
    y = np.asarray(ChannelShuffle(groups, impl=impl)(x))
    np.testing.assert_array_equal(y, paper_shuffle(x, groups))


def test_official_shuffle_order_is_the_inverse():
    x = np.random.default_rng(1).normal(size=(1, 2, 2, 24)).astype("float32")
    official = np.asarray(ChannelShuffle(3, order="official")(x))
    np.testing.assert_array_equal(paper_shuffle(official, 3), x)


def _ranks(model):
    for layer in model.layers:
        outputs = layer.output if isinstance(layer.output, list) else [layer.output]
        for tensor in outputs:
            yield layer.name, len(tensor.shape)


@pytest.mark.parametrize("groups", GROUPS)
@pytest.mark.parametrize("scale", SCALES)
def test_every_variant_builds_with_its_parameter_count_and_rank_4(groups, scale):
    spec = ModelSpec(groups=groups, scale=scale, input_size=32, classes=7)
    model = build_shufflenet(spec)
    assert model.count_params() == total_params(spec)
    assert max(rank for _, rank in _ranks(model)) <= 4


# Running, saving and loading do not depend on the width: every group count once, the scales spread over them.
@pytest.mark.parametrize("groups,scale", list(zip(GROUPS, SCALES)))
def test_variants_run_save_and_load(tmp_path, groups, scale):
    spec = ModelSpec(groups=groups, scale=scale, input_size=32, classes=7)
    model = build_shufflenet(spec)
    x = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype("float32")
    y = np.asarray(model(x))
    assert y.shape == (2, 7) and np.isfinite(y).all()
    save_model(model, tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.spec == spec
    np.testing.assert_array_equal(np.asarray(loaded(x)), y)


@pytest.mark.parametrize("groups", [1, 3, 8])
def test_cifar_stem_and_headless(groups):
    spec = ModelSpec(groups=groups, scale=0.5, input_size=32, classes=10, stem="cifar")
    model = build_shufflenet(spec)
    assert model.output_shape == (None, 10)
    assert model.get_layer("stem_conv").strides == (1, 1)
    assert "stem_pool" not in {layer.name for layer in model.layers}
    headless = build_shufflenet(ModelSpec(groups=groups, scale=0.5, input_size=64, include_top=False))
    assert headless.output_shape == (None, 2, 2, headless.spec.channels()[-1])


def test_layer_names_are_stable_and_paper_shaped():
    model = build_shufflenet(ModelSpec(groups=3, scale=0.5, input_size=64))
    names = [layer.name for layer in model.layers]
    unit = [n for n in names if n.startswith("stage3_unit2_")]
    assert unit == [f"stage3_unit2_{role}" for role in
                    ("gconv1", "bn1", "relu1", "shuffle", "dwconv", "bn2", "gconv2", "bn3", "add", "relu")]
    assert "stage2_unit1_pool" in names and "stage2_unit1_concat" in names
    assert isinstance(model.get_layer("stage2_unit1_gconv1"), keras.layers.Conv2D)  # not grouped
    assert names[-1] == "logits"
    # No ReLU right after any depthwise conv (paper, Sec. 3.2).
    dw_next = [names[i + 2] for i, n in enumerate(names) if n.endswith("_dwconv")]
    assert not any(n.endswith("relu") for n in dw_next)


@pytest.mark.parametrize("impl", ["split", "dense"])
@pytest.mark.parametrize("groups,channels,filters", [(2, 8, 6), (3, 12, 24), (8, 16, 32)])
def test_grouped_pointwise_conv_is_a_grouped_convolution(impl, groups, channels, filters):
    from edgeshuffle.models.layers import GroupedPointwiseConv

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 5, channels)).astype("float32")
    layer = GroupedPointwiseConv(filters, groups, impl=impl)
    layer.build(x.shape)
    kernel = rng.normal(size=(1, 1, channels // groups, filters)).astype("float32")
    layer.set_weights([kernel])
    # Direct definition: output channel o sees only the input channels of its group.
    cin, fout = channels // groups, filters // groups
    expected = np.concatenate([x[..., g * cin:(g + 1) * cin] @ kernel[0, 0, :, g * fout:(g + 1) * fout]
                               for g in range(groups)], axis=-1)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("groups,channels,filters", [(3, 12, 24), (8, 16, 32)])
def test_a_folded_shuffle_is_the_papers_shuffle_then_the_grouped_conv(groups, channels, filters):
    from edgeshuffle.models.layers import GroupedPointwiseConv

    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 4, 5, channels)).astype("float32")
    kernel = rng.normal(size=(1, 1, channels // groups, filters)).astype("float32")
    plain, folded = (GroupedPointwiseConv(filters, groups, impl="dense", input_shuffle=order)
                     for order in (None, "paper"))
    for layer in (plain, folded):
        layer.build(x.shape)
        layer.set_weights([kernel])
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(plain(paper_shuffle(x, groups))),
                               rtol=1e-5, atol=1e-5)


def test_xla_batch_norm_trains_like_keras_batch_norm():
    """The training form's BatchNorm: Keras' layer is the reference for outputs, gradients, moving stats."""
    import tensorflow as tf

    from edgeshuffle.models import layers
    from edgeshuffle.models.layers import XlaBatchNorm

    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(2.0, 3.0, size=(4, 5, 6, 8)).astype("float32"))
    upstream = tf.constant(rng.normal(size=(4, 5, 6, 8)).astype("float32"))
    weights = [rng.normal(1.0, 0.5, 8), rng.normal(0.0, 0.5, 8), rng.normal(0.0, 1.0, 8), rng.uniform(0.5, 2, 8)]
    results = []
    for layer in (keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.9),
                  XlaBatchNorm(epsilon=1e-3, momentum=0.9)):
        layer.build(x.shape)
        layer.set_weights([w.astype("float32") for w in weights])
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) * upstream)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([loss.numpy(), *(g.numpy() for g in grads), *(w.numpy() for w in layer.weights[2:]),
                        np.asarray(layer(x, training=False))])
    assert 1e-3 in layers._XLA_BATCH_NORMS  # the XLA kernels ran, not Keras' own training path
    for reference, xla in zip(*results):
        np.testing.assert_allclose(xla, reference, rtol=1e-4, atol=1e-4)
