"""The user's model as edgeshuffle takes it: any Keras image classifier, checked, with preprocessing and labels."""

import re

import pytest

keras = pytest.importorskip("keras")

from edgeshuffle.errors import InputFileError, InvalidArgumentError  # noqa: E402
from edgeshuffle.models.source import source_model  # noqa: E402
from edgeshuffle.preprocessing import Preprocessing  # noqa: E402


def _classifier(size=16, classes=4):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x), name="my_net")


def test_a_foreign_classifier_gets_the_given_preprocessing_and_labels():
    pre = Preprocessing(input_size=16, resize_size=18, mean=(127.5,) * 3, std=(127.5,) * 3)
    source = source_model(_classifier(), preprocessing=pre, class_names=["a", "b", "c", "d"])
    assert source.preprocessing == pre and source.class_names == ("a", "b", "c", "d") and source.spec is None
    meta = source.metadata("int8")
    assert (meta.name, meta.precision, meta.preprocessing, meta.class_names) == ("my_net", "int8", pre, source.class_names)


def test_a_shufflenet_keeps_its_spec():
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.variants import ModelSpec

    spec = ModelSpec(groups=3, scale=0.25, input_size=32, classes=10, stem="cifar")
    source = source_model(build_shufflenet(spec))
    assert source.spec == spec and source.preprocessing == spec.preprocessing and source.name == spec.name


@pytest.mark.parametrize("build, culprit", [
    (lambda: keras.Model(*(lambda i: (i, keras.layers.Dense(3)(i)))(keras.Input((5,)))), "NHWC"),
    (lambda: keras.Model(*(lambda i: (i, keras.layers.Conv2D(3, 1)(i)))(keras.Input((8, 8, 3)))), "(batch, classes)"),
    (lambda: keras.Model(*(lambda i: (i, keras.layers.GlobalAveragePooling2D()(i)))(keras.Input((None, None, 3)))),
     "static size"),
    (lambda: (lambda i: keras.Model(i, [keras.layers.Flatten()(i), keras.layers.Flatten()(i)]))(keras.Input((4, 4, 3))),
     "2 outputs"),
])
def test_not_an_image_classifier_is_refused_naming_why(build, culprit):
    with pytest.raises(InputFileError, match=re.escape(culprit)):
        source_model(build())


def test_preprocessing_of_another_size_and_wrong_label_count_are_refused():
    with pytest.raises(InvalidArgumentError, match="input_size=32"):
        source_model(_classifier(), preprocessing=Preprocessing(input_size=32, resize_size=32))
    with pytest.raises(InvalidArgumentError, match="3 names"):
        source_model(_classifier(), class_names=["a", "b", "c"])
