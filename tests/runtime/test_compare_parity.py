"""`parity --logits` and the arm-check comparer (tests/arm/compare_parity.py), on the tiny runtime artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeshuffle.cli import main
from tests.arm import compare_parity
from tests.runtime.test_parity import _direct_logits


@pytest.fixture(scope="module")
def logits_run(artifacts, tmp_path_factory):
    out = tmp_path_factory.mktemp("logits") / "x86.npz"
    models = [artifacts["edge_float32"], artifacts["edge_int8"]]
    result = CliRunner().invoke(main, ["parity", *map(str, models), "--images", str(artifacts["images"]),
                                       "--logits", str(out)])
    assert result.exit_code == 0, result.output
    return out, models


def test_logits_file_holds_each_models_raw_logits(artifacts, logits_run):
    out, models = logits_run
    saved = np.load(out)
    assert list(saved["models"]) == [str(m) for m in models]
    images = sorted(p for p in artifacts["images"].rglob("*.png"))  # the undecodable file is not among them
    assert list(saved["images"]) == [str(p) for p in images]
    for index, model in enumerate(models):
        np.testing.assert_allclose(saved["logits"][index], _direct_logits(model, images), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernels, resolver", [("builtin", "BUILTIN_WITHOUT_DEFAULT_DELEGATES"),
                                               ("reference", "BUILTIN_REF")])
def test_tflite_kernels_pick_litert_op_resolver(artifacts, tmp_path, kernels, resolver):
    out = tmp_path / f"{kernels}.npz"
    result = CliRunner().invoke(main, ["parity", str(artifacts["edge_float32"]), str(artifacts["edge_int8"]),
                                       "--images", str(artifacts["images"]), "--tflite-kernels", kernels,
                                       "--logits", str(out)])
    assert result.exit_code == 0, result.output
    saved = np.load(out)
    images = [Path(str(p)) for p in saved["images"]]
    np.testing.assert_allclose(saved["logits"][1], _direct_logits(artifacts["edge_int8"], images, resolver),
                               rtol=1e-6, atol=1e-7)  # the same integers; float32 vs float64 dequantization


def test_onnx_output_scale_is_the_step_of_the_int8_logits(artifacts):
    """Every int8 logit onnxruntime returns is (q - zero point) * step: integers in steps, with no common factor."""
    import onnxruntime as ort

    from edgeshuffle.export.quantize import onnx_output_scale

    step = onnx_output_scale(artifacts["onnx_int8"])
    session = ort.InferenceSession(str(artifacts["onnx_int8"]), providers=["CPUExecutionProvider"])
    inputs = np.random.default_rng(0).uniform(-1, 1, size=(8, 1, 32, 32, 3)).astype(np.float32)
    in_steps = np.concatenate([session.run(None, {"input": x})[0] for x in inputs]) / step
    integers = np.rint(in_steps).astype(np.int64)
    np.testing.assert_allclose(in_steps, integers, atol=1e-3)
    assert np.gcd.reduce(np.abs(integers - integers.min()).ravel()) == 1  # the step itself, not a fraction of it
    assert onnx_output_scale(artifacts["onnx_float32"]) is None


def _write(path, saved, logits):
    np.savez(path, models=saved["models"], images=saved["images"], logits=logits)
    return path


def test_comparer_gates_int8_at_one_step_and_float_at_the_relative_tolerance(artifacts, logits_run, tmp_path):
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


def test_comparer_bounds_optimized_int8_tflite_by_x86_distance_from_reference_kernels(
        artifacts, logits_run, tmp_path):
    out, _ = logits_run
    saved = dict(np.load(out))
    folder = artifacts["edge_int8"].parent
    step = compare_parity.output_scale(artifacts["edge_int8"])
    x86 = saved["logits"].astype(np.float64)

    def verdict(arm_change, x86_change=lambda x: None, builtin_change=lambda x: None,
                reference_change=lambda x: None, arm_reference_change=lambda x: None, references=True):
        files = {}
        for name, change in (("x86", x86_change), ("arm", arm_change), ("builtin", builtin_change),
                             ("x86-ref", reference_change), ("arm-ref", arm_reference_change)):
            logits = x86.copy()
            change(logits)
            files[name] = str(_write(tmp_path / f"{name}.npz", saved, logits))
        args = [files["x86"], files["arm"], str(folder), "--x86-builtin", files["builtin"]]
        if references:
            args += ["--x86-reference", files["x86-ref"], "--arm-reference", files["arm-ref"]]
        return compare_parity.main(args)

    def shift(amount, image=0):
        return lambda x: x.__setitem__((1, image, 0), x[1, image, 0] + amount * step)

    # x86's built-in kernels 3 steps from the reference, XNNPACK exact: E = 3, aarch64 may differ by 2 x 3 + 1.
    assert verdict(shift(6.9), builtin_change=shift(3)) == 0
    assert verdict(shift(7.5), builtin_change=shift(3)) == 1
    # XNNPACK 2 steps from the reference on another image, built-in exact: E = 2.
    xnnpack_2_away = {"reference_change": shift(2, image=1), "arm_reference_change": shift(2, image=1),
                      "builtin_change": shift(2, image=1)}
    assert verdict(shift(5, image=1), **xnnpack_2_away) == 0
    assert verdict(shift(5.5, image=1), **xnnpack_2_away) == 1
    # The reference kernels themselves must agree within 1 step across architectures.
    assert verdict(lambda x: None, arm_reference_change=shift(1)) == 0
    assert verdict(lambda x: None, arm_reference_change=shift(1.5)) == 1
    assert verdict(shift(1.5), references=False) == 1  # without reference runs: the 1-step bound
    assert verdict(shift(1 + 1e-5), references=False) == 0  # a whole step, give or take float32 rounding

    margins = np.diff(np.sort(x86[1], axis=1)[:, -2:], axis=1)[:, 0]
    wide = int(np.argmax(margins))
    assert margins[wide] > 2 * step

    def swap_top_two(image):
        def change(x):
            row = x[1, image]
            top = np.argsort(row)[-2:]
            row[top] = row[top[::-1]]
        return change

    def tie(x):  # image `wide` becomes an exact tie on x86
        row = x[1, wide]
        top = np.argsort(row)[-2:]
        row[top[0]] = row[top[1]]

    def break_tie_the_other_way(x):  # argmax takes the first of tied classes; the later one wins on aarch64
        tie(x)
        row = x[1, wide]
        row[np.argsort(row)[-2:].max()] += 0.5 * step

    tied, broken = x86.copy(), x86.copy()
    tie(tied), break_tie_the_other_way(broken)
    assert tied[1, wide].argmax() != broken[1, wide].argmax()

    assert verdict(break_tie_the_other_way, x86_change=tie, references=False) == 0
    assert verdict(swap_top_two(wide)) == 1  # a confident prediction that changes class
