"""Importing megvii's released ShuffleNet v1 checkpoints into the Keras model, exactly.

The official ImageNet weights (megvii-model/ShuffleNet-Series, ShuffleNetV1:
Group3 and Group8 at 0.5x, 1.0x, 1.5x and 2.0x) are PyTorch files holding
``{'state_dict': {...}}`` with ``module.``-prefixed keys (DataParallel). They
are read with ``torch.load(..., weights_only=True)`` (tensors only, never
arbitrary pickled code); torch is imported here, lazily, and nowhere else.

Every tensor is mapped by name onto a layer of the Keras model built with
:meth:`ModelSpec.official` (official channel table, (n, g) shuffle after the
depthwise conv, PyTorch padding, BatchNorm eps 1e-5, bias-free classifier,
BGR 0-255 input), so the Keras model computes what the official network does:

=====================================  ==================================
official key                           Keras layer (weight)
=====================================  ==================================
``first_conv.0.weight``                ``stem_conv`` (kernel)
``first_conv.1.*``                     ``stem_bn``
``features.{i}.branch_main_1.0``       ``stage{s}_unit{u}_gconv1``
``features.{i}.branch_main_1.1.*``     ``stage{s}_unit{u}_bn1``
``features.{i}.branch_main_1.3``       ``stage{s}_unit{u}_dwconv``
``features.{i}.branch_main_1.4.*``     ``stage{s}_unit{u}_bn2``
``features.{i}.branch_main_2.0``       ``stage{s}_unit{u}_gconv2``
``features.{i}.branch_main_2.1.*``     ``stage{s}_unit{u}_bn3``
``classifier.0.weight``                ``logits`` (kernel)
=====================================  ==================================

Layouts: a PyTorch conv weight is (out, in / groups, kh, kw), a Keras one
(kh, kw, in / groups, out); both frameworks keep group k's outputs
contiguous, so a grouped 1x1 conv maps with the same transpose. A depthwise
weight (C, 1, 3, 3) becomes (3, 3, C, 1); a Linear (classes, C) becomes a
Dense kernel (C, classes). BatchNorm ``weight, bias, running_mean,
running_var`` become ``gamma, beta, moving_mean, moving_variance``;
``num_batches_tracked`` is ignored.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgeshuffle.errors import EdgeShuffleError, InputFileError
from edgeshuffle.models.complexity import units
from edgeshuffle.models.variants import OFFICIAL_CHANNELS, ModelSpec

logger = logging.getLogger(__name__)

# The names of the released files, for messages and the README.
OFFICIAL_FILES = {(g, s): f"ShuffleNetV1-Group{g}-{s:.1f}x" for g, s in OFFICIAL_CHANNELS}

_BN_FIELDS = ("weight", "bias", "running_mean", "running_var")  # Keras: gamma, beta, mean, variance
_IGNORED_SUFFIX = ".num_batches_tracked"
_CONV_TO_KERAS = (2, 3, 1, 0)  # (out, in/g, kh, kw) -> (kh, kw, in/g, out)
_DEPTHWISE_TO_KERAS = (2, 3, 0, 1)  # (C, 1, kh, kw) -> (kh, kw, C, 1)
_LINEAR_TO_KERAS = (1, 0)  # (classes, C) -> (C, classes)
_LISTED = 4  # names shown per category in a one-line error
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC = b"\x80\x02\x8a"  # pickle protocol 2, then the magic number as a LONG1


class CheckpointMismatchError(InputFileError):
    """The checkpoint's tensors do not fit the requested variant (missing, unexpected, mis-shaped)."""


@dataclasses.dataclass(frozen=True)
class TensorSlot:
    """Where one official tensor goes: a Keras layer, the weight's index in it, and the layout change."""

    key: str
    shape: tuple[int, ...]  # the PyTorch shape the official network has
    layer: str
    index: int
    transpose: tuple[int, ...] | None


@dataclasses.dataclass(frozen=True)
class ImportReport:
    """What an import did: the variant, the tensors it assigned and the ones it ignored."""

    checkpoint: str
    model: str
    groups: int
    scale: float
    input_size: int
    classes: int
    tensors: int
    parameters: int
    ignored: int  # num_batches_tracked tensors, which Keras does not keep

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _conv_slot(key: str, shape: tuple[int, ...], layer: str, transpose=_CONV_TO_KERAS) -> TensorSlot:
    return TensorSlot(key, shape, layer, 0, transpose)


def _bn_slots(prefix: str, channels: int, layer: str) -> list[TensorSlot]:
    return [TensorSlot(f"{prefix}.{field}", (channels,), layer, index, None)
            for index, field in enumerate(_BN_FIELDS)]


def official_layout(spec: ModelSpec) -> dict[str, TensorSlot]:
    """Every tensor of the official network for ``spec``, by its (unprefixed) state-dict key.

    The shapes are the PyTorch ones, derived from the variant alone (not from
    a Keras model), so a checkpoint can be checked before anything is built.
    """
    stem = spec.channels()[0]
    slots = [_conv_slot("first_conv.0.weight", (stem, 3, 3, 3), "stem_conv"),
             *_bn_slots("first_conv.1", stem, "stem_bn")]
    for i, unit in enumerate(units(spec)):
        p, mid, out = unit.prefix, unit.bottleneck, unit.branch_channels
        main1, main2 = f"features.{i}.branch_main_1", f"features.{i}.branch_main_2"
        slots += [
            _conv_slot(f"{main1}.0.weight", (mid, unit.in_channels // unit.first_groups, 1, 1), f"{p}_gconv1"),
            *_bn_slots(f"{main1}.1", mid, f"{p}_bn1"),
            _conv_slot(f"{main1}.3.weight", (mid, 1, 3, 3), f"{p}_dwconv", _DEPTHWISE_TO_KERAS),
            *_bn_slots(f"{main1}.4", mid, f"{p}_bn2"),
            _conv_slot(f"{main2}.0.weight", (out, mid // unit.groups, 1, 1), f"{p}_gconv2"),
            *_bn_slots(f"{main2}.1", out, f"{p}_bn3"),
        ]
    if spec.include_top:
        slots.append(_conv_slot("classifier.0.weight", (spec.classes, spec.channels()[-1]), "logits",
                                _LINEAR_TO_KERAS))
    return {slot.key: slot for slot in slots}


def _torch():
    try:
        import torch
    except ImportError:
        raise EdgeShuffleError("reading PyTorch checkpoints needs torch: "
                               "pip install 'edgeshuffle[import]'") from None
    return torch


def read_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """The float32 tensors of an official checkpoint by unprefixed key (``num_batches_tracked`` kept).

    Accepts ``{'state_dict': {...}}`` (the released files) or a bare state
    dict, keys with or without the ``module.`` prefix. Loads with
    ``weights_only=True``: only tensors and plain containers are unpickled.

    Raises:
        InputFileError: a missing, truncated or corrupt file, a file that is
            not a PyTorch checkpoint, one that holds Python objects other than
            tensors, or one without a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"no checkpoint file at {path}")
    torch = _torch()
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as error:
        raise InputFileError(f"cannot read {path}: {error.strerror}") from None
    # torch.save writes a zip archive (torch >= 1.6) or, before that, a pickle that starts
    # with the protocol-2 magic number: a failure to load either means a damaged file.
    saved_by_torch = head.startswith((_ZIP_MAGIC, _LEGACY_MAGIC))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        if found:
            raise InputFileError(f"refused {path}: it holds pickled Python objects ({found.group(1)}), "
                                 "which safe loading (weights_only=True) does not run") from None
        raise _load_error(path, saved_by_torch) from None
    except Exception:  # torch raises many kinds (RuntimeError, OSError, EOFError, ...)
        raise _load_error(path, saved_by_torch) from None
    return _state_dict(obj, path, torch)


def _load_error(path: Path, saved_by_torch: bool) -> InputFileError:
    try:
        with zipfile.ZipFile(path) as archive:
            if not any(name.endswith("/data.pkl") for name in archive.namelist()):
                return InputFileError(f"not a PyTorch checkpoint: {path} (a zip archive torch did not write)")
    except (zipfile.BadZipFile, OSError):
        pass
    if saved_by_torch:
        return InputFileError(f"truncated or corrupt checkpoint: {path}")
    return InputFileError(f"not a PyTorch checkpoint: {path}")


def _state_dict(obj: Any, path: Path, torch) -> dict[str, np.ndarray]:
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise InputFileError(f"not a model checkpoint: {path} holds a {type(obj).__name__}, "
                             "not a state dict")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise InputFileError(f"not a model checkpoint: {path} has no 'state_dict' and no tensors")
    state = {}
    for key, tensor in tensors.items():
        tensor = tensor.detach().cpu()
        state[key.removeprefix("module.")] = (tensor.float() if tensor.is_floating_point() else tensor).numpy()
    return state


def _listing(title: str, names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    more = f" (+{len(names) - _LISTED} more)" if len(names) > _LISTED else ""
    return f"{len(names)} {title} ({shown}{more})" if names else f"0 {title}"


def _mismatches(state: Mapping[str, np.ndarray], layout: Mapping[str, TensorSlot]):
    keys = {k for k in state if not k.endswith(_IGNORED_SUFFIX)}
    missing = sorted(set(layout) - keys, key=_natural)
    unexpected = sorted(keys - set(layout), key=_natural)
    misshaped = sorted((k for k in keys & set(layout) if tuple(state[k].shape) != layout[k].shape), key=_natural)
    return missing, unexpected, misshaped


def _natural(key: str):
    return [int(part) if part.isdigit() else part for part in key.split(".")]


def matching_variants(state: Mapping[str, np.ndarray], classes: int) -> list[tuple[int, float]]:
    """The official (groups, scale) whose every tensor shape this state dict has."""
    found = []
    for groups, scale in OFFICIAL_CHANNELS:
        spec = ModelSpec.official(groups, scale, classes=classes)
        if not any(_mismatches(state, official_layout(spec))):
            found.append((groups, scale))
    return found


def check_checkpoint(state: Mapping[str, np.ndarray], spec: ModelSpec, source: str = "checkpoint") -> None:
    """Raise a one-line :class:`CheckpointMismatchError` unless ``state`` fits ``spec`` exactly."""
    layout = official_layout(spec)
    missing, unexpected, misshaped = _mismatches(state, layout)
    if not (missing or unexpected or misshaped):
        return
    if not any(k.startswith(("first_conv.", "features.", "classifier.")) for k in state):
        raise CheckpointMismatchError(f"not a ShuffleNet v1 checkpoint: {source} has none of the official "
                                      f"tensors; it holds {_listing('tensors', sorted(state, key=_natural))}")
    shapes = [f"{k} {tuple(state[k].shape)} vs {layout[k].shape}" for k in misshaped]
    hint = ""
    guesses = matching_variants(state, spec.classes)
    if guesses:
        hint = "; it fits " + " or ".join(f"--groups {g} --scale {s:g}" for g, s in guesses)
    raise CheckpointMismatchError(
        f"{source} does not fit {spec.name} (g={spec.groups} {spec.scale:g}x, {spec.classes} classes): "
        f"{_listing('missing', missing)}, {_listing('unexpected', unexpected)}, "
        f"{_listing('mis-shaped', shapes)}{hint}")


def assign_official_weights(model, state: Mapping[str, np.ndarray], source: str = "checkpoint") -> int:
    """Copy an official state dict into a Keras ShuffleNet, by name; returns the tensors assigned.

    The model's own spec decides the expected layout, so this also loads
    official weights into a model with other conventions (the tests use that
    to show each official convention matters).

    Raises:
        CheckpointMismatchError: missing, unexpected or mis-shaped tensors.
    """
    spec = model.spec
    check_checkpoint(state, spec, source)
    layout = official_layout(spec)
    by_layer: dict[str, list[TensorSlot]] = {}
    for slot in layout.values():
        by_layer.setdefault(slot.layer, []).append(slot)
    for name, slots in by_layer.items():
        layer = model.get_layer(name)
        weights = layer.get_weights()
        if len(weights) != len(slots):
            raise EdgeShuffleError(f"internal: layer {name} has {len(weights)} weights, "
                                   f"the official layout {len(slots)}")
        for slot in slots:
            value = state[slot.key]
            if slot.transpose is not None:
                value = np.transpose(value, slot.transpose)
            if value.shape != weights[slot.index].shape:
                raise EdgeShuffleError(f"internal: {slot.key} maps to shape {value.shape}, "
                                       f"layer {name} wants {weights[slot.index].shape}")
            weights[slot.index] = np.ascontiguousarray(value, dtype=weights[slot.index].dtype)
        layer.set_weights(weights)
    return len(layout)


def infer_classes(state: Mapping[str, np.ndarray], default: int = 1000) -> int:
    weight = state.get("classifier.0.weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim == 2 else default


def import_official(checkpoint: Path, groups: int, scale: float, input_size: int = 224,
                    classes: int | None = None):
    """Build :meth:`ModelSpec.official` for the variant and load a released checkpoint into it.

    Args:
        checkpoint: a ``.pth.tar`` file (``{'state_dict': ...}`` or a bare state dict).
        groups, scale: the variant (g=3 or 8; 0.5, 1, 1.5 or 2).
        input_size: the Keras model's input size (224 for the released
            weights' accuracy; any multiple of 32 works).
        classes: number of classes; default read from the checkpoint's classifier.

    Returns:
        ``(model, report)``: a :class:`ShuffleNetV1` whose spec records the
        official preprocessing, and an :class:`ImportReport`.

    Raises:
        InvalidArgumentError: a variant the official release does not have.
        InputFileError: an unreadable or non-checkpoint file, or a checkpoint
            of another variant (:class:`CheckpointMismatchError`).
    """
    from edgeshuffle.models.shufflenet import build_shufflenet

    spec_classes = classes if classes is not None else 1000
    ModelSpec.official(groups, scale, input_size, spec_classes)  # validate the options first
    state = read_checkpoint(checkpoint)
    if classes is None:
        classes = infer_classes(state)
    spec = ModelSpec.official(groups, scale, input_size, classes)
    check_checkpoint(state, spec, str(checkpoint))
    model = build_shufflenet(spec)
    assigned = assign_official_weights(model, state, str(checkpoint))
    ignored = sum(1 for k in state if k.endswith(_IGNORED_SUFFIX))
    logger.info("assigned %d tensors from %s to %s (ignored %d num_batches_tracked)",
                assigned, checkpoint, spec.name, ignored)
    report = ImportReport(str(checkpoint), spec.name, groups, scale, input_size, classes, assigned,
                          model.count_params(), ignored)
    return model, report
