"""Streaming parity: running statistics, logits written as they come, the same figures for any --jobs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgeshuffle.cli import main
from tests.runtime.test_parity import _direct_logits


def _full_array_figures(reference, logits, labels):
    """The figures of a Comparison, written from their definitions over every image at once."""
    reference, logits = reference.astype(np.float64), logits.astype(np.float64)
    cosines = [np.dot(r, x) / (np.linalg.norm(r) * np.linalg.norm(x)) for r, x in zip(reference, logits)]
    return {"samples": len(reference),
            "top1_agreement": np.mean(reference.argmax(1) == logits.argmax(1)),
            "max_abs_error": np.max(np.abs(reference - logits)),
            "max_relative_error": np.max(np.abs(reference - logits)) / np.max(np.abs(reference)),
            "mean_cosine": np.mean(cosines),
            "accuracy": np.mean(logits.argmax(1) == labels),
            "reference_accuracy": np.mean(reference.argmax(1) == labels)}


@pytest.mark.parametrize("chunk", [1, 3, 7, 32, 1000])
def test_running_statistics_equal_the_full_array_definitions(chunk):
    from edgeshuffle.parity import RunningComparison, compare

    rng = np.random.default_rng(chunk)
    reference = rng.normal(0, 3, size=(203, 10)).astype(np.float32)
    logits = (reference + rng.normal(0, 0.8, size=reference.shape)).astype(np.float32)
    reference[117, 4] = -40.0  # the largest |reference logit| is negative and far from the largest error
    labels = rng.integers(0, 10, size=len(reference))
    running = RunningComparison()
    for start in range(0, len(reference), chunk):
        running.add(reference[start:start + chunk], logits[start:start + chunk], labels[start:start + chunk])
    streamed = running.result()
    expected = _full_array_figures(reference, logits, labels)
    for name, value in expected.items():
        assert getattr(streamed, name) == pytest.approx(value, rel=1e-12, abs=0), name
    # Exact figures are exact, and the chunking changes nothing at all:
    assert streamed.max_abs_error == float(np.max(np.abs(reference.astype(np.float64) - logits)))
    assert streamed.top1_agreement == expected["top1_agreement"]
    assert streamed == compare(reference, logits, labels)


def _parity(artifacts, tmp_path, name, *extra):
    out = tmp_path / f"{name}.json"
    result = CliRunner().invoke(main, ["parity", str(artifacts["edge_int8"]), str(artifacts["edge_float32"]),
                                       str(artifacts["plain_int8"]), "--images", str(artifacts["images"]),
                                       "--json", str(out), *extra])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def test_logits_are_written_as_they_come_and_read_back(artifacts, tmp_path, monkeypatch):
    import edgeshuffle.parity

    monkeypatch.setattr(edgeshuffle.parity, "PARITY_CHUNK", 5)  # several chunks, a short last one, a skip
    target = tmp_path / "logits.npz"
    _parity(artifacts, tmp_path, "run", "--logits", str(target), "--jobs", "2")
    saved = dict(np.load(target))
    models = [str(artifacts[k]) for k in ("edge_int8", "edge_float32", "plain_int8")]
    images = sorted(p for p in artifacts["images"].rglob("*.png"))
    assert list(saved["models"]) == models and list(saved["images"]) == [str(p) for p in images]
    assert saved["logits"].shape == (3, 12, 10) and saved["logits"].dtype == np.float32
    for i, model in enumerate(("edge_int8", "edge_float32", "plain_int8")):
        np.testing.assert_allclose(saved["logits"][i], _direct_logits(artifacts[model], images), rtol=0, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logits.npz", "run.json"], "no temporary files left"


def test_an_interrupted_run_leaves_no_logits_file(artifacts, tmp_path, monkeypatch):
    import edgeshuffle.parity
    from edgeshuffle.parity import image_parity

    monkeypatch.setattr(edgeshuffle.parity, "PARITY_CHUNK", 4)

    def interrupt(done, total):
        if done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        image_parity([artifacts["edge_int8"]], artifacts["images"], progress=interrupt, jobs=2,
                     logits_path=tmp_path / "logits.npz")
    assert list(tmp_path.iterdir()) == []


def test_reports_and_logits_are_identical_with_one_job_and_several(artifacts, tmp_path, monkeypatch):
    import edgeshuffle.parity

    monkeypatch.setattr(edgeshuffle.parity, "PARITY_CHUNK", 3)
    one = _parity(artifacts, tmp_path, "one", "--jobs", "1", "--logits", str(tmp_path / "one.npz"))
    two = _parity(artifacts, tmp_path, "two", "--jobs", "2", "--logits", str(tmp_path / "two.npz"))
    default = _parity(artifacts, tmp_path, "default")
    assert one == two == default
    first, second = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert first["logits"].tobytes() == second["logits"].tobytes()


def test_jobs_below_one_is_refused(artifacts):
    result = CliRunner().invoke(main, ["parity", str(artifacts["edge_int8"]), "--images", str(artifacts["images"]),
                                       "--jobs", "0"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().endswith("Received: `jobs=0`") and len(result.output.strip().splitlines()) == 1
