"""Comparing a model's logits with a reference's: agreement, accuracy, error statistics."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """How one set of logits compares with the reference logits on the same inputs.

    ``max_relative_error`` is the max absolute difference divided by the
    largest absolute reference logit (a scale-free figure for the gates).
    """

    samples: int
    top1_agreement: float  # fraction of inputs whose top-1 class equals the reference's
    max_abs_error: float
    max_relative_error: float
    mean_cosine: float
    accuracy: float | None = None  # against labels, when there are labels
    reference_accuracy: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def passes(self, max_relative_error: float, min_agreement: float) -> bool:
        return self.max_relative_error <= max_relative_error and self.top1_agreement >= min_agreement


def compare(reference: np.ndarray, logits: np.ndarray, labels: np.ndarray | None = None) -> Comparison:
    reference = np.asarray(reference, dtype=np.float64)
    logits = np.asarray(logits, dtype=np.float64)
    if reference.shape != logits.shape:
        raise ValueError(f"logit shapes differ: {reference.shape} vs {logits.shape}")
    diff = np.abs(reference - logits)
    scale = max(float(np.abs(reference).max()), 1e-12)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(logits, axis=1)
    cosine = np.sum(reference * logits, axis=1) / np.maximum(norms, 1e-12)
    accuracy = reference_accuracy = None
    if labels is not None:
        labels = np.asarray(labels)
        accuracy = float(np.mean(logits.argmax(1) == labels))
        reference_accuracy = float(np.mean(reference.argmax(1) == labels))
    return Comparison(
        samples=len(reference),
        top1_agreement=float(np.mean(reference.argmax(1) == logits.argmax(1))),
        max_abs_error=float(diff.max()),
        max_relative_error=float(diff.max()) / scale,
        mean_cosine=float(cosine.mean()),
        accuracy=accuracy,
        reference_accuracy=reference_accuracy,
    )


# --- Image-set parity on the board: several artifacts against a reference ------------------------

PARITY_SCHEMA = "edgeshuffle.parity"
PARITY_SCHEMA_VERSION = 1
PARITY_CHUNK = 32  # images decoded and run together


@dataclasses.dataclass(frozen=True)
class ModelParity:
    """One artifact on an image set, compared with the reference artifact."""

    model: str
    label: str
    runtime: str
    precision: str | None
    comparison: Comparison  # against the reference's logits (the reference against itself: exact)
    is_reference: bool = False

    def to_dict(self) -> dict:
        return {"model": self.model, "label": self.label, "runtime": self.runtime, "precision": self.precision,
                "is_reference": self.is_reference, **self.comparison.to_dict()}


@dataclasses.dataclass(frozen=True)
class ParityReport:
    images: str
    reference: str
    evaluated: int  # images every model ran on
    skipped: int  # images that failed to decode
    labelled: bool  # class-subfolder layout: accuracy is reported
    results: tuple[ModelParity, ...]
    skipped_files: tuple[str, ...] = ()
    # Raw outputs, kept out of to_dict(): logits[i] are results[i]'s logits on evaluated_files, in order.
    logits: tuple[np.ndarray, ...] = dataclasses.field(default=(), repr=False, compare=False)
    evaluated_files: tuple[str, ...] = dataclasses.field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"schema": PARITY_SCHEMA, "schema_version": PARITY_SCHEMA_VERSION, "images": self.images,
                "reference": self.reference, "evaluated": self.evaluated, "skipped": self.skipped,
                "skipped_files": list(self.skipped_files), "labelled": self.labelled,
                "results": [r.to_dict() for r in self.results]}


def _label_map(folder_classes: tuple[str, ...], model_classes: tuple[str, ...] | None, path) -> list[int]:
    """Folder class index -> the model's class index: by name when the model names its classes."""
    if not model_classes:
        return list(range(len(folder_classes)))
    index = {name: i for i, name in enumerate(model_classes)}
    missing = [name for name in folder_classes if name not in index]
    if missing:
        from edgeshuffle.errors import InputFileError

        raise InputFileError(f"class folder '{missing[0]}' is not one of the classes of {path}")
    return [index[name] for name in folder_classes]


def image_parity(models, images, reference=None, runtime: str = "auto", threads: int = 1,
                 limit: int | None = None, strict: bool = False, progress=None,
                 tflite_kernels: str = "xnnpack", preprocessing=None, class_names=None) -> ParityReport:
    """Run every artifact on the images of ``images`` and compare each with ``reference``.

    Each artifact is fed the images preprocessed by its *own* metadata
    (``read_metadata(path).preprocessing``), so a board needs nothing but the
    artifacts. The reference defaults to the first float32 model given (the
    first model if none is float). A folder with one subfolder per class gives
    labels and so accuracy; class folders are matched to the model's class
    names when its metadata has them, else taken in sorted order.

    Images that fail to decode are skipped and counted, or raise under ``strict``.
    ``progress(done, total)`` is called as images are evaluated. ``tflite_kernels``
    picks LiteRT's kernels for TFLite models: xnnpack, builtin or reference.
    ``preprocessing`` and ``class_names`` describe the artifacts that carry no
    metadata (files edgeshuffle did not write; see
    :func:`~edgeshuffle.metadata.artifact_metadata`).

    Raises:
        InputFileError: a missing or invalid model, an artifact without metadata and no
            ``preprocessing``, no images.
        InvalidArgumentError: ``limit`` below 1; ``preprocessing`` contradicting an artifact's input size.
    """
    from pathlib import Path

    from edgeshuffle.bench import check_image_input, short_labels
    from edgeshuffle.data.images import labelled_images, load_rgb, preprocess
    from edgeshuffle.errors import InputFileError, InvalidArgumentError
    from edgeshuffle.metadata import artifact_metadata
    from edgeshuffle.runtime.base import open_runner

    if limit is not None and limit < 1:
        raise InvalidArgumentError(f"Limit must be at least 1. Received: `limit={limit}`")
    paths = [Path(m) for m in models]
    if reference is not None and not any(Path(reference).resolve() == p.resolve() for p in paths):
        paths.insert(0, Path(reference))
    if not paths:
        raise InvalidArgumentError("Give at least one model. Received: `models=()`")
    metadata = {path: artifact_metadata(path, preprocessing, class_names) for path in paths}
    if reference is None:
        reference_path = next((p for p in paths if metadata[p].precision == "float32"), paths[0])
    else:
        reference_path = next(p for p in paths if p.resolve() == Path(reference).resolve())
    image_set = labelled_images(Path(images))
    if not image_set.paths:
        raise InputFileError(f"no images (.jpg, .jpeg, .png, .bmp) under {images}")
    chosen = image_set.paths[:limit] if limit else image_set.paths
    labels = image_set.labels[:len(chosen)] if image_set.labels is not None else None

    runners = [open_runner(p, runtime=runtime, threads=threads, tflite_kernels=tflite_kernels) for p in paths]
    logits: list[list[np.ndarray]] = [[] for _ in paths]
    kept_labels: list[int] = []
    kept_files: list[str] = []
    skipped: list[str] = []
    try:
        for runner in runners:
            runner.activate()
            check_image_input(runner.input_info(), runner.path)
        # Chunks of images: one call per chunk for runners with a free batch (Keras), bounded memory.
        for start in range(0, len(chosen), PARITY_CHUNK):
            images_in_chunk, numbers = [], []
            for number in range(start, min(start + PARITY_CHUNK, len(chosen))):
                try:
                    images_in_chunk.append(load_rgb(chosen[number]))
                    numbers.append(number)
                except InputFileError:
                    if strict:
                        raise
                    skipped.append(str(chosen[number]))
                    log.warning("skipping an image that does not decode: %s", chosen[number])
            if images_in_chunk:
                cache: dict = {}
                for i, (path, runner) in enumerate(zip(paths, runners)):
                    pre = metadata[path].preprocessing
                    if pre not in cache:
                        cache[pre] = np.stack([preprocess(image, pre) for image in images_in_chunk])
                    logits[i].extend(runner.infer(cache[pre]))
                kept_files.extend(str(chosen[n]) for n in numbers)
                if labels is not None:
                    kept_labels.extend(labels[n] for n in numbers)
            if progress:
                progress(min(start + PARITY_CHUNK, len(chosen)), len(chosen))
    finally:
        for runner in runners:
            if runner.active:
                runner.deactivate()
    if not logits[0]:
        raise InputFileError(f"none of the {len(chosen)} images under {images} decodes")
    ref_index = paths.index(reference_path)
    ref_logits = np.stack(logits[ref_index])
    labels_used = None
    if kept_labels:
        mapping = _label_map(image_set.class_names, metadata[reference_path].class_names, reference_path)
        labels_used = np.asarray([mapping[k] for k in kept_labels])
    results, all_logits = [], []
    for i, (path, label) in enumerate(zip(paths, short_labels(tuple(paths)))):
        model_logits = np.stack(logits[i])
        if model_logits.shape != ref_logits.shape:
            raise InputFileError(f"{path} gives logits of shape {model_logits.shape[1:]}, the reference "
                                 f"{reference_path} {ref_logits.shape[1:]}: not the same classifier")
        all_logits.append(model_logits)
        results.append(ModelParity(model=str(path), label=label, runtime=runners[i].kind,
                                   precision=metadata[path].precision,
                                   comparison=compare(ref_logits, model_logits, labels_used),
                                   is_reference=i == ref_index))
    return ParityReport(images=str(images), reference=str(reference_path), evaluated=len(ref_logits),
                        skipped=len(skipped), labelled=labels is not None, results=tuple(results),
                        skipped_files=tuple(skipped[:20]), logits=tuple(all_logits),
                        evaluated_files=tuple(kept_files))
