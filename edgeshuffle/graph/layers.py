"""Layers the passes write into the edge graph (export only)."""

from __future__ import annotations

import keras

from edgeshuffle.models.layers import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class NativeGroupedConv(keras.layers.Layer):
    """A grouped 2-D convolution as one TensorFlow ``Conv2D`` op with a (kh, kw, C_in / groups, filters) kernel.

    TFLite turns it into one grouped ``CONV_2D`` (XNNPACK delegates it) and
    tf2onnx into ``Conv(group=groups)``. Keras' ``Conv2D(groups=g)`` computes
    the same but runs on TensorFlow's CPU through a slow XLA path and fails
    in tf2onnx; TensorFlow's own CPU kernels cannot run this op at all, so
    this layer is for tracing the edge graph, not for Keras inference.
    """

    def __init__(self, filters: int, kernel_size=(1, 1), groups: int = 1, strides=(1, 1), padding: str = "valid",
                 use_bias: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.groups, self.use_bias = filters, groups, use_bias
        self.kernel_size, self.strides = tuple(kernel_size), tuple(strides)
        self.padding = padding

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self.groups or self.filters % self.groups:
            raise ValueError(f"Channels must divide into groups. Received: `channels={channels}`, "
                             f"`filters={self.filters}`, `groups={self.groups}`")
        self.kernel = self.add_weight(name="kernel", shape=(*self.kernel_size, channels // self.groups,
                                                             self.filters))
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias \
            else None

    def call(self, x):
        import tensorflow as tf  # export path only

        y = tf.nn.conv2d(x, self.kernel, strides=self.strides, padding=self.padding.upper())
        return y + self.bias if self.use_bias else y

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        size = [None if n is None else (-(-n // s) if self.padding == "same" else (n - k) // s + 1)
                for n, k, s in zip((height, width), self.kernel_size, self.strides)]
        return (batch, *size, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "groups": self.groups, "strides": self.strides, "padding": self.padding, "use_bias": self.use_bias}
