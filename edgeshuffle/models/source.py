"""The model a user hands to convert or quantize: any Keras image classifier, with what it needs to run.

A :class:`SourceModel` is the user's Keras model, unchanged (it is the parity
reference), plus its preprocessing and class names. edgeshuffle's own
ShuffleNets carry both in their spec; any other model gets them from the
caller (CLI options, the Python API) or a default that is logged.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from edgeshuffle.errors import InputFileError, InvalidArgumentError
from edgeshuffle.preprocessing import Preprocessing, PreprocessingOptions

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SourceModel:
    """A Keras image classifier with one NHWC image input of static size and one (batch, classes) output."""

    model: Any  # keras.Model, as the user gave it
    preprocessing: Preprocessing
    class_names: tuple[str, ...] | None
    name: str
    spec: Any = None  # ModelSpec of an edgeshuffle ShuffleNet, else None

    @property
    def input_size(self) -> tuple[int, int]:
        _, height, width, _ = self.model.inputs[0].shape
        return height, width

    @property
    def classes(self) -> int:
        return int(self.model.outputs[0].shape[-1])

    def metadata(self, precision: str = "float32", form: dict[str, Any] | None = None):
        """The :class:`~edgeshuffle.metadata.ArtifactMetadata` of an artifact made from this model."""
        from edgeshuffle.metadata import ArtifactMetadata

        return ArtifactMetadata(preprocessing=self.preprocessing, class_names=self.class_names,
                                precision=precision, name=self.name, spec=self.spec, form=form or {})


def check_image_classifier(model, origin: str = "the model") -> tuple[int, int, int]:
    """(height, width, classes) of a model with one NHWC RGB image input of static size and one 2-D output.

    Raises:
        InputFileError: anything else, naming what is wrong.
    """
    if len(model.inputs) != 1:
        raise InputFileError(f"{origin} has {len(model.inputs)} inputs; edgeshuffle takes image classifiers "
                             "with one image input")
    if len(model.outputs) != 1:
        raise InputFileError(f"{origin} has {len(model.outputs)} outputs; edgeshuffle takes image classifiers "
                             "with one output")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[2] is None:
        raise InputFileError(f"{origin} takes input of shape {shape}; edgeshuffle needs one NHWC RGB image of "
                             "static size, (batch, height, width, 3)")
    out = tuple(model.outputs[0].shape)
    if len(out) != 2 or out[1] is None:
        raise InputFileError(f"{origin} gives output of shape {out}; edgeshuffle needs (batch, classes)")
    return int(shape[1]), int(shape[2]), int(out[1])


def source_model(model, *, preprocessing: Preprocessing | PreprocessingOptions | None = None, class_names=None,
                 trust_code: bool = False) -> SourceModel:
    """The user's model, checked, with its preprocessing and class names.

    Args:
        model: a ``keras.Model`` (functional or Sequential), a path to a
            ``.keras`` file, or a :class:`SourceModel` (returned as is when no
            override is given).
        preprocessing: overrides the model's own (an edgeshuffle ShuffleNet's
            spec); required in practice for any other model, which otherwise
            gets ImageNet mean/std at its input size (logged as a warning).
            :class:`PreprocessingOptions` (the CLI's) are resolved at the
            model's input size, on top of its own preprocessing.
        class_names: one name per output class; default: the spec's, else none.
        trust_code: load ``.keras`` files with Keras' safe mode off (``Lambda`` layers).

    Raises:
        InputFileError: not an image classifier, or an unloadable file.
        InvalidArgumentError: preprocessing of another input size, or a wrong number of class names.
    """
    if isinstance(preprocessing, PreprocessingOptions) and not preprocessing.given:
        preprocessing = None
    if isinstance(model, SourceModel):
        if preprocessing is None and class_names is None:
            return model
        model = model.model
    if isinstance(model, (str, Path)):
        from edgeshuffle.models.io import load_model

        origin = str(model)
        model = load_model(Path(model), trust_code=trust_code)
    else:
        origin = f"model '{getattr(model, 'name', type(model).__name__)}'"
    height, width, classes = check_image_classifier(model, origin)
    spec = getattr(model, "spec", None)
    if isinstance(preprocessing, PreprocessingOptions):
        if height != width:
            raise InputFileError(f"{origin} takes {height}x{width} images; preprocessing options make square "
                                 "crops (give a Preprocessing of the model's own)")
        preprocessing = preprocessing.resolve(height, spec.preprocessing if spec is not None else None)
    if preprocessing is None:
        if spec is not None:
            preprocessing = spec.preprocessing
        else:
            preprocessing = Preprocessing.imagenet(height)
            log.warning("%s carries no preprocessing: using ImageNet mean/std on RGB 0-255 pixels, resize %d, "
                        "crop %d (give the model's own)", origin, preprocessing.resize_size, height)
    if (preprocessing.input_size, preprocessing.input_size) != (height, width):
        raise InvalidArgumentError(f"Preprocessing input size must be the model's ({height}x{width}). "
                                   f"Received: `input_size={preprocessing.input_size}`")
    if class_names is None and spec is not None:
        class_names = spec.class_names
    if class_names is not None:
        class_names = tuple(str(name) for name in class_names)
        if len(class_names) != classes:
            raise InvalidArgumentError(f"Need one class name per output class ({classes}). "
                                       f"Received: `class_names=<{len(class_names)} names>`")
    name = spec.name if spec is not None else model.name
    return SourceModel(model=model, preprocessing=preprocessing, class_names=class_names, name=name, spec=spec)
