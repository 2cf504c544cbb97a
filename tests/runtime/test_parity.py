"""`edgeshuffle parity` against an independent computation with the bare LiteRT interpreter."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeshuffle.cli import main
from tests.runtime.conftest import CLASS_NAMES, _spec


def _direct_logits(path, images, resolver="AUTO"):
    """Logits of every image via ai_edge_litert directly (``resolver``: an OpResolverType name),
    preprocessed by hand (32x32: no resize)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    pre = _spec().preprocessing
    interpreter = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType[resolver])
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    logits = []
    for image in images:
        x = (np.asarray(Image.open(image).convert("RGB"), dtype=np.float32) - pre.mean) / pre.std
        scale, zero = inp["quantization"]
        if scale:
            x = np.clip(np.round(x / scale) + zero, -128, 127)
        interpreter.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[0].astype(np.float64)
        scale, zero = out["quantization"]
        logits.append((y - zero) * scale if scale else y)
    return np.stack(logits)


def test_parity_matches_a_direct_computation(artifacts, tmp_path):
    out = tmp_path / "parity.json"
    result = CliRunner().invoke(main, ["parity", str(artifacts["edge_int8"]), str(artifacts["edge_float32"]),
                                       str(artifacts["plain_int8"]), "--images", str(artifacts["images"]),
                                       "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["schema"] == "edgeshuffle.parity" and report["schema_version"] == 1
    assert report["reference"] == str(artifacts["edge_float32"])  # the first float model, not the first given
    assert report["evaluated"] == 12 and report["skipped"] == 1 and report["labelled"]
    images = sorted(p for p in artifacts["images"].rglob("*.png"))
    folder_labels = np.asarray([CLASS_NAMES.index(p.parent.name) for p in images])  # by name, not folder order
    reference = _direct_logits(artifacts["edge_float32"], images)
    results = {r["model"]: r for r in report["results"]}
    ref = results[str(artifacts["edge_float32"])]
    assert ref["is_reference"] and ref["top1_agreement"] == 1.0 and ref["max_abs_error"] == 0.0
    for name in ("edge_int8", "plain_int8"):
        logits = _direct_logits(artifacts[name], images)
        r = results[str(artifacts[name])]
        assert r["precision"] == "int8" and r["runtime"] == "tflite"
        assert r["top1_agreement"] == pytest.approx(np.mean(logits.argmax(1) == reference.argmax(1)))
        assert r["max_abs_error"] == pytest.approx(np.abs(logits - reference).max(), rel=1e-4)
        cosine = np.sum(logits * reference, 1) / np.linalg.norm(logits, axis=1) / np.linalg.norm(reference, axis=1)
        assert r["mean_cosine"] == pytest.approx(cosine.mean(), rel=1e-5)
        assert r["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == folder_labels))
        assert r["reference_accuracy"] == pytest.approx(np.mean(reference.argmax(1) == folder_labels))
    assert "top-1 agree" in result.output and "1 skipped" in result.output


def test_parity_onnx_against_its_float_original(artifacts, tmp_path):
    import onnxruntime as ort

    out = tmp_path / "parity.json"
    result = CliRunner().invoke(main, ["parity", str(artifacts["onnx_int8"]), "--reference",
                                       str(artifacts["onnx_float32"]), "--images", str(artifacts["images"]),
                                       "--limit", "5", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["evaluated"] == 4 and report["skipped"] == 1  # the first 5 files: bird/0-3, broken
    pre = _spec().preprocessing
    images = sorted(artifacts["images"].glob("bird/*.png"))
    x = np.stack([(np.asarray(Image.open(p).convert("RGB"), np.float32) - pre.mean) / pre.std for p in images])
    logits = {}
    for key in ("onnx_float32", "onnx_int8"):
        session = ort.InferenceSession(str(artifacts[key]), providers=["CPUExecutionProvider"])
        logits[key] = np.concatenate([session.run(None, {"input": x[i:i + 1].astype(np.float32)})[0]
                                      for i in range(len(x))])
    r = next(r for r in report["results"] if not r["is_reference"])
    assert r["runtime"] == "onnx"
    assert r["max_abs_error"] == pytest.approx(np.abs(logits["onnx_int8"] - logits["onnx_float32"]).max(),
                                               rel=1e-4)
    assert r["mean_cosine"] > 0.9


def test_parity_strict_fails_on_an_undecodable_image(artifacts):
    result = CliRunner().invoke(main, ["parity", str(artifacts["edge_int8"]), "--images",
                                       str(artifacts["images"]), "--strict"])
    assert result.exit_code == 1
    assert "broken.jpg" in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("extra,culprit,code", [
    (["--images", "{missing}"], "not a folder of images", 1),
    (["--images", "{images}", "--limit", "0"], "limit=0", 2),
    (["--images", "{images}", "--reference", "{random.tflite}"], "not a valid TFLite model", 1),
    (["--images", "{images}", "--reference", "{onnx_vector}"], "carries no edgeshuffle metadata", 1),
    (["--images", "{images}", "--json", "{missing}"], "not a writable folder", 1),
])
def test_parity_errors_are_one_line(artifacts, tmp_path, extra, culprit, code):
    paths = {**{k: str(v) for k, v in artifacts.items()}, "missing": str(tmp_path / "nope" / "x.json")}
    extra = [paths[a[1:-1]] if a.startswith("{") else a for a in extra]
    result = CliRunner().invoke(main, ["parity", str(artifacts["edge_int8"]), *extra])
    assert result.exit_code == code, result.output
    assert culprit in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_parity_keeps_compare_as_it_was():
    from edgeshuffle.parity import compare

    reference = np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0]])
    logits = np.array([[1.0, 2.5, 0.0], [0.0, 3.0, 1.0]])
    c = compare(reference, logits, labels=np.array([1, 0]))
    assert c.samples == 2 and c.top1_agreement == 0.5 and c.max_abs_error == 3.0
    assert c.accuracy == 0.5 and c.reference_accuracy == 1.0
