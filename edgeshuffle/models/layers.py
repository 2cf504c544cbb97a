"""ShuffleNet's own Keras layers: channel shuffle, grouped 1x1 conv, shortcut pool.

Each layer has an ``impl`` that chooses how the same function is written as
graph ops (for training, :class:`edgeshuffle.models.variants.GraphForm`; for
edge runtimes, the passes of :mod:`edgeshuffle.graph`). All are registered Keras
objects (no ``Lambda``), so models load with Keras' safe mode on, and none
creates a tensor above rank 4.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

PACKAGE = "edgeshuffle"


def shuffle_permutation(channels: int, groups: int, order: str = "paper") -> np.ndarray:
    """Source channel of each output channel.

    ``"paper"``: channels viewed as (groups, n), transposed to (n, groups)
    (Zhang et al., Fig. 1c). ``"official"``: viewed as (n, groups) and
    transposed to (groups, n), as megvii's code does; the inverse permutation.
    """
    view = (groups, channels // groups) if order == "paper" else (channels // groups, groups)
    return np.arange(channels).reshape(view).T.reshape(-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelShuffle(keras.layers.Layer):
    """Channel shuffle with rank-4 tensors only.

    ``impl="reshape"``: (B, H, W, C) -> (B, H*W, a, b) -> transpose the last
    two axes -> (B, H, W, C). ``impl="planar"``: (B, H*W, a, b) -> transpose
    (0, 3, 2, 1) to (B, b, a, H*W), i.e. channel-major with the channels
    already shuffled -> view as (B, 1, C, H*W) -> transpose the last two axes
    back to (B, 1, H*W, C) -> (B, H, W, C). Two transposes instead of one, but
    both move long contiguous rows (H*W or C elements) instead of an
    a x b = g x C/g tile per pixel; XNNPACK's int8 transpose runs them about
    3x faster (docs/performance.md). ``impl="gather"``: one
    constant-index gather.
    """

    def __init__(self, groups: int, order: str = "paper", impl: str = "reshape", **kwargs):
        super().__init__(**kwargs)
        if order not in ("paper", "official") or impl not in ("reshape", "planar", "gather"):
            raise ValueError(f"Bad channel shuffle. Received: `order={order}`, `impl={impl}`")
        self.groups, self.order, self.impl = groups, order, impl

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self.groups:
            raise ValueError(f"Channels must divide into groups. Received: `channels={channels}`, "
                             f"`groups={self.groups}`")

    def call(self, x):
        _, height, width, channels = x.shape
        if self.impl == "gather":
            return ops.take(x, shuffle_permutation(channels, self.groups, self.order), axis=3)
        n = channels // self.groups
        view = (self.groups, n) if self.order == "paper" else (n, self.groups)
        x = ops.reshape(x, (-1, height * width, *view))
        if self.impl == "planar":
            x = ops.transpose(x, (0, 3, 2, 1))  # (B, b, a, H*W): channel b_j*a + a_i = input a_i*b + b_j
            x = ops.reshape(x, (-1, 1, channels, height * width))
            x = ops.transpose(x, (0, 1, 3, 2))  # back to channels-last
            return ops.reshape(x, (-1, height, width, channels))
        x = ops.transpose(x, (0, 1, 3, 2))
        return ops.reshape(x, (-1, height, width, channels))

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "order": self.order, "impl": self.impl}


@keras.saving.register_keras_serializable(package=PACKAGE)
class GroupedPointwiseConv(keras.layers.Layer):
    """A bias-free 1x1 convolution in ``groups`` groups; kernel (1, 1, C_in / groups, filters).

    ``impl="split"``: one conv per group and a concat; runs on every backend
    and device. ``impl="dense"``: one matrix product (a 1x1 conv) whose kernel is the
    block-diagonal expansion of the grouped kernel (zeros between groups):
    g times the multiply-adds, but a single large matrix product, the
    fastest form to train on CPU; the zeros get no gradient, since they are
    not weights. For export, :mod:`edgeshuffle.graph` writes it as one native
    grouped conv.

    ``input_shuffle`` (``"paper"`` or ``"official"``, dense only): a channel
    shuffle of that order folded in, applied to the input first. The
    shuffled input times the kernel equals the input times the kernel with
    its rows in the inverse order, so no op moves the activations; the
    stored kernel is the same as without the fold.
    """

    def __init__(self, filters: int, groups: int, impl: str = "split", input_shuffle: str | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if impl not in ("split", "dense") or input_shuffle not in (None, "paper", "official") or (
                input_shuffle and impl != "dense"):
            raise ValueError(f"Bad grouped conv. Received: `impl={impl}`, `input_shuffle={input_shuffle}`")
        self.filters, self.groups, self.impl, self.input_shuffle = filters, groups, impl, input_shuffle

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self.groups or self.filters % self.groups:
            raise ValueError(f"Channels must divide into groups. Received: `channels={channels}`, "
                             f"`filters={self.filters}`, `groups={self.groups}`")
        self.kernel = self.add_weight(name="kernel", shape=(1, 1, channels // self.groups, self.filters),
                                      initializer="glorot_uniform")

    def call(self, x):
        kernels = ops.split(self.kernel, self.groups, axis=-1)
        if self.impl == "dense":
            # A 1x1 conv written as a matrix product over all pixels: the same function, but
            # TensorFlow's CPU backward pass of a MatMul is faster than a 1x1 Conv2D's (up to 2.7x
            # forward plus backward for one of this network's layers, in a profile of the step).
            _, height, width, channels = x.shape
            kernel = ops.reshape(block_diagonal(kernels), (channels, self.filters))
            if self.input_shuffle:
                rows = np.argsort(shuffle_permutation(channels, self.groups, self.input_shuffle))
                kernel = ops.take(kernel, rows, axis=0)
            product = ops.matmul(ops.reshape(x, (-1, channels)), kernel)
            return ops.reshape(product, (-1, height, width, self.filters))
        inputs = ops.split(x, self.groups, axis=-1)
        return ops.concatenate([ops.conv(i, k) for i, k in zip(inputs, kernels)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "groups": self.groups, "impl": self.impl,
                "input_shuffle": self.input_shuffle}


def block_diagonal(kernels: list) -> "keras.KerasTensor":
    """(1, 1, c, f) blocks -> one (1, 1, g*c, g*f) kernel with block k at rows/columns k."""
    rows = []
    for k, block in enumerate(kernels):
        zeros = [ops.zeros_like(block)] * len(kernels)
        rows.append(ops.concatenate(zeros[:k] + [block] + zeros[k + 1:], axis=-1))
    return ops.concatenate(rows, axis=2)


def _same_padding_taps(size: int) -> np.ndarray:
    """Per output position, how many of the 3 taps of a stride-2 'same' window lie inside."""
    out = -(-size // 2)
    before = max((out - 1) * 2 + 3 - size, 0) // 2
    starts = np.arange(out) * 2 - before
    return np.array([sum(0 <= s + k < size for k in range(3)) for s in starts], dtype=np.float32)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ShortcutAvgPool(keras.layers.Layer):
    """The stride-2 unit's shortcut: a 3x3, stride-2 average pool.

    ``padding="keras"`` averages over the taps inside the image (Keras'
    ``'same'``); ``padding="pytorch"`` pads one zero on every side and always
    divides by 9 (PyTorch's ``count_include_pad``). ``impl="dwconv"`` writes
    it as a depthwise conv with constant weights 1/9 and, for ``"keras"``, a
    constant per-position multiply by 9 / (taps inside): the same numbers,
    written with ops XNNPACK delegates in int8 (it does not take int8
    ``AVERAGE_POOL_2D``).
    """

    def __init__(self, padding: str = "keras", impl: str = "avgpool", **kwargs):
        super().__init__(**kwargs)
        if padding not in ("keras", "pytorch") or impl not in ("avgpool", "dwconv"):
            raise ValueError(f"Bad shortcut pool. Received: `padding={padding}`, `impl={impl}`")
        self.padding, self.impl = padding, impl

    def call(self, x):
        if self.padding == "pytorch":
            x = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        keras_padding = "same" if self.padding == "keras" else "valid"
        if self.impl == "avgpool":
            return ops.average_pool(x, 3, 2, padding=keras_padding)
        _, height, width, channels = x.shape
        kernel = np.full((3, 3, channels, 1), 1.0 / 9.0, dtype=np.float32)
        y = ops.depthwise_conv(x, kernel, strides=2, padding=keras_padding)
        if self.padding == "pytorch":
            return y
        taps = np.outer(_same_padding_taps(height), _same_padding_taps(width))
        return y * (9.0 / taps)[None, :, :, None]

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, -(-height // 2), -(-width // 2), channels)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "impl": self.impl}


@keras.saving.register_keras_serializable(package=PACKAGE)
class XlaBatchNorm(keras.layers.BatchNormalization):
    """Keras' BatchNormalization (channels last), trained through two XLA-compiled kernels.

    In training, Keras' layer runs as a dozen small elementwise and reduction
    ops forward and more backward; on a 2-core CPU they were half of a
    ShuffleNet training step. Here the forward pass (batch moments,
    normalisation) and the hand-written backward pass are one XLA kernel each;
    the model itself stays un-compiled. Same function, same weights and the
    same moving-statistics update (biased batch variance, as Keras); inference
    is Keras' own code path. TensorFlow backend only (training is).
    """

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.axis not in (-1, len(inputs.shape) - 1):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        outputs, mean, variance = _xla_batch_norm(self.epsilon)(
            inputs, tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta))
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs


_XLA_BATCH_NORMS: dict = {}


def _xla_batch_norm(epsilon: float):
    """Training batch norm over all axes but the last, with its gradient; one per epsilon."""
    if epsilon in _XLA_BATCH_NORMS:
        return _XLA_BATCH_NORMS[epsilon]
    import tensorflow as tf

    axes = [0, 1, 2]

    @tf.function(jit_compile=True)
    def forward(x, gamma, beta):
        mean = tf.reduce_mean(x, axes)
        centred = x - mean
        variance = tf.reduce_mean(tf.square(centred), axes)
        inverse_std = tf.math.rsqrt(variance + epsilon)
        return centred * (gamma * inverse_std) + beta, mean, variance, inverse_std

    @tf.function(jit_compile=True)
    def backward(grad, x, mean, inverse_std, gamma):
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), x.dtype)
        centred = x - mean
        grad_sum = tf.reduce_sum(grad, axes)
        grad_dot_centred = tf.reduce_sum(grad * centred, axes)
        scale = gamma * inverse_std
        grad_x = scale * (grad - grad_sum / count - centred * (grad_dot_centred * tf.square(inverse_std) / count))
        return grad_x, grad_dot_centred * inverse_std, grad_sum

    @tf.custom_gradient
    def batch_norm(x, gamma, beta):
        outputs, mean, variance, inverse_std = forward(x, gamma, beta)
        # The moments feed only the moving statistics, so they pass no gradient back.
        return (outputs, mean, variance), lambda grad, _mean, _variance: backward(grad, x, mean, inverse_std, gamma)

    _XLA_BATCH_NORMS[epsilon] = batch_norm
    return batch_norm
