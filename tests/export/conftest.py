import numpy as np
import pytest


def randomize_batchnorm(model, seed=0):
    """Non-trivial BatchNorm statistics, so that a rewrite that drops or moves an op shows."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.5, channels),
                               rng.normal(0, 0.3, channels), rng.uniform(0.5, 2.0, channels)])
    return model


@pytest.fixture(scope="session")
def small_model():
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.variants import ModelSpec

    cache = {}

    def make(groups=3, scale=0.25, input_size=32, **kw):
        """A small model with random BatchNorm statistics; built once per spec (do not modify it)."""
        spec = kw.pop("spec", None) or ModelSpec(groups=groups, scale=scale, input_size=input_size, classes=10, **kw)
        if spec not in cache:
            cache[spec] = randomize_batchnorm(build_shufflenet(spec))
        return cache[spec]

    return make
