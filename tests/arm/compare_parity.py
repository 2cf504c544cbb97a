"""Compare the logits of `edgeshuffle parity --logits` from two machines (x86 and aarch64).

Usage: python tests/arm/compare_parity.py X86.npz ARM.npz ARTIFACT_DIR [--float-rtol 1e-4]

Per model (matched by file name): the predicted class of every image must be
identical; int8 artifacts' logits must agree within one quantization step of
the output tensor (its scale read from the artifact itself: the TFLite output
tensor's quantization, the ONNX graph output's DequantizeLinear scale); float
artifacts' within ``--float-rtol`` of the largest absolute x86 logit. Prints
one table and exits 1 on any difference, 2 on unusable input.

Runs on the build machine (needs onnx and ai-edge-litert to read the scales).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def tflite_output_scale(path: Path) -> float | None:
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_path=str(path)).get_output_details()[0]
    scale, _ = detail["quantization"]
    return float(scale) if scale else None


def onnx_output_scale(path: Path) -> float | None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    initializers = {i.name: i for i in graph.initializer}
    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    name = graph.output[0].name
    # Walk back through ops that do not change values' quantization (Identity, Reshape, Flatten, Squeeze).
    for _ in range(8):
        node = producers.get(name)
        if node is None:
            return None
        if node.op_type == "DequantizeLinear":
            scale_name = node.input[1]
            if scale_name in initializers:
                return float(numpy_helper.to_array(initializers[scale_name]).reshape(-1)[0])
            if scale_name in constants:
                value = next(a for a in constants[scale_name].attribute if a.name == "value")
                return float(numpy_helper.to_array(value.t).reshape(-1)[0])
            return None
        if node.op_type not in ("Identity", "Reshape", "Flatten", "Squeeze"):
            return None
        name = node.input[0]
    return None


def output_scale(path: Path) -> float | None:
    return tflite_output_scale(path) if path.suffix == ".tflite" else onnx_output_scale(path)


def _relative_images(images: np.ndarray) -> list[str]:
    """Image paths relative to the image folder: the last two parts (class folder/file)."""
    return ["/".join(Path(str(p)).parts[-2:]) for p in images]


def compare(x86: dict, arm: dict, artifacts: Path, float_rtol: float) -> tuple[list[list[str]], bool]:
    if _relative_images(x86["images"]) != _relative_images(arm["images"]):
        raise SystemExit("error: the two runs evaluated different images")
    arm_index = {Path(str(m)).name: i for i, m in enumerate(arm["models"])}
    rows, ok = [], True
    for i, model in enumerate(x86["models"]):
        name = Path(str(model)).name
        if name not in arm_index:
            rows.append([name, "missing on aarch64", "", "", "FAIL"])
            ok = False
            continue
        a = x86["logits"][i].astype(np.float64)
        b = arm["logits"][arm_index[name]].astype(np.float64)
        if a.shape != b.shape:
            rows.append([name, f"shapes {a.shape} vs {b.shape}", "", "", "FAIL"])
            ok = False
            continue
        flipped = a.argmax(1) != b.argmax(1)
        class_diffs = int(np.sum(flipped))
        diff = float(np.abs(a - b).max())
        scale = output_scale(artifacts / name)
        classes = f"{class_diffs}/{len(a)} differ"
        if class_diffs:  # how close to a tie those images were on x86: top-1 minus top-2 logit
            top2 = np.sort(a[flipped], axis=1)[:, -2:]
            margin = float((top2[:, 1] - top2[:, 0]).max())
            classes += f" (x86 top-2 margin <= {margin / scale:.3g} steps)" if scale else \
                f" (x86 top-2 margin <= {margin:.3g})"
        if scale:  # int8: within one quantization step
            measure = f"{diff / scale:.3g} steps (step {scale:.4g})"
            within = diff <= scale * (1 + 1e-6)
            limit = "<= 1 step"
        else:
            relative = diff / max(float(np.abs(a).max()), 1e-12)
            measure = f"{relative:.3g} relative (abs {diff:.3g})"
            within = relative <= float_rtol
            limit = f"<= {float_rtol:g}"
        passed = within and class_diffs == 0
        ok &= passed
        rows.append([name, classes, measure, limit, "ok" if passed else "FAIL"])
    return rows, ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("x86", type=Path)
    parser.add_argument("arm", type=Path)
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--float-rtol", type=float, default=1e-4)
    args = parser.parse_args(argv)
    try:
        x86, arm = dict(np.load(args.x86)), dict(np.load(args.arm))
    except (OSError, ValueError) as error:
        print(f"error: cannot read logits: {error}", file=sys.stderr)
        return 2
    rows, ok = compare(x86, arm, args.artifacts, args.float_rtol)
    headers = ["artifact", "predicted classes", "max logit difference", "allowed", "result"]
    widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(headers)]
    print(f"aarch64 vs x86 logits on {len(x86['images'])} images")
    for row in [headers, *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print("PARITY: identical within tolerance" if ok else "PARITY: DIFFERENCES FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
