"""The passes take what they prove and leave the rest: near misses pass through unchanged."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras import layers  # noqa: E402

from edgeshuffle.graph import RewriteOptions, rewrite  # noqa: E402
from edgeshuffle.graph.passes import PASSES  # noqa: E402


def _fired(model, *names, shuffle="reshape"):
    result = rewrite(model, RewriteOptions(shuffle=shuffle), passes=[p for p in PASSES if p.name in names])
    return result, {p.name: p.fired for p in result.report.passes}


def _model(body, channels=6):
    inputs = keras.Input((4, 5, channels))
    return keras.Model(inputs, body(inputs))


def _x(model):
    return np.random.default_rng(0).normal(size=(1, *model.input_shape[1:])).astype(np.float32)


@pytest.mark.parametrize("body,fires", [
    (lambda x: layers.Lambda(lambda z: z[..., ::-1])(x), 0),  # a permutation, but no shuffle
    (lambda x: layers.Lambda(lambda z: z * 2.0)(x), 0),  # moves nothing: arithmetic
    (lambda x: layers.Lambda(lambda z: z + 0.0)(x), 1),  # the identity: removed
    (lambda x: layers.Permute((1, 2, 3))(x), 1),  # an identity Permute: removed
], ids=["reverse", "scale", "identity-lambda", "identity-permute"])
def test_channel_shuffle_takes_only_what_it_proves(body, fires):
    model = _model(body)
    result, fired = _fired(model, "channel_shuffle")
    assert fired["channel_shuffle"] == fires
    x = _x(model)
    np.testing.assert_array_equal(np.asarray(result.model(x)), np.asarray(model(x)))


def test_a_shuffle_written_as_a_custom_layer_is_found():
    class Shuffle(keras.layers.Layer):  # a user's own layer, paper order, g=3
        def call(self, z):
            return keras.ops.take(z, np.arange(6).reshape(3, 2).T.reshape(-1), axis=-1)

    from edgeshuffle.models.layers import ChannelShuffle

    perm = np.arange(6).reshape(3, 2).T.reshape(-1)
    model = _model(lambda x: Shuffle()(x))
    result, fired = _fired(model, "channel_shuffle", shuffle="planar")
    assert fired["channel_shuffle"] == 1
    (shuffle,) = [layer for layer in result.model.layers if isinstance(layer, ChannelShuffle)]
    assert shuffle.impl == "planar"  # paper order with g=3 is official order with g=2: either is this one
    x = _x(model)
    np.testing.assert_array_equal(np.asarray(result.model(x)), x[..., perm])


def _sliced(x, widths):
    starts = np.cumsum([0, *widths[:-1]])
    parts = [layers.Lambda(lambda z, s=s, w=w: z[..., s:s + w])(x) for s, w in zip(starts, widths)]
    return layers.Concatenate()([layers.Conv2D(4, 1)(p) for p in parts])


@pytest.mark.parametrize("widths,fires", [((3, 3), 1), ((2, 4), 0), ((3, 2), 0)],
                         ids=["groups", "unequal", "not-covering"])
def test_sliced_convs_merge_only_when_they_are_a_grouped_conv(widths, fires):
    _, fired = _fired(_model(lambda x: _sliced(x, widths)), "grouped_conv")
    assert fired["grouped_conv"] == fires


def test_a_concat_read_elsewhere_keeps_its_relu():
    def body(x):
        concat = layers.Concatenate()([layers.Conv2D(3, 1)(x), layers.Conv2D(3, 1)(x)])
        return layers.Add()([layers.ReLU()(concat), concat])

    model = _model(body)
    result, fired = _fired(model, "relu_before_concat")
    assert fired["relu_before_concat"] == 0
    x = _x(model)
    np.testing.assert_array_equal(np.asarray(result.model(x)), np.asarray(model(x)))


def test_sequential_models_are_read_too():
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3), layers.AveragePooling2D(3, 2, "same"),
                              layers.GlobalAveragePooling2D(), layers.Dense(2)])
    result, fired = _fired(model, "static_batch", "average_pool")
    assert fired == {"static_batch": 1, "average_pool": 1} and result.model.input_shape == (1, 8, 8, 3)
    x = _x(model)
    np.testing.assert_allclose(np.asarray(result.model(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)
