"""`edgeshuffle convert`: any Keras image classifier to float TFLite and ONNX, proven equal by a parity gate.

:func:`export_float` writes the two float artifacts of a model's edge graph
(the passes of :mod:`edgeshuffle.graph`); :func:`convert` is the whole step:
model in (the user's own, unchanged, is the parity reference), ``model.keras``,
``float32.tflite``, ``float32.onnx`` and ``convert.json`` out, gate last. A
failed gate leaves the artifacts in place, marks the report ``failed`` and
raises :class:`~edgeshuffle.errors.ParityError`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeshuffle.errors import InvalidArgumentError, ParityError

log = logging.getLogger(__name__)

MODEL_FILE, TFLITE_FILE, ONNX_FILE, REPORT_FILE = "model.keras", "float32.tflite", "float32.onnx", "convert.json"
MAX_RELATIVE_ERROR = 1e-4
MIN_TOP1_AGREEMENT = 1.0
STEPS = ("rewrite", "tflite", "onnx", "parity")


@dataclasses.dataclass(frozen=True)
class ConvertConfig:
    """How to convert: the edge graph's batch and shuffle, the ONNX opset and form, the gate's inputs.

    ``onnx_form`` is a key of :data:`~edgeshuffle.export.onnx_forms.ONNX_FORMS`
    (None: :data:`~edgeshuffle.export.onnx_forms.DEFAULT_ONNX_FORM`).
    """

    batch: int = 1
    shuffle: str = "reshape"
    opset: int = 17
    onnx_form: str | None = None
    images: Path | None = None  # parity inputs: up to ``samples`` images from here, else random inputs
    samples: int = 8
    seed: int = 0
    max_relative_error: float = MAX_RELATIVE_ERROR
    min_top1_agreement: float = MIN_TOP1_AGREEMENT
    trust_code: bool = False  # the model was loaded with Keras' safe mode off (recorded in convert.json)

    def __post_init__(self) -> None:
        from edgeshuffle.export.onnx import validate_opset
        from edgeshuffle.export.onnx_forms import DEFAULT_ONNX_FORM, validate_onnx_form
        from edgeshuffle.graph import SHUFFLES

        if not isinstance(self.batch, int) or self.batch < 1:
            raise InvalidArgumentError(f"Batch must be a positive integer. Received: `batch={self.batch}`")
        if self.shuffle not in SHUFFLES:
            raise InvalidArgumentError(f"Shuffle must be one of {SHUFFLES}. Received: `shuffle={self.shuffle}`")
        validate_opset(self.opset)
        object.__setattr__(self, "onnx_form", validate_onnx_form(self.onnx_form or DEFAULT_ONNX_FORM).name)
        if not isinstance(self.samples, int) or self.samples < 1:
            raise InvalidArgumentError(f"Samples must be at least 1. Received: `samples={self.samples}`")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["images"] = str(self.images) if self.images is not None else None
        return data


@dataclasses.dataclass(frozen=True)
class FloatArtifacts:
    """What :func:`export_float` wrote, and the facts read back from the files."""

    tflite: Path
    onnx: Path
    edge_model: Any  # the rewritten Keras model (the passes' output); traced, not executed
    rewrites: Any  # edgeshuffle.graph.RewriteReport
    tflite_ops: dict[str, int]
    tflite_forbidden_ops: list[str]
    tflite_max_rank: int
    xnnpack: dict[str, Any]
    onnx_ops: dict[str, int]
    onnx_opset: int
    onnx_form: str
    shuffles: int


def _shuffle_count(model) -> int:
    from edgeshuffle.models.layers import ChannelShuffle

    return sum(isinstance(layer, ChannelShuffle) for layer in model.layers)


def rewrite_report(rewrites, delegation) -> dict[str, Any]:
    """The passes (fired how often, on which layers) and what stays outside XNNPACK, for the JSON reports."""
    return {**rewrites.to_dict(), "outside_xnnpack": delegation.undelegated_ops,
            "xnnpack_partitions": delegation.partitions}


def export_float(model, output_dir: Path, batch: int = 1, shuffle: str = "reshape", opset: int = 17,
                 onnx_form: str | None = None, progress: Callable[[str], None] | None = None) -> FloatArtifacts:
    """Write ``float32.tflite`` and ``float32.onnx`` of ``model``'s edge graph into ``output_dir``.

    Args:
        model: anything :func:`~edgeshuffle.models.source.source_model` takes (a
            ``keras.Model``, a ``.keras`` path, a :class:`~edgeshuffle.models.source.SourceModel`).
        output_dir: an existing, writable folder.
        batch: the static batch of both artifacts.
        shuffle: the channel shuffle's ops (:data:`edgeshuffle.graph.SHUFFLES`).
        opset: the ONNX opset.
        onnx_form: the ONNX graph form (see :mod:`edgeshuffle.export.onnx_forms`; None: the default).
        progress: called with each step's name (``rewrite``, ``tflite``, ``onnx``) as it starts.

    Returns:
        :class:`FloatArtifacts`; both files carry :class:`~edgeshuffle.metadata.ArtifactMetadata`.

    Raises:
        ConversionError: a rewrite, a converter or a check failed (named in the message).
    """
    import onnx

    from edgeshuffle.atomic import atomic_path, write_bytes
    from edgeshuffle.export.onnx import float_onnx_model, onnx_op_histogram
    from edgeshuffle.export.onnx_forms import DEFAULT_ONNX_FORM
    from edgeshuffle.export.tflite import (
        float_tflite_bytes,
        forbidden_ops,
        tflite_custom_op_codes,
        tflite_max_tensor_rank,
        tflite_op_histogram,
    )
    from edgeshuffle.graph import RewriteOptions, rewrite
    from edgeshuffle.metadata import tflite_with_metadata
    from edgeshuffle.models.source import source_model
    from edgeshuffle.runtime.delegation import xnnpack_delegation

    step = progress or (lambda name: None)
    source = source_model(model)
    output_dir = Path(output_dir)
    step("rewrite")
    options = RewriteOptions(batch=batch, shuffle=shuffle)
    rewritten = rewrite(source.model, options)
    edge = rewritten.model
    metadata = source.metadata(precision="float32", form=dataclasses.asdict(options))

    step("tflite")
    tflite_path = output_dir / TFLITE_FILE
    write_bytes(tflite_path, tflite_with_metadata(float_tflite_bytes(edge), metadata))
    tflite_ops = tflite_op_histogram(tflite_path)
    delegation = xnnpack_delegation(tflite_path)
    log.info("%s: %d ops, %d XNNPACK partition(s)", tflite_path, sum(tflite_ops.values()), delegation.partitions)

    step("onnx")
    onnx_path = output_dir / ONNX_FILE
    onnx_form = onnx_form or DEFAULT_ONNX_FORM
    proto = float_onnx_model(edge, opset=opset, metadata_props=metadata.onnx_props(), form=onnx_form)
    with atomic_path(onnx_path) as temporary:
        onnx.save(proto, str(temporary))
    onnx_ops = onnx_op_histogram(proto)
    log.info("%s: %d nodes, %d Transpose", onnx_path, sum(onnx_ops.values()), onnx_ops.get("Transpose", 0))

    return FloatArtifacts(
        tflite=tflite_path, onnx=onnx_path, edge_model=edge, rewrites=rewrite_report(rewritten.report, delegation),
        tflite_ops=tflite_ops, tflite_forbidden_ops=forbidden_ops(tflite_ops, tflite_custom_op_codes(tflite_path)),
        tflite_max_rank=tflite_max_tensor_rank(tflite_path), xnnpack=delegation.to_dict(),
        onnx_ops=onnx_ops, onnx_opset=opset, onnx_form=onnx_form, shuffles=_shuffle_count(edge))


def parity_inputs(source, config: ConvertConfig) -> tuple[np.ndarray, str]:
    """The gate's inputs: preprocessed images from ``config.images``, else seeded random-pixel images.

    Random pixels go through the model's own normalisation, so the inputs
    have the range the model expects (about -2..2 for ImageNet mean/std, 0-255
    for the official BGR preprocessing).

    Returns the float32 NHWC batch (a multiple of ``config.batch`` samples)
    and a description of where it came from.

    Raises:
        InputFileError: the image folder is missing, empty or holds an unreadable image.
    """
    from edgeshuffle.data import find_images
    from edgeshuffle.data.sets import load_images
    from edgeshuffle.errors import InputFileError

    count = -(-config.samples // config.batch) * config.batch
    if config.images is not None:
        paths = find_images(config.images)
        if not paths:
            raise InputFileError(f"no images in {config.images}")
        paths = [paths[i % len(paths)] for i in range(count)]
        batch = load_images(paths, source.preprocessing, strict=True).inputs
        return batch, f"{len(set(paths))} images from {config.images}"
    rng = np.random.default_rng(config.seed)
    pre = source.preprocessing
    pixels = rng.uniform(0.0, 255.0, (count, *source.input_size, 3)).astype(np.float32)
    batch = (pixels - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return batch.astype(np.float32), f"{count} random-pixel images, seed {config.seed}"


def parity_gate(reference_model, artifacts: dict[str, Path], inputs: np.ndarray) -> dict[str, Any]:
    """Run the Keras reference and every artifact on ``inputs``; compare each with the reference."""
    from edgeshuffle.parity import compare
    from edgeshuffle.runtime import KerasRunner, open_runner

    with KerasRunner(None, model=reference_model) as runner:
        reference = runner.infer(inputs)
    comparisons = {}
    for name, path in artifacts.items():
        with open_runner(path, threads=1) as runner:
            comparisons[name] = compare(reference, runner.infer(inputs))
    return comparisons


def model_summary(source) -> dict[str, Any]:
    return {"name": source.name, "input_size": list(source.input_size), "classes": source.classes,
            "spec": source.spec.to_dict() if source.spec is not None else None}


def tool_versions() -> dict[str, str]:
    import importlib.metadata

    versions = {"python": platform.python_version()}
    for package in ("edgeshuffle", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert",
                    "numpy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            if package == "tensorflow":
                try:
                    versions[package] = importlib.metadata.version("tensorflow-cpu")
                except importlib.metadata.PackageNotFoundError:
                    pass
    return versions


@dataclasses.dataclass(frozen=True)
class ConvertReport:
    """Everything ``convert.json`` holds."""

    status: str  # "passed" or "failed"
    reason: str | None
    output_dir: str
    files: dict[str, str]
    model: dict[str, Any]  # name, input size, classes, and the spec of an edgeshuffle ShuffleNet (else None)
    rewrites: dict[str, Any]  # each pass, how often it fired and on which layers; what stays outside XNNPACK
    config: dict[str, Any]
    parity: dict[str, Any]
    tflite: dict[str, Any]
    onnx: dict[str, Any]
    versions: dict[str, str]

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _gate_failures(comparisons: dict, config: ConvertConfig) -> list[str]:
    failures = []
    for name, result in comparisons.items():
        if result.max_relative_error > config.max_relative_error:
            failures.append(f"{name} max relative error {result.max_relative_error:.2e} > "
                            f"{config.max_relative_error:.0e}")
        if result.top1_agreement < config.min_top1_agreement:
            failures.append(f"{name} top-1 agreement {result.top1_agreement:.1%} < "
                            f"{config.min_top1_agreement:.0%}")
    return failures


def convert(model, output_dir: Path, config: ConvertConfig | None = None,
            progress: Callable[[str], None] | None = None) -> ConvertReport:
    """Convert a Keras image classifier to float TFLite and ONNX and gate the result on parity with it.

    Writes ``model.keras`` (the user's model, unchanged),
    ``float32.tflite``, ``float32.onnx`` and ``convert.json`` into
    ``output_dir``, every file atomically.

    Args:
        model: anything :func:`~edgeshuffle.models.source.source_model` takes: a
            ``keras.Model`` (functional or Sequential; edgeshuffle's ShuffleNets
            included), a ``.keras`` path or a :class:`~edgeshuffle.models.source.SourceModel`.
        output_dir: created if missing.
        config: :class:`ConvertConfig`; defaults: batch 1, reshape shuffle, opset 17, 8 random inputs.
        progress: called with each step's name (:data:`STEPS`) as it starts.

    Returns:
        The :class:`ConvertReport` (also written as ``convert.json``).

    Raises:
        InputFileError: the output folder cannot be written, or ``config.images`` is unusable.
        ConversionError: a rewrite or converter failed.
        ParityError: the gate failed; the artifacts and a ``failed`` report are written first.
    """
    from edgeshuffle.atomic import ensure_writable_dir, write_text
    from edgeshuffle.models.io import save_model
    from edgeshuffle.models.source import source_model

    config = config or ConvertConfig()
    step = progress or (lambda name: None)
    output_dir = ensure_writable_dir(Path(output_dir))
    source = source_model(model)
    reference = source.model
    inputs, origin = parity_inputs(source, config)  # fail on bad images before converting
    save_model(reference, output_dir / MODEL_FILE, metadata=source.metadata())

    artifacts = export_float(source, output_dir, batch=config.batch, shuffle=config.shuffle,
                             opset=config.opset, onnx_form=config.onnx_form, progress=step)
    step("parity")
    comparisons = parity_gate(reference, {"tflite": artifacts.tflite, "onnx": artifacts.onnx}, inputs)
    failures = _gate_failures(comparisons, config)
    report = ConvertReport(
        status="failed" if failures else "passed",
        reason="; ".join(failures) or None,
        output_dir=str(output_dir),
        files={"keras": MODEL_FILE, "tflite": TFLITE_FILE, "onnx": ONNX_FILE, "report": REPORT_FILE},
        model=model_summary(source),
        rewrites=artifacts.rewrites,
        config=config.to_dict(),
        parity={"reference": "keras", "inputs": origin, "samples": int(len(inputs)),
                "max_relative_error": config.max_relative_error,
                "min_top1_agreement": config.min_top1_agreement,
                "comparisons": {name: c.to_dict() for name, c in comparisons.items()}},
        tflite={"file": TFLITE_FILE, "op_histogram": artifacts.tflite_ops,
                "forbidden_ops": artifacts.tflite_forbidden_ops, "max_tensor_rank": artifacts.tflite_max_rank,
                "xnnpack": artifacts.xnnpack},
        onnx={"file": ONNX_FILE, "opset": artifacts.onnx_opset, "form": artifacts.onnx_form,
              "op_histogram": artifacts.onnx_ops,
              "transposes": artifacts.onnx_ops.get("Transpose", 0), "channel_shuffles": artifacts.shuffles,
              "max_transposes": artifacts.shuffles + 2, "input": "input", "output": "logits"},
        versions=tool_versions(),
    )
    write_text(output_dir / REPORT_FILE, json.dumps(report.to_dict(), indent=2) + "\n")
    for name, result in comparisons.items():
        log.info("parity %s: max relative error %.2e, top-1 agreement %.1f%%", name,
                 result.max_relative_error, 100 * result.top1_agreement)
    if failures:
        error = ParityError(f"parity gate failed: {report.reason} (artifacts kept, see {output_dir / REPORT_FILE})")
        error.report = report
        raise error
    return report
