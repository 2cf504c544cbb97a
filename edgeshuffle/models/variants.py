"""The ShuffleNet v1 variant table: what a network computes, without Keras.

Everything here is plain Python so that `edgeshuffle info`, the board-side
tools and the reports can reason about a variant without TensorFlow.

Channel rule (documented in docs/model.md): a stage's output channels are the
paper's Table 1 figure for the group count times the scale, rounded to the
nearest multiple of ``4 * groups`` (at least ``4 * groups``), so that the
bottleneck (a quarter of the output) and both grouped 1x1 convs divide evenly.
The stem width follows the paper's complexity figures (12 channels at 0.25x
and 0.5x, 24 at 1x and 1.5x, 48 at 2x) rounded up to a multiple of the group
count, so that the stride-2 branch of Stage 2 (output minus stem channels)
divides into groups too. At 1x every paper figure is already such a multiple,
so 1x is exactly the paper.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Literal

from edgeshuffle.preprocessing import Preprocessing
from edgeshuffle.errors import InvalidArgumentError, require

GROUPS = (1, 2, 3, 4, 8)
SCALES = (0.25, 0.5, 1.0, 1.5, 2.0)
STEMS = ("imagenet", "cifar")

# Paper, Table 1: output channels of Stages 2, 3, 4 at 1x.
PAPER_STAGE_CHANNELS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
# Stem width per scale that reproduces the paper's complexity figures.
PAPER_STEM_CHANNELS = {0.25: 12, 0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}

# megvii-model/ShuffleNet-Series (ShuffleNetV1/network.py): (stem, s2, s3, s4).
OFFICIAL_CHANNELS = {
    (3, 0.5): (12, 120, 240, 480),
    (3, 1.0): (24, 240, 480, 960),
    (3, 1.5): (24, 360, 720, 1440),
    (3, 2.0): (48, 480, 960, 1920),
    (8, 0.5): (16, 192, 384, 768),
    (8, 1.0): (24, 384, 768, 1536),
    (8, 1.5): (24, 576, 1152, 2304),
    (8, 2.0): (48, 768, 1536, 3072),
}

# Units per stage: one stride-2 unit, then 3, 7, 3 stride-1 units.
STAGE_REPEATS = (4, 8, 4)




@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a ShuffleNet v1 computes: the variant, its head and its conventions.

    The defaults are the paper's network (arXiv:1707.01083). The ``official_*``
    family of fields (channel table, shuffle order and position, padding,
    BatchNorm epsilon, classifier bias) exists to reproduce megvii's released
    checkpoints exactly; see :meth:`official`.
    """

    groups: int = 3
    scale: float = 1.0
    input_size: int = 224
    classes: int = 1000
    include_top: bool = True
    stem: Literal["imagenet", "cifar"] = "imagenet"
    channel_table: Literal["paper", "official"] = "paper"
    shuffle_order: Literal["paper", "official"] = "paper"
    shuffle_position: Literal["before_dw", "after_dw"] = "before_dw"
    padding: Literal["keras", "pytorch"] = "keras"
    bn_epsilon: float = 1e-3
    classifier_bias: bool = True
    class_names: tuple[str, ...] | None = None
    preprocessing: Preprocessing | None = None

    def __post_init__(self) -> None:
        require(self.groups in GROUPS, f"Groups must be one of {GROUPS}.", "groups", self.groups)
        require(self.scale in SCALES, f"Scale must be one of {SCALES}.", "scale", self.scale)
        require(isinstance(self.input_size, int) and self.input_size >= 32 and self.input_size % 32 == 0,
                 "Input size must be a multiple of 32, at least 32.", "input_size", self.input_size)
        require(isinstance(self.classes, int) and self.classes >= 1,
                 "Classes must be at least 1.", "classes", self.classes)
        require(self.stem in STEMS, f"Stem must be one of {STEMS}.", "stem", self.stem)
        require(self.channel_table in ("paper", "official"), "Channel table must be paper or official.",
                 "channel_table", self.channel_table)
        if self.channel_table == "official":
            require((self.groups, self.scale) in OFFICIAL_CHANNELS,
                     "The official channel table has g=3 and g=8 at 0.5x, 1.0x, 1.5x and 2.0x only.",
                     "groups, scale", (self.groups, self.scale))
        require(self.shuffle_order in ("paper", "official"), "Shuffle order must be paper or official.",
                 "shuffle_order", self.shuffle_order)
        require(self.shuffle_position in ("before_dw", "after_dw"),
                 "Shuffle position must be before_dw or after_dw.", "shuffle_position", self.shuffle_position)
        require(self.padding in ("keras", "pytorch"), "Padding must be keras or pytorch.",
                 "padding", self.padding)
        require(self.bn_epsilon > 0, "BatchNorm epsilon must be positive.", "bn_epsilon", self.bn_epsilon)
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
            require(len(self.class_names) == self.classes, "Need one class name per class.",
                     "class_names", f"<{len(self.class_names)} names for {self.classes} classes>")
        if self.preprocessing is None:
            default = Preprocessing.cifar if self.stem == "cifar" else Preprocessing.imagenet
            object.__setattr__(self, "preprocessing", default(self.input_size))
        require(self.preprocessing.input_size == self.input_size,
                 "Preprocessing input size must match the model's.", "preprocessing.input_size",
                 self.preprocessing.input_size)

    @classmethod
    def official(cls, groups: int = 3, scale: float = 1.0, input_size: int = 224,
                 classes: int = 1000) -> "ModelSpec":
        """The network of megvii-model/ShuffleNet-Series, whose checkpoints `import` reads."""
        return cls(groups=groups, scale=scale, input_size=input_size, classes=classes,
                   channel_table="official", shuffle_order="official", shuffle_position="after_dw",
                   padding="pytorch", bn_epsilon=1e-5, classifier_bias=False,
                   preprocessing=Preprocessing.official(input_size))

    @property
    def name(self) -> str:
        suffix = "_cifar" if self.stem == "cifar" else ""
        official = "_official" if self.channel_table == "official" else ""
        return f"shufflenet_v1_g{self.groups}_{self.scale:g}x{suffix}{official}"

    def channels(self) -> tuple[int, int, int, int]:
        """(stem, stage 2, stage 3, stage 4) output channels."""
        if self.channel_table == "official":
            return OFFICIAL_CHANNELS[(self.groups, self.scale)]
        unit = 4 * self.groups
        stages = tuple(max(unit, unit * math.floor(c * self.scale / unit + 0.5))
                       for c in PAPER_STAGE_CHANNELS[self.groups])
        stem = self.groups * math.ceil(PAPER_STEM_CHANNELS[self.scale] / self.groups)
        return (stem, *stages)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["class_names"] = list(self.class_names) if self.class_names is not None else None
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise InvalidArgumentError(f"Unknown model spec fields: {', '.join(unknown)}")
        data = dict(data)
        if data.get("preprocessing") is not None:
            data["preprocessing"] = Preprocessing.from_dict(data["preprocessing"])
        if data.get("class_names") is not None:
            data["class_names"] = tuple(data["class_names"])
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class GraphForm:
    """How the network is written as a Keras graph for training; every form computes the same function.

    The forms for edge runtimes are not written here: the passes of
    :mod:`edgeshuffle.graph` rewrite any model's graph for them.

    - ``grouped_conv``: ``"split"`` (one conv per group and a concat; runs
      everywhere) or ``"dense"`` (one conv with a block-diagonal kernel; the
      fastest to train on CPU).
    - ``shuffle``: ``"reshape"`` (rank-4 reshape/transpose/reshape) or
      ``"folded"`` (no shuffle op: the shuffle moves after the depthwise conv,
      where it is the input of the second grouped 1x1 conv, and that conv
      takes it in by permuting its kernel's rows; needs
      ``grouped_conv="dense"``; a training form, the fastest on CPU).
    - ``batch_norm``: ``"keras"`` (Keras' BatchNormalization) or ``"xla"``
      (the same layer, but in training its forward and hand-written backward
      pass are each one XLA-compiled kernel: BatchNorm's many small
      elementwise ops were half of a CPU training step; inference unchanged).
    """

    grouped_conv: Literal["split", "dense"] = "split"
    shuffle: Literal["reshape", "folded"] = "reshape"
    batch_norm: Literal["keras", "xla"] = "keras"

    def __post_init__(self) -> None:
        require(self.grouped_conv in ("split", "dense"), "grouped_conv must be split or dense.",
                 "grouped_conv", self.grouped_conv)
        require(self.shuffle in ("reshape", "folded"), "shuffle must be reshape or folded.", "shuffle", self.shuffle)
        require(self.shuffle != "folded" or self.grouped_conv == "dense",
                 "A folded shuffle needs grouped_conv=dense.", "shuffle", self.shuffle)
        require(self.batch_norm in ("keras", "xla"), "batch_norm must be keras or xla.",
                 "batch_norm", self.batch_norm)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GraphForm":
        """The form of a saved model; keys of export forms that older files carry are ignored."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})
