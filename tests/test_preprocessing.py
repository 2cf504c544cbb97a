"""Preprocessing for models that carry none: presets against Keras applications' own preprocess_input, options,
labels files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeshuffle.data.images import load_rgb, preprocess
from edgeshuffle.errors import InputFileError, InvalidArgumentError
from edgeshuffle.metadata import read_labels
from edgeshuffle.preprocessing import PRESETS, Preprocessing, PreprocessingOptions

IMAGES = Path(__file__).resolve().parents[1] / "calibration" / "imagenet-val-200"


def _real_pixels(size: int = 48) -> list[Image.Image]:
    """Three real photographs, resized to size x size (so preprocess only normalises)."""
    paths = sorted(IMAGES.glob("*.JPEG"))[:3]
    return [load_rgb(p).resize((size, size), Image.BILINEAR) for p in paths]


@pytest.mark.parametrize("mode", sorted(PRESETS))
def test_presets_match_keras_applications_preprocess_input(mode):
    keras = pytest.importorskip("keras")
    from keras.applications import imagenet_utils

    pre = PreprocessingOptions(preset=mode, resize_size=48).resolve(48)
    for image in _real_pixels():
        ours = preprocess(image, pre)
        theirs = imagenet_utils.preprocess_input(np.asarray(image, dtype=np.float32)[None].copy(),
                                                 data_format="channels_last", mode=mode)[0]
        assert np.abs(np.asarray(theirs) - ours).max() < 1e-4, mode
    assert keras  # keras.applications is the independent reference


def test_explicit_values_override_the_preset_and_the_base():
    options = PreprocessingOptions(preset="caffe", std=(2.0, 2.0, 2.0))
    pre = options.resolve(32)
    assert pre.mean == PRESETS["caffe"]["mean"] and pre.std == (2.0, 2.0, 2.0) and pre.channel_order == "BGR"
    assert (pre.input_size, pre.resize_size) == (32, 37)  # ImageNet's 0.875 crop by default
    base = Preprocessing.cifar(32)  # a ShuffleNet's own: its resize and interpolation stay
    pre = PreprocessingOptions(mean=(1.0, 2.0, 3.0), channel_order="BGR").resolve(32, base)
    assert (pre.mean, pre.std, pre.channel_order, pre.resize_size) == ((1.0, 2.0, 3.0), base.std, "BGR", 32)
    assert PreprocessingOptions(resize_size=40).resolve(32, base).resize_size == 40
    assert not PreprocessingOptions().given and PreprocessingOptions(preset="tf").given


@pytest.mark.parametrize("options, culprit", [
    (dict(mean=(1.0, 2.0)), "mean=1,2"),
    (dict(std=(0.0, 1.0, 1.0)), "std=0,1,1"),
    (dict(preset="imagenet"), "preprocess=imagenet"),
    (dict(channel_order="RBG"), "channel_order=RBG"),
])
def test_bad_options_are_refused_naming_the_value(options, culprit):
    with pytest.raises(InvalidArgumentError, match=culprit):
        PreprocessingOptions(**options)


def test_a_resize_below_the_input_size_contradicts_the_model():
    with pytest.raises(InvalidArgumentError, match=r"input size \(32\).*resize=16"):
        PreprocessingOptions(resize_size=16).resolve(32)


def test_labels_file_one_name_a_line(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("  tench\ngoldfish \r\ngreat white shark\n\n\n")
    assert read_labels(path) == ("tench", "goldfish", "great white shark")


@pytest.mark.parametrize("content", [b"", b"\n \n", b"a\n\nb\n", b"\xff\xfe\x00bad"])
def test_unusable_labels_files_are_refused(tmp_path, content):
    path = tmp_path / "labels.txt"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match="labels.txt"):
        read_labels(path)
    with pytest.raises(InputFileError, match="missing.txt"):
        read_labels(tmp_path / "missing.txt")


def test_options_on_a_shufflenet_must_agree_with_its_input_size():
    pytest.importorskip("keras")
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.source import source_model
    from edgeshuffle.models.variants import ModelSpec

    model = build_shufflenet(ModelSpec(groups=3, scale=0.25, input_size=32, classes=10, stem="cifar"))
    source = source_model(model, preprocessing=PreprocessingOptions(preset="tf"))
    assert source.preprocessing == Preprocessing(input_size=32, resize_size=32, mean=(127.5,) * 3, std=(127.5,) * 3)
    assert source_model(model, preprocessing=PreprocessingOptions()).preprocessing == model.spec.preprocessing
    with pytest.raises(InvalidArgumentError, match="resize=24"):
        source_model(model, preprocessing=PreprocessingOptions(resize_size=24))
    with pytest.raises(InvalidArgumentError, match="input_size=64"):
        source_model(model, preprocessing=Preprocessing(input_size=64))
