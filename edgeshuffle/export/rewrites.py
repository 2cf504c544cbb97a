"""Exact graph rewrites for edge runtimes: the same function, written with ops they run well.

Each rewrite is one small function ``rewrite_<name>(model, ...)`` returning a
new :class:`~edgeshuffle.models.shufflenet.ShuffleNetV1` with the same weights
in another :class:`~edgeshuffle.models.variants.GraphForm` (a thin wrapper
over :func:`~edgeshuffle.models.shufflenet.rebuild`); its docstring says why
the result computes the same function. :data:`EDGE_REWRITES` lists them in the
order :func:`edge_form` applies them; a rewrite that fails is named in the
:class:`~edgeshuffle.errors.ConversionError`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from edgeshuffle.errors import ConversionError, EdgeShuffleError, InvalidArgumentError

log = logging.getLogger(__name__)

SHUFFLES = ("reshape", "planar", "gather")
# Measured with benchmarks/bench_convert_float.py (docs/performance.md):
# the reshape shuffle keeps the float graph in one XNNPACK partition and is faster
# than gather; `export_float` (float TFLite and ONNX, whose post-pass rewrites the
# reshape shuffle into one NCHW Transpose) passes "reshape" explicitly.
# Measured with benchmarks/bench_shuffle.py (docs/performance.md): in
# int8 TFLite the planar shuffle is the cheapest; edge_form's default, used by
# `quantize` for int8.tflite.
DEFAULT_SHUFFLE = "planar"


def _with_form(model, **changes):
    from edgeshuffle.models.shufflenet import rebuild

    return rebuild(model, dataclasses.replace(model.form, **changes))


def rewrite_static_batch(model, batch: int = 1):
    """Fix the batch dimension to ``batch``.

    Exact: no layer mixes samples, so every sample's output is the same
    whatever the batch size. With a known batch, TFLite's converter folds the
    ``SHAPE``/``STRIDED_SLICE``/``PACK`` chains it otherwise puts in front of
    every reshape (the shuffle's), which also split the XNNPACK delegate.
    """
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise InvalidArgumentError(f"Batch must be a positive integer. Received: `batch={batch}`")
    return _with_form(model, batch=batch)


def rewrite_native_grouped_conv(model):
    """Write each grouped 1x1 conv as one TensorFlow ``Conv2D`` with a C_in/g-channel kernel.

    Exact: the split form convolves group i of the input with columns
    ``[i*F/g, (i+1)*F/g)`` of the same kernel and concatenates; that is the
    definition of a grouped convolution, which TFLite runs as one grouped
    ``CONV_2D`` (XNNPACK takes it) and tf2onnx writes as ``Conv(group=g)``.
    Same kernel tensor, same layer names, so the weights carry over unchanged.
    TensorFlow's own CPU kernels cannot run this form: Keras-side inference
    uses the split form.
    """
    return _with_form(model, grouped_conv="native")


def rewrite_shortcut_pool_as_dwconv(model):
    """Write the stride-2 shortcut's 3x3 average pool as a depthwise conv and a constant multiply.

    Exact (to float rounding): a 3x3 stride-2 depthwise conv with weights 1/9
    sums the window's taps / 9; multiplying each output position by
    9 / (taps inside the image) gives Keras' ``'same'`` average, which counts
    only the taps inside (PyTorch padding counts all 9 and needs no multiply).
    XNNPACK delegates both ops in int8, unlike ``AVERAGE_POOL_2D``.
    """
    return _with_form(model, shortcut_pool="dwconv")


def rewrite_relu_on_branch(model):
    """Move a stride-2 unit's ReLU from after the concat onto the branch before it.

    Exact: ReLU acts per channel, so ReLU(concat(a, b)) = concat(ReLU(a),
    ReLU(b)), and the shortcut ``a`` is an average of the previous unit's
    ReLU (or max-pool of ReLU) outputs, never negative, so ReLU(a) = a. The
    branch ReLU then fuses into the conv before it.
    """
    return _with_form(model, relu="branch")


def rewrite_shuffle_after_dw(model):
    """Shuffle after the depthwise conv and its BatchNorm instead of before (paper-position specs).

    Exact: a depthwise conv, its padding and a BatchNorm act channel by
    channel, so applying them to the shuffled channels equals applying them,
    with channel ``c``'s kernel and statistics moved to ``perm[c]``, before
    the shuffle; :func:`~edgeshuffle.models.shufflenet.rebuild` moves them.
    In a stride-2 unit the shuffle then moves a quarter of the bytes.
    A spec that already shuffles there (megvii's) is unchanged.
    """
    return _with_form(model, shuffle_after_dw=True)


def rewrite_shuffle(model, impl: str = DEFAULT_SHUFFLE):
    """Write the channel shuffle as ``impl``: ``"reshape"`` (rank-4 reshape/transpose),
    ``"planar"`` (two transposes through a channel-major view) or ``"gather"``.

    Exact: all move every channel to the same place (the paper's
    permutation, :func:`~edgeshuffle.models.layers.shuffle_permutation`);
    none creates a tensor above rank 4.
    """
    if impl not in SHUFFLES:
        raise InvalidArgumentError(f"Shuffle must be one of {SHUFFLES}. Received: `shuffle={impl}`")
    return _with_form(model, shuffle=impl)


@dataclasses.dataclass(frozen=True)
class Rewrite:
    name: str
    apply: Callable  # (model, batch, shuffle) -> model


# The edge form, in the order it is built. Each entry names one rewrite above.
EDGE_REWRITES: tuple[Rewrite, ...] = (
    Rewrite("static_batch", lambda model, batch, shuffle: rewrite_static_batch(model, batch)),
    Rewrite("native_grouped_conv", lambda model, batch, shuffle: rewrite_native_grouped_conv(model)),
    Rewrite("shortcut_pool_as_dwconv", lambda model, batch, shuffle: rewrite_shortcut_pool_as_dwconv(model)),
    Rewrite("relu_on_branch", lambda model, batch, shuffle: rewrite_relu_on_branch(model)),
    Rewrite("shuffle_after_dw", lambda model, batch, shuffle: rewrite_shuffle_after_dw(model)),
    Rewrite("shuffle", lambda model, batch, shuffle: rewrite_shuffle(model, shuffle)),
)


def edge_form(model, batch: int = 1, shuffle: str = DEFAULT_SHUFFLE):
    """The model rewritten for edge runtimes: every rewrite of :data:`EDGE_REWRITES`, in order.

    Result form: ``GraphForm(batch=batch, grouped_conv="native",
    shortcut_pool="dwconv", relu="branch", shuffle_after_dw=True,
    shuffle=shuffle)``: one XNNPACK
    partition in float and int8 TFLite, ``Conv(group=g)`` in ONNX. Keras
    cannot execute it on CPU (native grouped convs); it is for tracing.

    Raises:
        InvalidArgumentError: a bad ``batch`` or ``shuffle``.
        ConversionError: a rewrite failed (its name is in the message).
    """
    if shuffle not in SHUFFLES:  # before any rebuild
        raise InvalidArgumentError(f"Shuffle must be one of {SHUFFLES}. Received: `shuffle={shuffle}`")
    for rewrite in EDGE_REWRITES:
        try:
            model = rewrite.apply(model, batch, shuffle)
        except EdgeShuffleError:
            raise
        except Exception as error:  # a Keras rebuild error: say which rewrite hit it
            first_line = (str(error).splitlines() or [type(error).__name__])[0]
            raise ConversionError(f"rewrite {rewrite.name} failed: {first_line}") from error
        log.debug("rewrite %s -> %s", rewrite.name, model.form)
    return model


def reference_form(model):
    """The form Keras can execute on CPU (split grouped convs); the parity reference.

    Returns ``model`` itself when it is already in that form.
    """
    if model.form.grouped_conv == "split":
        return model
    return _with_form(model, grouped_conv="split")
