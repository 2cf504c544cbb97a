"""The documented way to load edgeshuffle's .keras files in one's own code: `edgeshuffle.load_model`.

Each check runs in a fresh interpreter whose script imports nothing but
`edgeshuffle` and numpy, as a user's script would, and compares its logits
with a reference computed in this process: the model before `convert` wrote
it, or Keras' own loader given the class.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from edgeshuffle.export.convert import convert  # noqa: E402
from edgeshuffle.models.shufflenet import ShuffleNetV1, build_shufflenet  # noqa: E402
from edgeshuffle.models.variants import ModelSpec  # noqa: E402
from tests.export.conftest import randomize_batchnorm  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "shufflenet_v1_g3_1x_cifar10.keras"

# What a user writes (README, "Python API"); no private module is imported.
USER_SCRIPT = """
import json, sys
import numpy as np
import edgeshuffle

model = edgeshuffle.load_model(sys.argv[1])
x = np.load(sys.argv[2])
print("RESULT " + json.dumps({"name": model.name, "logits": np.asarray(model(x)).tolist()}))
"""


def _load_in_fresh_interpreter(path: Path, x: np.ndarray, tmp_path: Path) -> dict:
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run([sys.executable, "-c", USER_SCRIPT, str(path), str(tmp_path / "x.npy")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.split("RESULT ")[-1])


def _images(spec: ModelSpec, count: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(0, 1, (count, spec.input_size, spec.input_size, 3)).astype(np.float32)


def test_the_script_imports_only_the_public_package():
    imported = {line.split()[1].split(".")[0] for line in USER_SCRIPT.splitlines() if line.startswith("import")}
    assert "edgeshuffle" in imported and "edgeshuffle." not in USER_SCRIPT.replace("edgeshuffle.load_model", "")


def test_a_converted_model_loads_in_a_fresh_interpreter(tmp_path):
    """`convert` writes model.keras as `make demo` does (build/demo/model.keras)."""
    spec = ModelSpec(groups=3, scale=0.25, input_size=32, classes=10, stem="cifar")
    original = randomize_batchnorm(build_shufflenet(spec))
    convert(original, tmp_path / "out")
    x = _images(spec)
    loaded = _load_in_fresh_interpreter(tmp_path / "out" / "model.keras", x, tmp_path)
    expected = np.asarray(original(x))
    assert loaded["name"] == spec.name
    np.testing.assert_allclose(loaded["logits"], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_the_shipped_model_loads_in_a_fresh_interpreter(tmp_path):
    reference = keras.saving.load_model(SHIPPED, compile=False)  # Keras' loader, the class registered here
    assert isinstance(reference, ShuffleNetV1)
    x = _images(reference.spec)
    loaded = _load_in_fresh_interpreter(SHIPPED, x, tmp_path)
    assert loaded["name"] == reference.name
    np.testing.assert_allclose(loaded["logits"], np.asarray(reference(x)), rtol=1e-5, atol=1e-5)


def test_importing_edgeshuffle_imports_no_numerical_package():
    script = ("import sys, edgeshuffle\nassert callable(edgeshuffle.load_model)\n"
              "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & "
              "{'numpy', 'tensorflow', 'keras', 'onnxruntime', 'ai_edge_litert'}))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.rstrip().endswith("LOADED []"), done.stdout
