"""Units, parameter counts and multiply-adds of a ShuffleNet v1, in plain Python.

The Keras builder walks the same :func:`units` list, so the counts here and
the graph there cannot drift apart; tests check these counts against the
paper's Table 2 and against Keras' own parameter count.
"""

from __future__ import annotations

import dataclasses

from edgeshuffle.models.variants import STAGE_REPEATS, ModelSpec


@dataclasses.dataclass(frozen=True)
class Unit:
    """One ShuffleNet unit: where it sits and the shapes it works on."""

    stage: int
    index: int  # 1-based within the stage
    in_channels: int
    out_channels: int
    stride: int
    first_groups: int  # groups of the first 1x1 conv (1 for the first unit of Stage 2)
    groups: int
    in_size: int  # spatial size of the input feature map

    @property
    def prefix(self) -> str:
        return f"stage{self.stage}_unit{self.index}"

    @property
    def bottleneck(self) -> int:
        return self.out_channels // 4

    @property
    def branch_channels(self) -> int:
        """Output channels of the residual branch (the concat adds the shortcut's)."""
        return self.out_channels - self.in_channels if self.stride == 2 else self.out_channels

    @property
    def out_size(self) -> int:
        return self.in_size // self.stride


def stem_output_size(spec: ModelSpec) -> int:
    return spec.input_size if spec.stem == "cifar" else spec.input_size // 4


def units(spec: ModelSpec) -> list[Unit]:
    """Every unit of the network, Stage 2 to Stage 4, in order."""
    stem, *stage_channels = spec.channels()
    result = []
    in_channels, size = stem, stem_output_size(spec)
    for stage, (repeats, out_channels) in enumerate(zip(STAGE_REPEATS, stage_channels), start=2):
        for index in range(1, repeats + 1):
            stride = 2 if index == 1 else 1
            first_groups = 1 if (stage == 2 and index == 1) else spec.groups
            result.append(Unit(stage, index, in_channels, out_channels, stride, first_groups,
                               spec.groups, size))
            in_channels, size = out_channels, size // stride
    return result


@dataclasses.dataclass(frozen=True)
class StageCost:
    name: str
    output_shape: tuple[int, int, int]  # (height, width, channels)
    params: int
    macs: int


def _bn_params(channels: int) -> int:
    # gamma, beta, moving mean, moving variance: what Keras counts.
    return 4 * channels


def stage_costs(spec: ModelSpec) -> list[StageCost]:
    """Parameters and multiply-adds per stage (stem, stage2-4, classifier).

    Multiply-adds count convolutions and the classifier, as the paper does;
    pooling, BatchNorm (folded at export), additions and ReLU are not counted.
    """
    stem_channels = spec.channels()[0]
    stem_stride = 1 if spec.stem == "cifar" else 2
    conv_size = spec.input_size // stem_stride
    costs = [StageCost(
        "stem", (stem_output_size(spec), stem_output_size(spec), stem_channels),
        params=9 * 3 * stem_channels + _bn_params(stem_channels),
        macs=conv_size * conv_size * 9 * 3 * stem_channels,
    )]
    all_units = units(spec)
    for stage in (2, 3, 4):
        params = macs = 0
        for unit in (u for u in all_units if u.stage == stage):
            mid, out_area = unit.bottleneck, unit.out_size ** 2
            params += unit.in_channels // unit.first_groups * mid + _bn_params(mid)
            macs += unit.in_size ** 2 * unit.in_channels // unit.first_groups * mid
            params += 9 * mid + _bn_params(mid)
            macs += out_area * 9 * mid
            params += mid // unit.groups * unit.branch_channels + _bn_params(unit.branch_channels)
            macs += out_area * mid // unit.groups * unit.branch_channels
        last = [u for u in all_units if u.stage == stage][-1]
        costs.append(StageCost(f"stage{stage}", (last.out_size, last.out_size, last.out_channels),
                               params, macs))
    if spec.include_top:
        features = spec.channels()[-1]
        costs.append(StageCost("classifier", (1, 1, spec.classes),
                               params=features * spec.classes + (spec.classes if spec.classifier_bias else 0),
                               macs=features * spec.classes))
    return costs


def total_params(spec: ModelSpec) -> int:
    return sum(c.params for c in stage_costs(spec))


def total_macs(spec: ModelSpec) -> int:
    return sum(c.macs for c in stage_costs(spec))
