"""The channel shuffle alone, in int8 TFLite under XNNPACK: which rank-4 formulation is cheapest.

A 1x1 conv then 4 x (shuffle, 3x3 depthwise conv) on an H x H x C feature
map with G groups, int8 (quantize_tflite), one XNNPACK partition each; the
"I" model has no shuffles, so (model - I) is the cost of 4 shuffles.
A: (1,HW,G,N) transpose (0,1,3,2) (edgeshuffle's "reshape"); E: three
long-row transposes; F: two transposes, the small one last; G: (1,HW,G,N)
transpose (0,3,2,1) then (C,HW)->(HW,C) (edgeshuffle's "planar").
Each formulation is checked against x[..., perm] first.

    .venv/bin/python benchmarks/bench_shuffle_ops.py 28 60 3   # H C G (Stage 2 of 1x g=3)
"""
import contextlib
import io
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tempfile
from pathlib import Path

import keras
import numpy as np
from keras import ops
from edgeshuffle.data.sets import ArrayCalibration
from edgeshuffle.export.quantize import quantize_tflite
from edgeshuffle.runtime.delegation import xnnpack_delegation
from edgeshuffle.bench import BenchConfig, run_bench


H, C, G = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
N = C // G
def A(x):  # current
    x = ops.reshape(x, (1, H*H, G, N)); x = ops.transpose(x, (0,1,3,2)); return ops.reshape(x, (1,H,H,C))
def B(x):  # rank 3
    x = ops.reshape(x, (H*H, G, N)); x = ops.transpose(x, (0,2,1)); return ops.reshape(x, (1,H,H,C))
def D(x):  # split + concat interleave (not run by default: 5x slower than A)
    parts = ops.split(x, G, axis=-1)
    parts = [ops.reshape(p, (1, H*H, N, 1)) for p in parts]
    return ops.reshape(ops.concatenate(parts, axis=-1), (1,H,H,C))
def E(x):  # three big-tile passes
    x = ops.reshape(x, (1, 1, H*H, C)); x = ops.transpose(x, (0,1,3,2))   # (1,1,C,HW)
    x = ops.reshape(x, (1, G, N, H*H)); x = ops.transpose(x, (0,2,1,3))   # (1,N,G,HW)
    x = ops.reshape(x, (1, 1, C, H*H)); x = ops.transpose(x, (0,1,3,2))
    return ops.reshape(x, (1,H,H,C))
def E2(x):  # two passes
    x = ops.reshape(x, (1, 1, H*H, C)); x = ops.transpose(x, (0,1,3,2))   # (1,1,C,HW)
    x = ops.reshape(x, (1, G, N, H*H)); x = ops.transpose(x, (0,3,2,1))   # (1,HW,N,G)
    return ops.reshape(x, (1,H,H,C))
def E3(x):  # two passes, the other way
    x = ops.reshape(x, (1, H*H, G, N)); x = ops.transpose(x, (0,3,2,1))   # (1,N,G,HW)
    x = ops.reshape(x, (1, 1, C, H*H)); x = ops.transpose(x, (0,1,3,2))
    return ops.reshape(x, (1,H,H,C))
def I(x): return x
def model(f):
    i = keras.Input((H,H,3), batch_size=1)
    y = keras.layers.Conv2D(C, 1)(i)
    for k in range(4):
        y = keras.layers.Lambda(f)(y)
        y = keras.layers.DepthwiseConv2D(3, padding="same")(y)
    return keras.Model(i, y)
folder = Path(tempfile.mkdtemp(prefix="bench_shuffle_ops_"))
cal = ArrayCalibration(np.random.default_rng(0).normal(size=(8,H,H,3)).astype(np.float32))
# exactness first
x = np.random.default_rng(1).normal(size=(1,H,H,C)).astype(np.float32)
perm = np.arange(C).reshape(G, N).T.reshape(-1)
for name, f in [("A",A),("E",E),("F",E2),("G",E3)]:
    np.testing.assert_array_equal(np.asarray(f(x)), x[..., perm])
paths = []
for name, f in [("A",A),("E",E),("F",E2),("G",E3),("I",I)]:
    m = model(f)
    with contextlib.redirect_stdout(io.StringIO()):
        data = quantize_tflite(m, cal)
    p = folder / f"{name}_{H}_{C}_{G}.tflite"; p.write_bytes(data); paths.append(p)
    print(name, xnnpack_delegation(p).partitions, xnnpack_delegation(p).undelegated_ops, flush=True)
rep = run_bench(BenchConfig(models=tuple(paths), threads=(1,), runs=300))
base = {Path(r.model).name[0]: r.latency_ms.p50 for r in rep.results}
print({k: round(v*1000,1) for k,v in base.items()}, "us; shuffle cost per 4 shuffles:", {k: round((v-base["I"])*1000,1) for k,v in base.items()})
