"""The shuffle-after-depthwise pass and the folded training form compute the same function (random weights
and BN statistics)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeshuffle.graph import rewrite
from edgeshuffle.graph.passes import PASSES
from edgeshuffle.models.layers import ChannelShuffle, shuffle_permutation
from edgeshuffle.models.shufflenet import build_shufflenet, rebuild
from edgeshuffle.models.variants import GraphForm, ModelSpec


def _after_dw(model):
    """The model with only the shuffle_after_depthwise pass applied (Keras can run it)."""
    return rewrite(model, passes=[p for p in PASSES if p.name == "shuffle_after_depthwise"]).model


def _randomize(model, seed: int = 0):
    """Random weights everywhere, including BatchNorm mean/variance far from (0, 1)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name.endswith(("_bn", "_bn1", "_bn2", "_bn3")):
            gamma, beta, mean, var = weights
            weights = [rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.5, beta.shape),
                       rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2.0, var.shape)]
        else:
            weights = [rng.normal(0, 0.3, w.shape) for w in weights]
        layer.set_weights([w.astype(np.float32) for w in weights])
    return model


def _inputs(spec: ModelSpec, count: int = 2, seed: int = 1):
    return np.random.default_rng(seed).normal(0, 1, (count, spec.input_size, spec.input_size, 3)).astype(np.float32)


def _shuffle_inputs(model) -> list[str]:
    """Name of the layer feeding each shuffle."""
    return [layer.input._keras_history.operation.name
            for layer in model.layers if isinstance(layer, ChannelShuffle)]


@pytest.mark.parametrize("groups,order", [(3, "paper"), (8, "paper"), (3, "official")])
def test_shuffle_after_dw_is_exact(groups, order):
    spec = ModelSpec(groups=groups, scale=0.5, input_size=32, classes=10, shuffle_order=order)
    model = _randomize(build_shufflenet(spec))
    moved = _after_dw(model)
    # The shuffle really moved: it now reads the BatchNorm after the depthwise conv.
    assert all(name.endswith("_bn2") for name in _shuffle_inputs(moved))
    assert all(name.endswith("_relu1") for name in _shuffle_inputs(model))
    # The depthwise weights really changed (a no-op rewrite would also pass the output check
    # only if the permutation were the identity, which it is not for g > 1).
    before = model.get_layer("stage2_unit2_dwconv").get_weights()[0]
    after = moved.get_layer("stage2_unit2_dwconv").get_weights()[0]
    assert not np.allclose(before, after)
    x = _inputs(spec)
    reference = model.predict(x, verbose=0)
    # Random weights give logits in the thousands: float32 reordering error scales with them.
    np.testing.assert_allclose(moved.predict(x, verbose=0), reference, rtol=0,
                               atol=1e-5 * np.abs(reference).max())
    # Only the depthwise convs and their BatchNorms changed: every other layer has its weights, bit for bit.
    for layer in model.layers:
        if layer.weights and not layer.name.endswith(("_dwconv", "_bn2")):
            for w0, w1 in zip(layer.get_weights(), moved.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(w0, w1)


@pytest.mark.parametrize("groups,order", [(3, "paper"), (4, "official")])
def test_a_folded_shuffle_is_exact_and_moves_no_activations(groups, order):
    """The training form folds the shuffle into the second grouped conv's kernel rows."""
    spec = ModelSpec(groups=groups, scale=0.5, input_size=32, classes=10, shuffle_order=order)
    model = _randomize(build_shufflenet(spec))
    folded = rebuild(model, GraphForm(grouped_conv="dense", shuffle="folded"))
    assert _shuffle_inputs(folded) == [] and _shuffle_inputs(model)
    x = _inputs(spec)
    reference = model.predict(x, verbose=0)
    np.testing.assert_allclose(folded.predict(x, verbose=0), reference, rtol=0,
                               atol=1e-5 * np.abs(reference).max())
    back = rebuild(folded, GraphForm())
    for layer in model.layers:
        for w0, w1 in zip(layer.get_weights(), back.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(w0, w1)


def test_moved_weights_follow_the_permutation():
    """Independent of rebuild's code: channel perm[c] of the new kernel is channel c of the old one."""
    spec = ModelSpec(groups=3, scale=0.5, input_size=32, classes=10)
    model = _randomize(build_shufflenet(spec), seed=3)
    moved = _after_dw(model)
    old = model.get_layer("stage3_unit1_dwconv").get_weights()[0]
    new = moved.get_layer("stage3_unit1_dwconv").get_weights()[0]
    perm = shuffle_permutation(old.shape[2], 3)
    for c in range(old.shape[2]):
        np.testing.assert_array_equal(new[:, :, perm[c]], old[:, :, c])


def test_official_position_is_unaffected():
    """A spec that already shuffles after the depthwise conv keeps its graph and weights."""
    spec = ModelSpec.official(groups=3, scale=0.5, input_size=32, classes=10)
    model = _randomize(build_shufflenet(spec), seed=2)
    moved = rewrite(model, passes=[p for p in PASSES if p.name == "shuffle_after_depthwise"])
    assert moved.report.passes[0].fired == 0
    moved = moved.model
    x = _inputs(spec)
    np.testing.assert_array_equal(moved.predict(x, verbose=0), model.predict(x, verbose=0))


def test_bad_flag_is_refused():
    from edgeshuffle.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="shuffle=planar"):
        GraphForm(shuffle="planar")  # an export form: the passes write it, not the builder


@pytest.mark.parametrize("impl", ["reshape", "planar", "gather"])
@pytest.mark.parametrize("groups,order", [(3, "paper"), (8, "paper"), (3, "official"), (4, "official")])
def test_shuffle_impls_are_the_permutation(impl, groups, order):
    """Every formulation equals the numpy definition x[..., perm] (batch 2, non-square channels per group)."""
    channels = groups * 6
    x = np.random.default_rng(4).normal(size=(2, 5, 3, channels)).astype(np.float32)
    layer = ChannelShuffle(groups, order=order, impl=impl)
    perm = np.arange(channels).reshape((groups, 6) if order == "paper" else (6, groups)).T.reshape(-1)
    np.testing.assert_array_equal(np.asarray(layer(x)), x[..., perm])
