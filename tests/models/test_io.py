"""Loading .keras files: safe mode on, and clear one-line refusals."""

import os

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edgeshuffle.errors import InputFileError  # noqa: E402
from edgeshuffle.models.io import load_model, load_shufflenet, save_model  # noqa: E402


def test_a_model_carrying_a_lambda_layer_is_refused(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(InputFileError, match="Lambda"):
        load_model(path)


def test_any_keras_model_loads_but_only_a_shufflenet_trains(tmp_path):
    inputs = keras.Input((8, 8, 3))
    path = tmp_path / "other.keras"
    original = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    original.save(path)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(load_model(path)(x), original(x))
    with pytest.raises(InputFileError, match="not an edgeshuffle ShuffleNet"):
        load_shufflenet(path)


def test_a_lambda_file_needs_trust_code(tmp_path):
    inputs = keras.Input((8, 8, 3))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, keras.layers.Lambda(lambda z: z * 2.0)(inputs)).save(path)
    with pytest.raises(InputFileError, match="--trust-code"):
        load_model(path)
    x = np.ones((1, 8, 8, 3), "float32")
    np.testing.assert_array_equal(load_model(path, trust_code=True)(x), 2 * x)


@pytest.mark.parametrize("content", [b"", os.urandom(2048), b"PK\x03\x04" + os.urandom(100)])
def test_broken_files_are_refused_in_one_line(tmp_path, content):
    path = tmp_path / "broken.keras"
    path.write_bytes(content)
    with pytest.raises(InputFileError) as error:
        load_model(path)
    assert "\n" not in str(error.value) and "broken.keras" in str(error.value)


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path):
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.variants import ModelSpec

    model = build_shufflenet(ModelSpec(groups=2, scale=0.25, input_size=32, classes=3))
    path = tmp_path / "m.keras"
    save_model(model, path)
    before = path.read_bytes()

    class Exploding(keras.layers.Layer):
        def get_config(self):
            raise RuntimeError("boom")

    broken = keras.Sequential([keras.Input((2,)), Exploding()])
    with pytest.raises(RuntimeError):
        save_model(broken, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]
    np.testing.assert_array_equal(load_model(path).get_weights()[0], model.get_weights()[0])


def test_metadata_inside_model_keras_round_trips_and_keras_ignores_it(tmp_path):
    import zipfile

    from edgeshuffle.metadata import KERAS_ENTRY, ArtifactMetadata, read_metadata
    from edgeshuffle.preprocessing import PreprocessingOptions

    inputs = keras.Input((16, 16, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(pooled), name="mine")
    metadata = ArtifactMetadata(preprocessing=PreprocessingOptions(preset="caffe").resolve(16),
                                class_names=("a", "b", "c"), name="mine")
    path = tmp_path / "model.keras"
    save_model(model, path, metadata=metadata)
    assert KERAS_ENTRY in zipfile.ZipFile(path).namelist()
    assert read_metadata(path) == metadata
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_array_equal(keras.saving.load_model(path)(x), model(x))  # Keras' own loader
    save_model(model, tmp_path / "bare.keras")
    assert read_metadata(tmp_path / "bare.keras") is None  # a foreign model without the entry


def test_a_shufflenet_without_the_entry_falls_back_to_its_spec(tmp_path):
    from edgeshuffle.metadata import read_metadata
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.variants import ModelSpec

    spec = ModelSpec(groups=3, scale=0.25, input_size=32, classes=10, stem="cifar")
    save_model(build_shufflenet(spec), tmp_path / "m.keras")
    assert read_metadata(tmp_path / "m.keras").spec == spec
