import json

import pytest
from click.testing import CliRunner

from edgeshuffle.cli import main


def test_info_json_totals_match_paper():
    result = CliRunner().invoke(main, ["info", "--groups", "8", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert abs(data["macs"] / 137e6 - 1) <= 0.03
    assert sum(stage["macs"] for stage in data["stages"]) == data["macs"]


def test_info_table():
    result = CliRunner().invoke(main, ["info", "--scale", "0.5", "--stem", "cifar"])
    assert result.exit_code == 0
    assert "shufflenet_v1_g3_0.5x_cifar" in result.output and "stage4" in result.output


@pytest.mark.parametrize("args,culprit", [
    (["--input-size", "100"], "input_size=100"),
    (["--classes", "0"], "classes=0"),
    (["--groups", "5"], "'5'"),
    (["--scale", "3"], "'3'"),
])
def test_info_rejects_bad_values_in_one_line(args, culprit):
    result = CliRunner().invoke(main, ["info", *args])
    assert result.exit_code == 2
    assert culprit in result.output
    assert "Traceback" not in result.output
