"""How a raw RGB image becomes a model's input tensor: one definition for every model and every verb.

Plain Python (no TensorFlow, no Pillow): artifacts carry it in their metadata
and the board reads it back.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from edgeshuffle.errors import require

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
CIFAR10_MEAN = (125.31, 122.95, 113.87)
CIFAR10_STD = (62.99, 62.09, 66.70)



@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How a raw RGB image becomes the model's input tensor.

    ``resize_size`` is the shorter side the image is resized to before a
    center crop of ``input_size``; equal sizes mean a plain resize. Pixels are
    taken in ``channel_order`` on a 0-255 scale, then ``(x - mean) / std`` per
    channel. Stored in every artifact so a board needs nothing else.
    """

    input_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: Literal["RGB", "BGR"] = "RGB"
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"

    def __post_init__(self) -> None:
        require(self.input_size >= 1, "Input size must be positive.", "input_size", self.input_size)
        require(self.resize_size >= self.input_size, "Resize size must be at least the input size.",
                 "resize_size", self.resize_size)
        require(len(self.mean) == 3 and len(self.std) == 3, "Mean and std need 3 values.",
                 "mean", self.mean)
        require(all(s > 0 for s in self.std), "Std values must be positive.", "std", self.std)
        require(self.channel_order in ("RGB", "BGR"), "Channel order must be RGB or BGR.",
                 "channel_order", self.channel_order)
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @classmethod
    def imagenet(cls, input_size: int = 224) -> "Preprocessing":
        return cls(input_size=input_size, resize_size=round(input_size / 0.875))

    @classmethod
    def cifar(cls, input_size: int = 32) -> "Preprocessing":
        return cls(input_size=input_size, resize_size=input_size, mean=CIFAR10_MEAN, std=CIFAR10_STD)

    @classmethod
    def official(cls, input_size: int = 224) -> "Preprocessing":
        """megvii's evaluation: BGR, 0-255, no normalisation, resize 256, crop 224."""
        return cls(input_size=input_size, resize_size=round(input_size / 0.875),
                   mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), channel_order="BGR")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessing":
        return cls(**{**data, "mean": tuple(data["mean"]), "std": tuple(data["std"])})


# The modes of Keras applications' ``preprocess_input`` (keras.applications.imagenet_utils), as mean/std on
# 0-255 pixels. Means and stds are in the model's channel order: caffe's BGR mean is (B, G, R).
PRESETS: dict[str, dict[str, Any]] = {
    "tf": {"mean": (127.5, 127.5, 127.5), "std": (127.5, 127.5, 127.5), "channel_order": "RGB"},
    "torch": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "channel_order": "RGB"},
    "caffe": {"mean": (103.939, 116.779, 123.68), "std": (1.0, 1.0, 1.0), "channel_order": "BGR"},
}


@dataclasses.dataclass(frozen=True)
class PreprocessingOptions:
    """Preprocessing as a user gives it (CLI options), before the model's input size is known.

    ``preset`` is one of :data:`PRESETS`; ``mean``, ``std``, ``channel_order``
    and ``resize_size`` given explicitly override the preset's values. Checked
    when made, so a bad option fails before any work.
    """

    preset: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: str | None = None
    resize_size: int | None = None

    def __post_init__(self) -> None:
        require(self.preset is None or self.preset in PRESETS, f"Preset must be one of {tuple(PRESETS)}.",
                 "preprocess", self.preset)
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None:
                require(len(values) == 3, f"{name.capitalize()} needs 3 values, one per channel.", name,
                         ",".join(f"{v:g}" for v in values))
                object.__setattr__(self, name, tuple(float(v) for v in values))
        if self.std is not None:
            require(all(s > 0 for s in self.std), "Std values must be positive.", "std",
                     ",".join(f"{v:g}" for v in self.std))
        require(self.channel_order in (None, "RGB", "BGR"), "Channel order must be RGB or BGR.",
                 "channel_order", self.channel_order)
        require(self.resize_size is None or self.resize_size >= 1, "Resize size must be positive.",
                 "resize", self.resize_size)

    @property
    def given(self) -> bool:
        """Whether any option was given (else the model's own preprocessing applies)."""
        return any(v is not None for v in dataclasses.asdict(self).values())

    def resolve(self, input_size: int, base: Preprocessing | None = None) -> Preprocessing:
        """The :class:`Preprocessing` of a model with this input size.

        Starts from ``base`` (the model's own, when it has one; else ImageNet
        mean/std with a resize of input/0.875), then applies the preset, then
        the explicit values.

        Raises:
            InvalidArgumentError: the options contradict the input size (a resize below it).
        """
        base = base or Preprocessing.imagenet(input_size)
        values = {**base.to_dict(), "input_size": input_size, **PRESETS.get(self.preset, {})}
        values.update({k: v for k, v in (("mean", self.mean), ("std", self.std),
                                         ("channel_order", self.channel_order)) if v is not None})
        if self.resize_size is not None:
            require(self.resize_size >= input_size, f"Resize must be at least the model's input size "
                     f"({input_size}).", "resize", self.resize_size)
            values["resize_size"] = self.resize_size
        elif values["resize_size"] < input_size:
            values["resize_size"] = round(input_size / 0.875)
        return Preprocessing(**values)
