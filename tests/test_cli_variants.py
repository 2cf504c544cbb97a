"""Every spelling of a listed variant value (`1`, `1.0`, `1x`, `1.0x`; `0.5`, `.5`, `0.5x`) in every verb.

The paper and megvii's checkpoints write the scales 0.5x, 1.0x, 2.0x; the
variant names say 1x, 2x. Each spelling must reach the model's spec as the
same number, and anything else must still be refused in one line that lists
the valid values (exit 2).
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgeshuffle.cli import main
from edgeshuffle.cli.common import spec_from_options
from edgeshuffle.models.variants import SCALES

# The arguments each verb needs besides --scale to get past parsing (paths need not exist yet).
REQUIRED = {
    "info": [],
    "convert": ["-o", "out"],
    "train": ["--data", "images", "-o", "out.keras"],
    "import": ["model.pth.tar", "-g", "3", "-o", "out.keras"],
}
SPELLINGS = [("1", 1.0), ("1.0", 1.0), ("1x", 1.0), ("1.0x", 1.0), ("1.0X", 1.0), ("0.5", 0.5), (".5", 0.5),
             ("0.5x", 0.5), ("2", 2.0), ("2.0", 2.0), ("2.0x", 2.0), ("1.5x", 1.5)]


def _verbs_with_scale() -> list[str]:
    return sorted(name for name, command in main.commands.items()
                  if any(param.name == "scale" for param in command.params))


def test_the_table_names_every_verb_that_takes_scale():
    assert _verbs_with_scale() == sorted(REQUIRED)


@pytest.mark.parametrize("verb", sorted(REQUIRED))
@pytest.mark.parametrize("spelling,expected", SPELLINGS)
def test_every_spelling_parses_to_the_listed_number(verb, spelling, expected):
    command = main.commands[verb]
    with command.make_context(verb, [*REQUIRED[verb], "--scale", spelling]) as context:
        scale = context.params["scale"]
    assert type(scale) is float and scale == expected
    if verb != "import":  # import hands the number to ModelSpec.official (tested with the checkpoints)
        spec = spec_from_options(context.params["groups"], scale, None, None, "imagenet")
        assert spec.scale == expected and spec.name == f"shufflenet_v1_g3_{expected:g}x"


@pytest.mark.parametrize("spelling", ["3", "3.0"])
def test_groups_accept_int_and_float_spellings(spelling):
    with main.commands["info"].make_context("info", ["--groups", spelling]) as context:
        assert context.params["groups"] == 3 and type(context.params["groups"]) is int


@pytest.mark.parametrize("same,canonical", [("1.0", "1"), ("1.0x", "1"), ("2.0x", "2"), ("2.0", "2"),
                                            (".5", "0.5"), ("0.5x", "0.5")])
def test_info_prints_the_same_for_every_spelling(same, canonical):
    runner = CliRunner()
    expected = runner.invoke(main, ["info", "-g", "3", "-s", canonical])
    result = runner.invoke(main, ["info", "-g", "3", "-s", same])
    assert expected.exit_code == 0 and result.exit_code == 0, result.output
    assert f"shufflenet_v1_g3_{float(canonical):g}x" in result.output
    assert result.output == expected.output


@pytest.mark.parametrize("verb", sorted(REQUIRED))
@pytest.mark.parametrize("bad", ["3", "1.0y", "x", "one", "nan", "0.50.5"])
def test_anything_else_is_refused_in_one_line_listing_the_values(verb, bad):
    result = CliRunner().invoke(main, [verb, *REQUIRED[verb], "--scale", bad])
    assert result.exit_code == 2, result.output
    message = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(message) == 1 and f"'{bad}'" in message[0], result.output
    listed = SCALES if verb != "import" else (0.5, 1.0, 1.5, 2.0)
    assert "one of " + ", ".join(f"{s:g}" for s in listed) in message[0]
