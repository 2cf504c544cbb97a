"""`parity --logits` and the arm-check comparer (tests/arm/compare_parity.py), on the tiny runtime artifacts."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from edgeshuffle.cli import main
from tests.arm import compare_parity
from tests.runtime.conftest import artifacts  # noqa: F401  (the session fixture)
from tests.runtime.test_parity import _direct_logits


@pytest.fixture(scope="module")
def logits_run(artifacts, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("logits") / "x86.npz"
    models = [artifacts["edge_float32"], artifacts["edge_int8"]]
    result = CliRunner().invoke(main, ["parity", *map(str, models), "--images", str(artifacts["images"]),
                                       "--logits", str(out)])
    assert result.exit_code == 0, result.output
    return out, models


def test_logits_file_holds_each_models_raw_logits(artifacts, logits_run):  # noqa: F811
    out, models = logits_run
    saved = np.load(out)
    assert list(saved["models"]) == [str(m) for m in models]
    images = sorted(p for p in artifacts["images"].rglob("*.png"))  # the undecodable file is not among them
    assert list(saved["images"]) == [str(p) for p in images]
    for index, model in enumerate(models):
        np.testing.assert_allclose(saved["logits"][index], _direct_logits(model, images), rtol=1e-5, atol=1e-6)


def _write(path, saved, logits):
    np.savez(path, models=saved["models"], images=saved["images"], logits=logits)
    return path


def test_comparer_gates_int8_at_one_step_and_float_at_the_relative_tolerance(artifacts, logits_run, tmp_path):  # noqa: F811
    from ai_edge_litert.interpreter import Interpreter

    out, _ = logits_run
    saved = dict(np.load(out))
    step = Interpreter(model_path=str(artifacts["edge_int8"])).get_output_details()[0]["quantization"][0]
    assert step > 0 and compare_parity.output_scale(artifacts["edge_int8"]) == pytest.approx(step)
    assert compare_parity.output_scale(artifacts["edge_float32"]) is None
    folder = artifacts["edge_int8"].parent

    def verdict(change):
        logits = saved["logits"].astype(np.float64).copy()
        change(logits)
        return compare_parity.main([str(out), str(_write(tmp_path / "arm.npz", saved, logits)), str(folder)])

    largest = float(np.abs(saved["logits"][0]).max())
    assert verdict(lambda x: None) == 0
    assert verdict(lambda x: x.__setitem__((1, 0, 0), x[1, 0, 0] + 0.9 * step)) == 0
    assert verdict(lambda x: x.__setitem__((1, 0, 0), x[1, 0, 0] + 2 * step)) == 1
    assert verdict(lambda x: x.__setitem__((0, 0, 0), x[0, 0, 0] + 0.5e-4 * largest)) == 0
    assert verdict(lambda x: x.__setitem__((0, 0, 0), x[0, 0, 0] + 2e-4 * largest)) == 1

    def flip(x):  # swap the top two logits of one image: same values, another class
        row = x[0, 1]
        top = np.argsort(row)[-2:]
        row[top] = row[top[::-1]]
    assert verdict(flip) == 1
