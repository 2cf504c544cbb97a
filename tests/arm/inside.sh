#!/bin/bash
# Runs inside the aarch64 root (called by arm_check.sh): a venv with only the runtime extra, then
# info, bench and parity on the artifacts. Inputs in /check/in, results in /check/out.
set -euo pipefail
START=$(date +%s)
stamp_time() { echo "== [$(($(date +%s) - START))s] $*"; }
cd /check/in
out=/check/out
stamp="$VENV/.arm-check-deps"
deps=$(sha256sum constraints.txt | cut -c1-16)-$(python3 - <<'PY'
import zipfile, glob, hashlib
w = zipfile.ZipFile(glob.glob("/check/in/edgeshuffle-*.whl")[0])
meta = next(n for n in w.namelist() if n.endswith(".dist-info/METADATA"))
print(hashlib.sha256(b"".join(l for l in w.read(meta).splitlines() if l.startswith(b"Requires-Dist"))).hexdigest()[:16])
PY
)
if [ ! -x "$VENV/bin/python" ]; then
    stamp_time "python3 -m venv $VENV"
    python3 -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$deps" ]; then
    stamp_time "pip install -c constraints.txt '$WHEEL[runtime]' (aarch64 wheels)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off -c constraints.txt "./$WHEEL[runtime]"
    echo "$deps" > "$stamp"
fi
stamp_time "reinstall edgeshuffle from this working tree's wheel"
"$VENV/bin/python" -m pip install --disable-pip-version-check --quiet --no-deps --force-reinstall "./$WHEEL"
"$VENV/bin/python" -m pip list --disable-pip-version-check --format=freeze > "$out/pip-freeze.txt"

{
    echo "aarch64 python: platform.machine()=$("$VENV/bin/python" -c 'import platform; print(platform.machine())'), $("$VENV/bin/python" -c 'import platform; print(platform.python_implementation(), platform.python_version(), platform.libc_ver()[0], platform.libc_ver()[1])')"
    if tf=$("$VENV/bin/python" -c 'import tensorflow' 2>&1); then
        echo "tensorflow: IMPORTABLE (the runtime extra must not pull it in)"
    else
        echo "tensorflow: not installed ($(echo "$tf" | tail -1))"
    fi
    echo "installed: $(grep -iE '^(edgeshuffle|numpy|ai-edge-litert|ai_edge_litert|onnxruntime)==' "$out/pip-freeze.txt" | tr '\n' ' ')"
} | tee "$out/facts.txt"
if grep -qi '^tensorflow' "$out/pip-freeze.txt"; then
    echo "tensorflow is installed in the runtime venv"; exit 1
fi

models=(artifacts/float32.tflite artifacts/int8.tflite artifacts/float32.onnx artifacts/int8.onnx)
bin="$VENV/bin/edgeshuffle"
stamp_time "edgeshuffle info"
"$bin" info artifacts/int8.tflite
stamp_time "edgeshuffle bench (timings under emulation are not meaningful)"
"$bin" bench "${models[@]}" --runs 5 --warmup 1 --json "$out/bench.json" | tee "$out/bench.txt"
stamp_time "edgeshuffle parity"
"$bin" parity "${models[@]}" --images images --json "$out/parity.json" --logits "$out/logits.npz"
stamp_time "edgeshuffle parity --tflite-kernels reference (LiteRT's portable kernels)"
"$bin" parity "${models[@]}" --images images --tflite-kernels reference --logits "$out/logits-reference.npz"
stamp_time "done"
