"""Post-training int8 quantization: TFLite (TFLiteConverter) and ONNX (onnxruntime QDQ).

Both are calibrated on the same preprocessed images. The TFLite path converts
the edge graph of the model (the passes of :mod:`edgeshuffle.graph`), in which
every op of the int8 graph is one XNNPACK delegates, so the whole graph runs
as one partition.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeshuffle.errors import ConversionError, InvalidArgumentError, ParityError

log = logging.getLogger(__name__)

IO_TYPES = ("int8", "uint8", "float32")

# onnxruntime's integer formats (activations, weights). u8u8 is the default:
# x86 CPUs without VNNI run u8s8 (and s8s8, shifted to u8s8) with VPMADDUBSW,
# whose 16-bit pair sums saturate and cost accuracy; u8u8 is exact on every
# CPU, so ARM and x86 also compute the same integers.
# benchmarks/bench_onnx_types.py measures the three (figures in docs/performance.md). On an AVX-512 VNNI CPU
# (VPDPBUSD: u8 x s8 into 32 bits, no saturation) u8s8 is exact and faster: the shipped CIFAR model's
# int8.onnx ran at 0.81x the u8u8 p50 on AMD EPYC Zen 4 (benchmarks/bench_onnx_forms.py); not the default,
# since the same file would lose accuracy on x86 CPUs without VNNI.
ONNX_TYPES = {"u8u8": ("QUInt8", "QUInt8"), "u8s8": ("QUInt8", "QInt8"), "s8s8": ("QInt8", "QInt8")}


def quantize_tflite(edge_model, calibration, io_type: str = "int8",
                    progress: Callable[[int, int], None] | None = None) -> bytes:
    """Full-integer int8 TFLite flatbuffer of ``edge_model`` (a static-batch edge graph from the passes).

    Weights are per-channel, activations per-tensor (TFLite's int8 scheme);
    the input and output are ``io_type``. ``calibration`` is a
    :class:`~edgeshuffle.data.sets.CalibrationSet` (or ``ArrayCalibration``):
    the converter pulls its batches one at a time, so memory does not grow
    with the number of images. ``progress(done, total)`` follows the calibration.
    """
    import tensorflow as tf

    if io_type not in IO_TYPES:
        raise ConversionError(f"unknown input/output type {io_type!r} (choose from {', '.join(IO_TYPES)})")
    batch = edge_model.input_shape[0] or 1

    def representative_dataset():
        for inputs in calibration.batches(batch, progress):
            yield [inputs]

    from edgeshuffle.export.tflite import converter_warnings_silenced, frozen_concrete_function

    try:
        with converter_warnings_silenced():
            converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen_concrete_function(edge_model)])
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative_dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[io_type]
            converter.inference_output_type = converter.inference_input_type
            flatbuffer = converter.convert()
    except Exception as error:  # the converter raises many unrelated types
        raise ConversionError(f"TFLite int8 conversion failed: {str(error).splitlines()[0]}") from None
    return softmax_in_float(flatbuffer)


def softmax_in_float(flatbuffer: bytes) -> bytes:
    """Every int8 ``SOFTMAX`` computed in float: ``DEQUANTIZE`` -> float ``SOFTMAX`` -> ``QUANTIZE``.

    XNNPACK does not delegate an int8 softmax, which would leave the model's
    output outside the delegated graph; it takes the float one and both
    conversions. Same output tensor, same quantization parameters; the float
    softmax is at least as accurate as the int8 one.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    codes = {max(c.builtinCode, c.deprecatedBuiltinCode): i for i, c in enumerate(model.operatorCodes)}
    softmax = codes.get(schema.BuiltinOperator.SOFTMAX)
    if softmax is None:
        return flatbuffer

    def code_index(builtin: int) -> int:
        if builtin not in codes:
            code = schema.OperatorCodeT()
            code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
            model.operatorCodes.append(code)
            codes[builtin] = len(model.operatorCodes) - 1
        return codes[builtin]

    changed = False
    for subgraph in model.subgraphs:
        operators = []
        for op in subgraph.operators:
            source, target = subgraph.tensors[op.inputs[0]], subgraph.tensors[op.outputs[0]]
            if op.opcodeIndex != softmax or source.type != schema.TensorType.INT8:
                operators.append(op)
                continue
            floats = []
            for tensor in (source, target):
                copy = schema.TensorT()
                copy.shape, copy.type, copy.buffer = tensor.shape, schema.TensorType.FLOAT32, 0
                copy.name = (tensor.name or b"") + b"/float"
                subgraph.tensors.append(copy)
                floats.append(len(subgraph.tensors) - 1)
            dequantize, quantize = schema.OperatorT(), schema.OperatorT()
            dequantize.opcodeIndex = code_index(schema.BuiltinOperator.DEQUANTIZE)
            dequantize.inputs, dequantize.outputs = [op.inputs[0]], [floats[0]]
            quantize.opcodeIndex = code_index(schema.BuiltinOperator.QUANTIZE)
            quantize.inputs, quantize.outputs = [floats[1]], [op.outputs[0]]
            op.inputs, op.outputs = [floats[0]], [floats[1]]
            operators.extend([dequantize, op, quantize])
            changed = True
        subgraph.operators = operators
    if not changed:
        return flatbuffer
    builder = flatbuffers.Builder(len(flatbuffer) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class _CalibrationReader:
    """onnxruntime's CalibrationDataReader pulling batches from a calibration set, one at a time.

    onnxruntime's MinMax calibrator keeps every batch's reduced outputs until
    it computes the ranges; read in strides (its ``CalibStridedMinMax``:
    ``set_range`` before each stride) it computes and merges the ranges stride
    by stride, min of mins and max of maxes (the same ranges), and keeps
    nothing per batch. (Its ``CalibMaxIntermediateOutputs`` drops batches
    instead, in onnxruntime 1.32.)
    """

    def __init__(self, calibration, input_name: str, batch: int, progress=None):
        self._input_name = input_name
        self._batches = calibration.batches(batch, progress)
        self._count = len(calibration) // batch
        self._left = self._count

    def __len__(self) -> int:
        return self._count

    def stride(self) -> int:
        """The largest divisor of the batch count up to 16 (onnxruntime needs the strides to tile it)."""
        return max(d for d in range(1, min(16, self._count) + 1) if self._count % d == 0)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._left = end_index - start_index

    def get_next(self):
        if self._left <= 0:
            return None
        self._left -= 1
        inputs = next(self._batches, None)
        return None if inputs is None else {self._input_name: inputs}


def quantize_onnx(float_onnx: Path, calibration, target: Path, work_dir: Path,
                  types: str = "u8u8", progress: Callable[[int, int], None] | None = None) -> None:
    """QDQ 8-bit ONNX of ``float_onnx`` with ``onnxruntime.quantization.quantize_static``.

    Per-channel weights and per-tensor activations of the integer ``types``
    (a key of :data:`ONNX_TYPES`), MinMax calibration on ``calibration`` (a
    :class:`~edgeshuffle.data.sets.CalibrationSet`, read batch by batch).
    Writes ``target`` (the caller makes it atomic) using ``work_dir`` for the
    pre-processed model.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if types not in ONNX_TYPES:
        raise ConversionError(f"unknown ONNX integer types {types!r} (choose from {', '.join(ONNX_TYPES)})")
    activation_type, weight_type = (getattr(QuantType, name) for name in ONNX_TYPES[types])
    model = onnx.load(str(float_onnx))
    input_name = model.graph.input[0].name
    dims = model.graph.input[0].type.tensor_type.shape.dim
    batch = dims[0].dim_value or 1
    prepared = work_dir / "float32.prepared.onnx"
    try:
        quant_pre_process(str(float_onnx), str(prepared), skip_symbolic_shape=True)
        reader = _CalibrationReader(calibration, input_name, batch, progress)
        quantize_static(str(prepared), str(target), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=activation_type, weight_type=weight_type,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"CalibStridedMinMax": reader.stride()})
    except Exception as error:  # onnxruntime.quantization raises untyped errors
        raise ConversionError(f"ONNX int8 quantization failed: {str(error).splitlines()[0]}") from None
    finally:
        prepared.unlink(missing_ok=True)


# --- The quantize step: calibration, both int8 artifacts, the accuracy gate, quantize.json ------------

INT8_TFLITE, INT8_ONNX, REPORT_FILE = "int8.tflite", "int8.onnx", "quantize.json"


@dataclasses.dataclass(frozen=True)
class QuantizeConfig:
    """How to quantize and what to gate on.

    ``max_drop`` is in accuracy points when the evaluation set is labelled,
    else in percent of top-1 agreement with Keras.
    """

    calibration: Path
    num_calibration: int = 200
    io_type: str = "int8"
    onnx_types: str = "u8u8"
    eval: Path | None = None
    eval_limit: int | None = None
    max_drop: float = 1.0
    strict: bool = False
    layer_report: bool = False
    seed: int = 0
    trust_code: bool = False  # the model was loaded with Keras' safe mode off (recorded in quantize.json)

    def __post_init__(self) -> None:
        if self.io_type not in IO_TYPES:
            raise InvalidArgumentError(f"Input/output type must be one of {IO_TYPES}. "
                                       f"Received: `io={self.io_type}`")
        if self.onnx_types not in ONNX_TYPES:
            raise InvalidArgumentError(f"ONNX integer types must be one of {tuple(ONNX_TYPES)}. "
                                       f"Received: `onnx_types={self.onnx_types}`")
        if not isinstance(self.num_calibration, int) or self.num_calibration < 1:
            raise InvalidArgumentError(f"Need at least one calibration image. "
                                       f"Received: `num_calibration={self.num_calibration}`")
        if not 0 <= self.max_drop <= 100:
            raise InvalidArgumentError(f"Max drop must be within 0-100. Received: `max_drop={self.max_drop}`")

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}


@dataclasses.dataclass(frozen=True)
class QuantizeReport:
    """Everything ``quantize.json`` holds."""

    status: str  # "passed", "failed" or "ungated" (no --eval)
    reason: str | None
    output_dir: str
    files: dict[str, str]
    model: dict[str, Any]
    rewrites: dict[str, Any]  # each pass of the int8 edge graph, how often it fired, where; what stays outside XNNPACK
    config: dict[str, Any]
    calibration: dict[str, Any]
    parity: dict[str, Any] | None
    tflite: dict[str, Any]
    onnx: dict[str, Any]
    sizes: dict[str, int]
    layer_errors: list[dict[str, Any]] | None
    versions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _float_artifacts_match(output_dir: Path, source) -> bool:
    """Whether ``output_dir`` already holds float artifacts of this model (from convert), by their metadata."""
    from edgeshuffle.export.convert import ONNX_FILE, TFLITE_FILE
    from edgeshuffle.metadata import read_metadata

    def same(meta) -> bool:
        return meta is not None and (meta.name, meta.spec, meta.preprocessing, meta.class_names) == (
            source.name, source.spec, source.preprocessing, source.class_names)

    files = [output_dir / TFLITE_FILE, output_dir / ONNX_FILE]
    return all(f.is_file() and same(read_metadata(f)) for f in files)


def write_int8_onnx(float_onnx: Path, calibration, target: Path, metadata, types: str,
                    progress: Callable[[int, int], None] | None = None) -> None:
    import onnx

    from edgeshuffle.atomic import atomic_path

    with atomic_path(target) as temporary:
        quantize_onnx(float_onnx, calibration, temporary, target.parent, types, progress)
        proto = onnx.load(str(temporary))
        del proto.metadata_props[:]
        for key, value in metadata.onnx_props().items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(temporary))


def onnx_output_scale(path: Path) -> float | None:
    """The quantization step of a QDQ ONNX model's output: the scale of the DequantizeLinear that yields it.

    Walks back from the graph output through ops that move values without
    changing their quantization (Identity, Reshape, Flatten, Squeeze); the
    scale may be an initializer or a Constant node. None for a float model.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    producers = {out: node for node in graph.node for out in node.output}
    values = {i.name: i for i in graph.initializer}
    values.update({n.output[0]: a.t for n in graph.node if n.op_type == "Constant"
                   for a in n.attribute if a.name == "value"})
    name = graph.output[0].name
    for _ in graph.node:  # bounded: a malformed graph may have a cycle
        node = producers.get(name)
        if node is None:
            return None
        if node.op_type == "DequantizeLinear":
            scale = values.get(node.input[1])
            return None if scale is None else float(numpy_helper.to_array(scale).reshape(-1)[0])
        if node.op_type not in ("Identity", "Reshape", "Flatten", "Squeeze"):
            return None
        name = node.input[0]
    return None


def _gate(parity, max_drop: float) -> list[str]:
    """Accuracy drop (labelled) or agreement loss (unlabelled) of each artifact beyond ``max_drop``."""
    failures = []
    for result in parity.results:
        if result.is_reference:
            continue
        c = result.comparison
        if parity.labelled:
            drop = 100 * (c.reference_accuracy - c.accuracy)
            if drop > max_drop:
                failures.append(f"{Path(result.model).name} accuracy {100 * c.accuracy:.2f}% is "
                                f"{drop:.2f} points below Keras (max {max_drop:g})")
        elif 100 * (1 - c.top1_agreement) > max_drop:
            failures.append(f"{Path(result.model).name} top-1 agreement {100 * c.top1_agreement:.2f}% "
                            f"(min {100 - max_drop:g}%)")
    return failures


def quantize(model, output_dir: Path, config: QuantizeConfig,
             progress: Callable[[str, int, int], None] | None = None, jobs: int | None = None) -> QuantizeReport:
    """Quantize a Keras image classifier to int8 TFLite and ONNX, calibrated on real images, gated on accuracy.

    Writes ``int8.tflite``, ``int8.onnx`` and ``quantize.json`` into
    ``output_dir`` (and the float artifacts and ``model.keras`` when it does
    not hold this model's already), every file atomically. With
    ``config.eval``, every artifact is compared with Keras on those images
    and the step fails when an artifact loses more than ``config.max_drop``.

    Args:
        model: anything :func:`~edgeshuffle.models.source.source_model` takes (a ``keras.Model``,
            a ``.keras`` path, a :class:`~edgeshuffle.models.source.SourceModel`); the model itself,
            unchanged, is the Keras reference.
        output_dir: created if missing.
        config: :class:`QuantizeConfig`.
        progress: ``progress(step, done, total)`` as the work advances.
        jobs: threads that decode calibration and evaluation images ahead (and run the evaluated models
            side by side) [default: the usable cores]; the artifacts and figures do not depend on it.

    Raises:
        InputFileError: unusable calibration or evaluation folder, unwritable output folder.
        InvalidArgumentError: ``jobs`` below 1.
        ConversionError: a converter or the quantizer failed.
        ParityError: the accuracy gate failed; artifacts and a ``failed`` report are written first.
    """
    from edgeshuffle.atomic import ensure_writable_dir, write_bytes, write_text
    from edgeshuffle.data.images import find_images
    from edgeshuffle.data.sets import calibration_set
    from edgeshuffle.data.stream import check_jobs, default_jobs
    from edgeshuffle.errors import InputFileError
    from edgeshuffle.export.convert import (MODEL_FILE, ONNX_FILE, TFLITE_FILE, export_float, model_summary,
                                            rewrite_report, tool_versions)
    from edgeshuffle.graph import INT8_SHUFFLE, RewriteOptions, rewrite
    from edgeshuffle.metadata import tflite_with_metadata
    from edgeshuffle.models.io import save_model
    from edgeshuffle.models.source import source_model
    from edgeshuffle.parity import image_parity
    from edgeshuffle.runtime.delegation import xnnpack_delegation
    from edgeshuffle.runtime.onnx_graph import onnx_ops

    jobs = check_jobs(default_jobs() if jobs is None else jobs)
    step = progress or (lambda name, done, total: None)
    output_dir = ensure_writable_dir(Path(output_dir))
    source = source_model(model)
    reference = source.model
    calibration = calibration_set(
        config.calibration, source.preprocessing, config.num_calibration, seed=config.seed,
        strict=config.strict, progress=lambda done: step("calibration images", done, config.num_calibration),
        jobs=jobs)
    if config.eval is not None and not find_images(config.eval):  # refuse a bad --eval before writing anything
        raise InputFileError(f"no images (.jpg, .jpeg, .png, .bmp) in evaluation folder {config.eval}")

    step("float", 0, 1)
    if not _float_artifacts_match(output_dir, source):
        save_model(reference, output_dir / MODEL_FILE, metadata=source.metadata())
        export_float(source, output_dir)
    elif not (output_dir / MODEL_FILE).is_file():
        save_model(reference, output_dir / MODEL_FILE, metadata=source.metadata())

    step("tflite", 0, 1)
    options = RewriteOptions(shuffle=INT8_SHUFFLE)
    rewritten = rewrite(reference, options)
    metadata = source.metadata(precision="int8", form=dataclasses.asdict(options))
    write_bytes(output_dir / INT8_TFLITE, tflite_with_metadata(
        quantize_tflite(rewritten.model, calibration, config.io_type,
                        lambda done, total: step("tflite calibration", done, total)), metadata))
    delegation = xnnpack_delegation(output_dir / INT8_TFLITE)

    step("onnx", 0, 1)
    write_int8_onnx(output_dir / ONNX_FILE, calibration, output_dir / INT8_ONNX, metadata, config.onnx_types,
                    lambda done, total: step("onnx calibration", done, total))

    parity, failures = None, []
    if config.eval is not None:
        artifacts = [output_dir / name for name in (TFLITE_FILE, INT8_TFLITE, ONNX_FILE, INT8_ONNX)]
        parity = image_parity(artifacts, config.eval, reference=output_dir / MODEL_FILE, limit=config.eval_limit,
                              strict=config.strict, progress=lambda done, total: step("parity", done, total),
                              jobs=jobs)
        failures = _gate(parity, config.max_drop)

    errors = None
    if config.layer_report:
        step("layers", 0, 1)
        from edgeshuffle.export.layer_error import layer_errors
        from edgeshuffle.graph.passes import PASSES

        # Every pass but the native grouped conv: the int8 graph's layer names and layouts, runnable by Keras.
        executable = rewrite(reference, options, passes=[p for p in PASSES if p.name != "grouped_conv"]).model
        errors = [e.to_dict() for e in layer_errors(output_dir / INT8_TFLITE, executable, calibration.inputs(8))]

    files = {"keras": MODEL_FILE, "float32_tflite": TFLITE_FILE, "int8_tflite": INT8_TFLITE,
             "float32_onnx": ONNX_FILE, "int8_onnx": INT8_ONNX, "report": REPORT_FILE}
    report = QuantizeReport(
        status="failed" if failures else ("passed" if parity is not None else "ungated"),
        reason="; ".join(failures) or (None if parity is not None else "no --eval images: accuracy not gated"),
        output_dir=str(output_dir),
        files=files,
        model=model_summary(source),
        rewrites=rewrite_report(rewritten.report, delegation),
        config=config.to_dict(),
        calibration={"source": str(config.calibration), "images": len(calibration),
                     "skipped": [str(p) for p, _ in calibration.skipped], "seed": config.seed,
                     "files": [str(p.relative_to(config.calibration)) for p in calibration.paths]},
        parity=None if parity is None else {**parity.to_dict(), "max_drop": config.max_drop},
        tflite={"file": INT8_TFLITE, "io_type": config.io_type, "xnnpack": delegation.to_dict(),
                "op_histogram": delegation.op_histogram},
        onnx={"file": INT8_ONNX, "format": "QDQ", "types": config.onnx_types,
              "weights": f"{ONNX_TYPES[config.onnx_types][1][1:].lower()} per-channel",
              "activations": f"{ONNX_TYPES[config.onnx_types][0][1:].lower()} per-tensor",
              "op_histogram": onnx_ops(output_dir / INT8_ONNX)[0]},
        sizes={name: (output_dir / f).stat().st_size for name, f in files.items()
               if name != "report" and (output_dir / f).is_file()},
        layer_errors=errors,
        versions=tool_versions(),
    )
    write_text(output_dir / REPORT_FILE, json.dumps(report.to_dict(), indent=2) + "\n")
    if failures:
        error = ParityError(f"accuracy gate failed: {failures[0]} (artifacts kept, see {output_dir / REPORT_FILE})")
        error.report = report
        raise error
    return report
