"""The variant table against the paper (arXiv:1707.01083, Tables 1 and 2)."""

import pytest

from edgeshuffle.errors import InvalidArgumentError
from edgeshuffle.models.complexity import total_macs, total_params, units
from edgeshuffle.models.variants import GROUPS, SCALES, ModelSpec

# Paper, Table 2 (1x) and Table 1/8 figures for scaled g=3, in millions of multiply-adds.
PAPER_MFLOPS = [
    (1, 1.0, 143), (2, 1.0, 140), (3, 1.0, 137), (4, 1.0, 133), (8, 1.0, 137),
    (3, 0.5, 38), (3, 0.25, 13), (3, 1.5, 292), (3, 2.0, 524),
]


@pytest.mark.parametrize("groups,scale,paper", PAPER_MFLOPS)
def test_multiply_adds_match_the_paper(groups, scale, paper):
    macs = total_macs(ModelSpec(groups=groups, scale=scale)) / 1e6
    assert abs(macs / paper - 1) <= 0.03, f"{macs:.1f} M vs paper {paper} M"


def test_1x_g3_has_1_9_million_parameters():
    assert abs(total_params(ModelSpec(groups=3, scale=1.0)) / 1.9e6 - 1) <= 0.03


@pytest.mark.parametrize("groups", GROUPS)
def test_1x_channels_are_the_papers_table_1(groups):
    table = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088),
             8: (384, 768, 1536)}
    assert ModelSpec(groups=groups).channels()[1:] == table[groups]


@pytest.mark.parametrize("groups", GROUPS)
@pytest.mark.parametrize("scale", SCALES)
def test_every_grouped_conv_divides_evenly(groups, scale):
    for unit in units(ModelSpec(groups=groups, scale=scale)):
        assert unit.in_channels % unit.first_groups == 0
        assert unit.bottleneck % groups == 0
        assert unit.branch_channels % groups == 0 and unit.branch_channels > 0


def test_stage_layout_is_1_plus_3_7_3_units():
    stages = [u.stage for u in units(ModelSpec())]
    assert [stages.count(s) for s in (2, 3, 4)] == [4, 8, 4]
    assert [u.stride for u in units(ModelSpec()) if u.index == 1] == [2, 2, 2]
    assert units(ModelSpec())[0].first_groups == 1  # Stage 2's first pointwise conv is not grouped


@pytest.mark.parametrize("field,value", [
    ("groups", 5), ("scale", 0.75), ("input_size", 100), ("input_size", 0), ("classes", 0), ("stem", "tiny"),
])
def test_bad_arguments_name_the_value(field, value):
    with pytest.raises(InvalidArgumentError, match=f"Received: `{field}={value}`"):
        ModelSpec(**{field: value})


def test_official_table_is_only_for_released_variants():
    assert ModelSpec.official(groups=8, scale=0.5).channels()[0] == 16
    with pytest.raises(InvalidArgumentError):
        ModelSpec.official(groups=4, scale=1.0)


def test_spec_round_trips_through_a_dict():
    spec = ModelSpec(groups=2, scale=0.5, input_size=64, classes=3, class_names=("a", "b", "c"))
    assert ModelSpec.from_dict(spec.to_dict()) == spec
