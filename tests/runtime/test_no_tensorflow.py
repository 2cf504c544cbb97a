"""The board path (bench, parity, info on an artifact) runs with TensorFlow, Keras and onnx unimportable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = r'''
import json, sys

BLOCKED = ("tensorflow", "keras", "tf_keras", "tf2onnx", "onnx", "tensorboard", "jax", "torch")


class Blocker:
    """A meta-path finder that makes the build-machine packages unimportable, as on a board."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the board has no build-machine packages")
        return None


sys.meta_path.insert(0, Blocker())
from edgeshuffle.cli import main

codes = []
for args in json.loads(sys.argv[1]):
    try:
        main(args, standalone_mode=False)
        codes.append(0)
    except SystemExit as exit:
        codes.append(exit.code)
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(BLOCKED))
print("RESULT " + json.dumps({"codes": codes, "loaded": loaded}))
'''


def test_bench_parity_info_import_no_tensorflow(artifacts, tmp_path):
    calls = [
        ["bench", str(artifacts["edge_int8"]), str(artifacts["onnx_int8"]), "--runs", "3", "--warmup", "1",
         "--inputs", str(artifacts["images"]), "--json", str(tmp_path / "bench.json")],
        ["parity", str(artifacts["edge_int8"]), str(artifacts["edge_float32"]), str(artifacts["onnx_int8"]),
         "--images", str(artifacts["images"]), "--limit", "5", "--json", str(tmp_path / "parity.json")],
        ["info", str(artifacts["plain_int8"])],
        ["info", str(artifacts["onnx_float32"]), "--json"],
    ]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(calls)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.split("RESULT ")[-1])
    assert result == {"codes": [0, 0, 0, 0], "loaded": []}, done.stderr[-2000:]
    assert json.loads((tmp_path / "bench.json").read_text())["results"]
    assert json.loads((tmp_path / "parity.json").read_text())["evaluated"] == 4  # 5 files, one broken


def test_blocker_would_catch_tensorflow(tmp_path):
    """The check can fail: a path that imports keras exits non-zero under the blocker."""
    script = SCRIPT.split("from edgeshuffle.cli import main")[0] + "import keras\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "keras is blocked" in done.stderr


def test_cli_help_loads_no_numerical_package():
    """`edgeshuffle --help` and a verb's --help start fast: no numpy, TensorFlow or runtime is imported."""
    script = ("import sys\nfrom edgeshuffle.cli import main\n"
              "for args in (['--help'], ['bench', '--help'], ['train', '--help']):\n"
              "    try:\n        main(args, standalone_mode=False)\n    except SystemExit:\n        pass\n"
              "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & "
              "{'numpy', 'tensorflow', 'keras', 'onnxruntime', 'ai_edge_litert'}))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.rstrip().endswith("LOADED []"), done.stdout[-2000:]
