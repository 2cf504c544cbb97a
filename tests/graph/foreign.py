"""Keras ShuffleNets written the way public code writes them (not by edgeshuffle), at test sizes.

``blog_shufflenet``: the layer sequence of the blog post this project started
from (5-D Reshape/Permute/Reshape shuffle, Keras 3 ``Conv2D(groups=g)`` with
bias, ``AveragePooling2D(3, 2, 'same')`` shortcut, ReLU after ``Add`` and
``Concatenate``, softmax head, dynamic batch). ``lambda_shufflenet``: grouped
convs as ``Lambda`` channel slices + one ``Conv2D`` per group + ``Concatenate``
and a ``Lambda`` shuffle (keras-shufflenet's style).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


def _blog_shuffle(x, groups):
    _, width, height, channels = x.shape
    x = layers.Reshape([width, height, channels // groups, groups])(x)
    x = layers.Permute([1, 2, 4, 3])(x)
    return layers.Reshape([width, height, channels])(x)


def _blog_unit(x, groups, channels, strides):
    y = x
    x = layers.Conv2D(channels // 4, 1, padding="same", groups=groups)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = _blog_shuffle(x, groups)
    x = layers.DepthwiseConv2D(3, strides=strides, padding="same")(x)
    x = layers.BatchNormalization()(x)
    if strides == 2:
        channels = channels - y.shape[-1]
    x = layers.Conv2D(channels, 1, padding="same", groups=groups)(x)
    if strides == 1:
        x = layers.Add()([x, y])
    else:
        y = layers.AvgPool2D(pool_size=3, strides=strides, padding="same")(y)
        x = layers.Concatenate()([x, y])
    return layers.Activation("relu")(x)


def blog_shufflenet(input_size=64, classes=10, start_channels=48, groups=2, repetitions=(3, 7, 3)):
    inputs = layers.Input((input_size, input_size, 3))
    x = layers.Conv2D(24, 3, strides=2, padding="same", use_bias=True)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.MaxPool2D(pool_size=3, strides=2, padding="same")(x)
    for i, repetition in enumerate(repetitions):
        channels = start_channels * 2 ** i
        x = _blog_unit(x, groups, channels, strides=2)
        for _ in range(repetition):
            x = _blog_unit(x, groups, channels, strides=1)
    x = layers.GlobalAvgPool2D()(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax")(x))


def _group_conv(x, filters, groups, name):
    per_group = x.shape[-1] // groups
    outputs = []
    for i in range(groups):
        part = layers.Lambda(lambda z, i=i: z[..., i * per_group:(i + 1) * per_group], name=f"{name}_slice{i}")(x)
        outputs.append(layers.Conv2D(filters // groups, 1, use_bias=False, name=f"{name}_conv{i}")(part))
    return layers.Concatenate(name=f"{name}_concat")(outputs)


def _lambda_shuffle(x, groups, name):
    def shuffle(z):
        _, height, width, channels = z.shape
        z = ops.reshape(z, (-1, height, width, groups, channels // groups))
        z = ops.transpose(z, (0, 1, 2, 4, 3))
        return ops.reshape(z, (-1, height, width, channels))

    return layers.Lambda(shuffle, name=name)(x)


def _lambda_unit(x, channels, groups, strides, name):
    branch = _group_conv(x, channels // 4, groups, f"{name}_gconv1")
    branch = layers.BatchNormalization(name=f"{name}_bn1")(branch)
    branch = layers.ReLU(name=f"{name}_relu1")(branch)
    branch = _lambda_shuffle(branch, groups, f"{name}_shuffle")
    branch = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(branch)
    branch = layers.BatchNormalization(name=f"{name}_bn2")(branch)
    out = channels if strides == 1 else channels - x.shape[-1]
    branch = _group_conv(branch, out, groups, f"{name}_gconv2")
    branch = layers.BatchNormalization(name=f"{name}_bn3")(branch)
    if strides == 1:
        return layers.ReLU(name=f"{name}_relu")(layers.Add(name=f"{name}_add")([x, branch]))
    shortcut = layers.AveragePooling2D(3, 2, padding="same", name=f"{name}_pool")(x)
    return layers.ReLU(name=f"{name}_relu")(layers.Concatenate(name=f"{name}_concat")([shortcut, branch]))


def lambda_shufflenet(input_size=64, classes=10, channels=(48, 96, 192), groups=3, repetitions=(1, 1, 1)):
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Conv2D(24, 3, strides=2, padding="same", use_bias=False, name="conv1")(inputs)
    x = layers.BatchNormalization(name="conv1_bn")(x)
    x = layers.ReLU(name="conv1_relu")(x)
    x = layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    for stage, (width, repeat) in enumerate(zip(channels, repetitions), start=2):
        x = _lambda_unit(x, width, groups, 2, f"stage{stage}_unit1")
        for unit in range(repeat):
            x = _lambda_unit(x, width, groups, 1, f"stage{stage}_unit{unit + 2}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, layers.Dense(classes, name="fc")(x), name="lambda_shufflenet")


def randomize(model, seed=0):
    """Random weights everywhere, BatchNorm statistics far from (0, 1), so a wrong rewrite shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = weights[0].shape[0]
            weights = [rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.5, channels),
                       rng.normal(0, 0.3, channels), rng.uniform(0.5, 2.0, channels)]
        else:
            weights = [rng.normal(0, 1.0 / np.sqrt(max(np.prod(w.shape[:-1]), 1)), w.shape) for w in weights]
        layer.set_weights([np.asarray(w, np.float32) for w in weights])
    return model
