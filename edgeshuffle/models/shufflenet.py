"""ShuffleNet v1 in Keras (Zhang et al., 2017, arXiv:1707.01083).

Reference: "ShuffleNet: An Extremely Efficient Convolutional Neural Network
for Mobile Devices", Table 1 and Figure 2. Every layer has a stable name,
``stem_*``, ``stage{s}_unit{u}_{role}``, ``global_pool`` and ``logits``, so a
tensor can be matched across Keras, TFLite and ONNX.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from edgeshuffle.models.complexity import Unit, units
from edgeshuffle.models.layers import (PACKAGE, ChannelShuffle, GroupedPointwiseConv, ShortcutAvgPool,
                                       XlaBatchNorm, shuffle_permutation)
from edgeshuffle.models.variants import GraphForm, ModelSpec


@keras.saving.register_keras_serializable(package=PACKAGE)
class ShuffleNetV1(keras.Model):
    """A functional Keras model that carries its :class:`ModelSpec` and :class:`GraphForm`.

    The spec (variant, class names, preprocessing) is saved in the ``.keras``
    file with the model, so every later step reads it from there.
    """

    def __init__(self, *args, edgeshuffle: dict[str, Any], **kwargs):
        # (*args, **kwargs) keeps Keras' functional (de)serialization; the
        # spec and form travel in the config under "edgeshuffle".
        super().__init__(*args, **kwargs)
        self.spec = ModelSpec.from_dict(edgeshuffle["spec"])
        self.form = GraphForm.from_dict(edgeshuffle["form"])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(),
                "edgeshuffle": {"spec": self.spec.to_dict(), "form": self.form.to_dict()}}


def _batch_norm(x, spec: ModelSpec, form: GraphForm, name: str):
    layer = XlaBatchNorm if form.batch_norm == "xla" else keras.layers.BatchNormalization
    return layer(epsilon=spec.bn_epsilon, momentum=0.9, name=name)(x)


def _pad_for(spec: ModelSpec, stride: int, x, name: str):
    """PyTorch pads stride-2 3x3 windows symmetrically; Keras' 'same' pads after only."""
    if spec.padding == "pytorch" and stride == 2:
        return keras.layers.ZeroPadding2D(1, name=name)(x), "valid"
    return x, "same"


def _pointwise(x, filters: int, groups: int, form: GraphForm, name: str, input_shuffle: str | None = None):
    if groups == 1:
        return keras.layers.Conv2D(filters, 1, use_bias=False, name=name)(x)
    return GroupedPointwiseConv(filters, groups, impl=form.grouped_conv, input_shuffle=input_shuffle, name=name)(x)


def _shuffle(x, spec: ModelSpec, form: GraphForm, name: str):
    if spec.groups == 1:
        return x
    return ChannelShuffle(spec.groups, order=spec.shuffle_order, name=name)(x)


def shuffles_after_dw(spec: ModelSpec, form: GraphForm) -> bool:
    """Whether the graph shuffles after the depthwise conv (and its BatchNorm) rather than before."""
    return spec.shuffle_position == "after_dw" or form.shuffle == "folded"


def _stem(x, spec: ModelSpec, form: GraphForm):
    channels = spec.channels()[0]
    if spec.stem == "cifar":
        x = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, name="stem_conv")(x)
        x = _batch_norm(x, spec, form, "stem_bn")
        return keras.layers.ReLU(name="stem_relu")(x)
    x, padding = _pad_for(spec, 2, x, "stem_pad")
    x = keras.layers.Conv2D(channels, 3, strides=2, padding=padding, use_bias=False, name="stem_conv")(x)
    x = _batch_norm(x, spec, form, "stem_bn")
    x = keras.layers.ReLU(name="stem_relu")(x)
    # Zero padding equals PyTorch's -inf padding here: the input is a ReLU output.
    x, padding = _pad_for(spec, 2, x, "stem_pool_pad")
    return keras.layers.MaxPooling2D(3, strides=2, padding=padding, name="stem_pool")(x)


def _unit(x, unit: Unit, spec: ModelSpec, form: GraphForm):
    """Figure 2 (b) for stride 1, (c) for stride 2: GConv-BN-ReLU-shuffle-DWConv-BN-GConv-BN."""
    p = unit.prefix
    branch = _pointwise(x, unit.bottleneck, unit.first_groups, form, f"{p}_gconv1")
    branch = _batch_norm(branch, spec, form, f"{p}_bn1")
    branch = keras.layers.ReLU(name=f"{p}_relu1")(branch)
    after_dw = shuffles_after_dw(spec, form)
    if not after_dw:
        branch = _shuffle(branch, spec, form, f"{p}_shuffle")
    branch, padding = _pad_for(spec, unit.stride, branch, f"{p}_dwpad")
    branch = keras.layers.DepthwiseConv2D(3, strides=unit.stride, padding=padding, use_bias=False,
                                          name=f"{p}_dwconv")(branch)
    branch = _batch_norm(branch, spec, form, f"{p}_bn2")  # no ReLU after the depthwise conv (paper, 3.2)
    folded = form.shuffle == "folded" and spec.groups > 1
    if after_dw and not folded:
        branch = _shuffle(branch, spec, form, f"{p}_shuffle")
    branch = _pointwise(branch, unit.branch_channels, unit.groups, form, f"{p}_gconv2",
                        input_shuffle=spec.shuffle_order if folded else None)
    branch = _batch_norm(branch, spec, form, f"{p}_bn3")
    if unit.stride == 1:
        x = keras.layers.Add(name=f"{p}_add")([x, branch])
        return keras.layers.ReLU(name=f"{p}_relu")(x)
    shortcut = ShortcutAvgPool(padding=spec.padding, name=f"{p}_pool")(x)
    x = keras.layers.Concatenate(name=f"{p}_concat")([shortcut, branch])
    return keras.layers.ReLU(name=f"{p}_relu")(x)


def build_shufflenet(spec: ModelSpec | None = None, form: GraphForm | None = None) -> ShuffleNetV1:
    """Build a ShuffleNet v1 with fresh weights.

    Args:
        spec: what the network computes (variant, head, conventions); default
            the paper's 1x g=3 at 224x224 with 1000 classes.
        form: how it is written as a graph; default per-group convs and the
            reshape shuffle (the edge forms come from :mod:`edgeshuffle.graph`).

    Returns:
        A :class:`ShuffleNetV1` taking ``(batch, size, size, 3)`` float
        inputs, preprocessed as ``spec.preprocessing`` says, and returning
        logits (``include_top``) or the Stage 4 feature map.
    """
    spec = spec or ModelSpec()
    form = form or GraphForm()
    inputs = keras.Input((spec.input_size, spec.input_size, 3), name="input")
    x = _stem(inputs, spec, form)
    for unit in units(spec):
        x = _unit(x, unit, spec, form)
    if spec.include_top:
        x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
        x = keras.layers.Dense(spec.classes, use_bias=spec.classifier_bias, name="logits")(x)
    return ShuffleNetV1(inputs, x, name=spec.name,
                        edgeshuffle={"spec": spec.to_dict(), "form": form.to_dict()})


def shufflenet_v1(groups: int = 3, scale: float = 1.0, input_size: int = 224, classes: int = 1000,
                  include_top: bool = True, stem: str = "imagenet",
                  class_names: list[str] | None = None) -> ShuffleNetV1:
    """The paper's ShuffleNet v1 by its Table 1 knobs; see :class:`ModelSpec` for the rest.

    Raises:
        InvalidArgumentError: an unsupported ``groups`` or ``scale``, an input
            size that is not a multiple of 32, or fewer than one class.
    """
    spec = ModelSpec(groups=groups, scale=scale, input_size=input_size, classes=classes,
                     include_top=include_top, stem=stem,
                     class_names=tuple(class_names) if class_names else None)
    return build_shufflenet(spec)


def rebuild(model: ShuffleNetV1, form: GraphForm) -> ShuffleNetV1:
    """The same network with the same weights, written in another graph form.

    Weights are matched by layer name; every form has the same layers with
    weights, of the same shapes (the forms differ in ops, not in parameters).
    When the shuffle moves across the depthwise conv (a form that folds it
    into the next grouped conv),
    each unit's ``dwconv`` kernel and ``bn2`` parameters are permuted with
    it: shuffle-then-per-channel-op equals the per-channel op with channel
    ``c``'s parameters moved to ``perm[c]``, then the shuffle.
    """
    clone = build_shufflenet(model.spec, form)
    moved = model.spec.groups > 1 and shuffles_after_dw(model.spec, model.form) != shuffles_after_dw(
        model.spec, form)
    for layer in clone.layers:
        if not layer.weights:
            continue  # e.g. a shuffle layer, which a form with the shuffle folded in lacks
        weights = model.get_layer(layer.name).get_weights()
        if moved and layer.name.endswith(("_dwconv", "_bn2")) and layer.name.startswith("stage"):
            channels = weights[0].shape[2] if layer.name.endswith("_dwconv") else weights[0].shape[0]
            perm = shuffle_permutation(channels, model.spec.groups, model.spec.shuffle_order)
            # before -> after: new[perm[c]] = old[c]; after -> before: new[c] = old[perm[c]].
            index = np.argsort(perm) if shuffles_after_dw(model.spec, form) else perm
            axis = 2 if layer.name.endswith("_dwconv") else 0
            weights = [np.take(w, index, axis=axis) for w in weights]
        layer.set_weights(weights)
    return clone

