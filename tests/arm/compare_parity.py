"""Compare the logits of `edgeshuffle parity --logits` from two machines (x86 and aarch64).

Usage: python tests/arm/compare_parity.py X86.npz ARM.npz ARTIFACT_DIR [--x86-builtin X86_BUILTIN.npz]
       [--x86-reference X86_REF.npz --arm-reference ARM_REF.npz] [--float-rtol 1e-4]

Per model (matched by file name), on every image:

- float artifacts: logits within ``--float-rtol`` of the largest absolute x86
  logit, identical predicted classes.
- int8 artifacts: logits within the allowed number of quantization steps of
  the output tensor (its scale read from the artifact itself: the TFLite
  output tensor's quantization, the ONNX graph output's DequantizeLinear
  scale), and identical predicted classes except at a tie: an image whose
  x86 top-1 and top-2 logits are within the allowed difference of each other
  may change class, and is listed.

The allowed difference is 1 step. onnxruntime's u8u8 kernels are exact
integer arithmetic on both architectures and keep it. So do LiteRT's
reference kernels (``--tflite-kernels reference``): with ``--x86-reference``
and ``--arm-reference`` every .tflite model gets a second row, "[reference
kernels]", held to the same bound. LiteRT's optimized int8 kernels (XNNPACK,
and the built-in ones aarch64 runs under emulation) requantize differently
from each other and are not bit-exact; each is some distance E from the
reference result. For an int8 .tflite model the bound is therefore 2E + 1
steps, E being the largest distance of x86's optimized kernels (the main run
and ``--x86-builtin``) from x86's reference kernels on the same images: if
aarch64's kernels are no further from the reference than x86's, the two
architectures differ by at most 2E.

Prints one table and exits 1 on any difference, 2 on unusable input.
Runs on the build machine (needs onnx and ai-edge-litert to read the scales).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edgeshuffle.export.quantize import onnx_output_scale


def tflite_output_scale(path: Path) -> float | None:
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_path=str(path)).get_output_details()[0]
    scale, _ = detail["quantization"]
    return float(scale) if scale else None


def output_scale(path: Path) -> float | None:
    return tflite_output_scale(path) if path.suffix == ".tflite" else onnx_output_scale(path)


def _relative_images(images: np.ndarray) -> list[str]:
    """Image paths relative to the image folder: the last two parts (class folder/file)."""
    return ["/".join(Path(str(p)).parts[-2:]) for p in images]


def _by_name(run: dict) -> dict[str, np.ndarray]:
    return {Path(str(m)).name: run["logits"][i].astype(np.float64) for i, m in enumerate(run["models"])}


def _check_same_images(*runs: dict) -> None:
    first = _relative_images(runs[0]["images"])
    if any(_relative_images(run["images"]) != first for run in runs[1:]):
        raise SystemExit("error: the runs evaluated different images")


def _check(name: str, a: np.ndarray, b: np.ndarray, scale: float | None, float_rtol: float,
           allowed_steps: float = 1.0, why: str = "") -> tuple[list[str], bool]:
    """One table row: x86 logits ``a`` against aarch64 logits ``b`` of one model."""
    diff = float(np.abs(a - b).max())
    if scale:  # int8: in quantization steps of the output tensor
        # The logits are dequantized float32, so whole steps come with float32 rounding of the logit.
        allowed = (allowed_steps + 1e-3) * scale
        measure = f"{diff / scale:.3g} steps (step {scale:.4g})"
        limit = f"<= {allowed_steps:.3g} steps{why}"
    else:
        largest = max(float(np.abs(a).max()), 1e-12)
        allowed = float_rtol * largest
        measure = f"{diff / largest:.3g} relative (abs {diff:.3g})"
        limit = f"<= {float_rtol:g}"
    flipped = a.argmax(1) != b.argmax(1)
    top2 = np.sort(a, axis=1)[:, -2:]
    at_tie = flipped & (top2[:, 1] - top2[:, 0] <= allowed) if scale else np.zeros_like(flipped)
    classes = f"{int(flipped.sum())}/{len(a)} differ"
    if at_tie.any():
        classes += f" ({int(at_tie.sum())} at an x86 tie within the allowed difference)"
    passed = diff <= allowed and not (flipped & ~at_tie).any()
    return [name, classes, measure, limit, "ok" if passed else "FAIL"], passed


def compare(x86: dict, arm: dict, artifacts: Path, float_rtol: float, x86_builtin: dict | None = None,
            x86_reference: dict | None = None, arm_reference: dict | None = None) -> tuple[list[list[str]], bool]:
    optional = [run for run in (x86_builtin, x86_reference, arm_reference) if run is not None]
    _check_same_images(x86, arm, *optional)
    arm_logits = _by_name(arm)
    builtin_logits = _by_name(x86_builtin) if x86_builtin is not None else {}
    x86_ref = _by_name(x86_reference) if x86_reference is not None else {}
    arm_ref = _by_name(arm_reference) if arm_reference is not None else {}
    rows, ok = [], True
    for name, a in _by_name(x86).items():
        b = arm_logits.get(name)
        if b is None or a.shape != b.shape:
            rows.append([name, "missing on aarch64" if b is None else f"shapes {a.shape} vs {b.shape}", "", "",
                         "FAIL"])
            ok = False
            continue
        scale = output_scale(artifacts / name)
        allowed_steps, why = 1.0, ""
        if scale and name.endswith(".tflite") and name in x86_ref:
            # Optimized kernels are not bit-exact: each is some distance E from the exact reference
            # kernels. If aarch64's are no further from it than x86's, the two differ by at most 2E.
            families = [a, *([builtin_logits[name]] if name in builtin_logits else [])]
            error = max(float(np.abs(k - x86_ref[name]).max()) for k in families) / scale
            allowed_steps, why = 2 * error + 1, f" (2 x {error:.3g}, x86 optimized vs reference, + 1)"
        row, passed = _check(name, a, b, scale, float_rtol, allowed_steps, why)
        rows.append(row)
        ok &= passed
    for name in sorted(n for n in x86_ref if n.endswith(".tflite")):
        if name not in arm_ref:
            rows.append([f"{name} [reference kernels]", "missing on aarch64", "", "", "FAIL"])
            ok = False
            continue
        row, passed = _check(f"{name} [reference kernels]", x86_ref[name], arm_ref[name],
                             output_scale(artifacts / name), float_rtol)
        rows.append(row)
        ok &= passed
    return rows, ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("x86", type=Path)
    parser.add_argument("arm", type=Path)
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--x86-builtin", type=Path,
                        help="logits of the same parity on x86 with --tflite-kernels builtin")
    parser.add_argument("--x86-reference", type=Path,
                        help="logits of the same parity on x86 with --tflite-kernels reference")
    parser.add_argument("--arm-reference", type=Path,
                        help="logits of the same parity on aarch64 with --tflite-kernels reference")
    parser.add_argument("--float-rtol", type=float, default=1e-4)
    args = parser.parse_args(argv)
    try:
        x86, arm = dict(np.load(args.x86)), dict(np.load(args.arm))
        builtin, x86_ref, arm_ref = (dict(np.load(path)) if path else None
                                     for path in (args.x86_builtin, args.x86_reference, args.arm_reference))
    except (OSError, ValueError) as error:
        print(f"error: cannot read logits: {error}", file=sys.stderr)
        return 2
    if (x86_ref is None) != (arm_ref is None):
        print("error: --x86-reference and --arm-reference go together", file=sys.stderr)
        return 2
    rows, ok = compare(x86, arm, args.artifacts, args.float_rtol, builtin, x86_ref, arm_ref)
    headers = ["artifact", "predicted classes", "max logit difference", "allowed", "result"]
    widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(headers)]
    print(f"aarch64 vs x86 logits on {len(x86['images'])} images")
    for row in [headers, *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print("PARITY: identical within tolerance" if ok else "PARITY: DIFFERENCES FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
