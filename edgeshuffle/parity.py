"""Comparing a model's logits with a reference's: agreement, accuracy, error statistics."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

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
    """How ``logits`` compare with ``reference`` (both ``(samples, classes)``), as one :class:`Comparison`."""
    running = RunningComparison()
    running.add(reference, logits, labels)
    return running.result()


class RunningComparison:
    """The figures of :class:`Comparison`, accumulated batch by batch without keeping any logits.

    Counts and maxima are exact whatever the batches; the cosines are summed
    image by image in order (compensated), so the batch sizes do not change
    the mean either.
    """

    def __init__(self) -> None:
        self.samples = 0
        self._agreeing = 0
        self._correct = self._reference_correct = 0
        self._labelled: bool | None = None
        self._max_abs_error = 0.0
        self._max_abs_reference = 0.0
        self._cosine_sum = self._cosine_compensation = 0.0

    def add(self, reference: np.ndarray, logits: np.ndarray, labels: np.ndarray | None = None) -> None:
        reference = np.asarray(reference, dtype=np.float64)
        logits = np.asarray(logits, dtype=np.float64)
        if reference.shape != logits.shape or reference.ndim != 2:
            raise ValueError(f"logit shapes differ: {reference.shape} vs {logits.shape}")
        if self._labelled is not None and self._labelled != (labels is not None):
            raise ValueError("give labels with every batch or with none")
        self._labelled = labels is not None
        if not len(reference):
            return
        predicted, reference_predicted = logits.argmax(1), reference.argmax(1)
        self.samples += len(reference)
        self._agreeing += int(np.sum(predicted == reference_predicted))
        if labels is not None:
            labels = np.asarray(labels)
            self._correct += int(np.sum(predicted == labels))
            self._reference_correct += int(np.sum(reference_predicted == labels))
        self._max_abs_error = max(self._max_abs_error, float(np.abs(reference - logits).max()))
        self._max_abs_reference = max(self._max_abs_reference, float(np.abs(reference).max()))
        norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(logits, axis=1)
        for cosine in (np.sum(reference * logits, axis=1) / np.maximum(norms, 1e-12)).tolist():
            total = self._cosine_sum + cosine  # Neumaier's compensated sum
            if abs(self._cosine_sum) >= abs(cosine):
                self._cosine_compensation += (self._cosine_sum - total) + cosine
            else:
                self._cosine_compensation += (cosine - total) + self._cosine_sum
            self._cosine_sum = total

    def result(self) -> Comparison:
        if not self.samples:
            raise ValueError("no samples to compare")
        labelled = bool(self._labelled)
        return Comparison(
            samples=self.samples,
            top1_agreement=self._agreeing / self.samples,
            max_abs_error=self._max_abs_error,
            max_relative_error=self._max_abs_error / max(self._max_abs_reference, 1e-12),
            mean_cosine=(self._cosine_sum + self._cosine_compensation) / self.samples,
            accuracy=self._correct / self.samples if labelled else None,
            reference_accuracy=self._reference_correct / self.samples if labelled else None,
        )


# --- Image-set parity on the board: several artifacts against a reference ------------------------

PARITY_SCHEMA = "edgeshuffle.parity"
PARITY_SCHEMA_VERSION = 1
PARITY_CHUNK = 32  # images run together (one call per chunk for runners with a free batch, like Keras)


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


class LogitsFile:
    """Every model's logits, written as they come, made ``target`` (an .npz) only by :meth:`finish`.

    Holds nothing but the image names in memory: each model's logits go to a
    raw float32 file of its own, and :meth:`finish` writes the arrays
    ``models``, ``images`` and ``logits[model, image, class]`` (what
    ``numpy.savez`` would write) into a temporary file renamed onto ``target``.
    :meth:`discard` leaves no file behind.
    """

    def __init__(self, target: Path, models: list[str]):
        import tempfile

        self.target = Path(target)
        self.models = list(models)
        self._folder = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", dir=self.target.parent))
        self._files = [open(self._folder / f"{i}.f32", "wb") for i in range(len(self.models))]
        self._images: list[str] = []
        self._classes: int | None = None

    def add(self, logits: list[np.ndarray], images: list[str]) -> None:
        """``logits[i]``: model i's ``(len(images), classes)`` logits on ``images``."""
        for file, values in zip(self._files, logits):
            file.write(np.ascontiguousarray(values, dtype="<f4").tobytes())
        self._classes = logits[0].shape[1]
        self._images.extend(images)

    def finish(self) -> None:
        import shutil
        import zipfile

        from edgeshuffle.atomic import atomic_path

        for file in self._files:
            file.close()
        shape = (len(self.models), len(self._images), self._classes or 0)
        with atomic_path(self.target) as temporary, zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED) as npz:
            for name, array in (("models", np.asarray(self.models)), ("images", np.asarray(self._images))):
                with npz.open(f"{name}.npy", "w", force_zip64=True) as entry:
                    np.lib.format.write_array(entry, array, allow_pickle=False)
            with npz.open("logits.npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array_header_2_0(
                    entry, {"descr": "<f4", "fortran_order": False, "shape": shape})
                for i in range(len(self.models)):
                    with open(self._folder / f"{i}.f32", "rb") as raw:
                        shutil.copyfileobj(raw, entry, 1 << 20)
        self.discard()

    def discard(self) -> None:
        import shutil

        for file in self._files:
            file.close()
        shutil.rmtree(self._folder, ignore_errors=True)


def image_parity(models, images, reference=None, runtime: str = "auto", threads: int = 1,
                 limit: int | None = None, strict: bool = False, progress=None,
                 tflite_kernels: str = "xnnpack", jobs: int | None = None, logits_path: Path | None = None,
                 preprocessing=None, class_names=None) -> ParityReport:
    """Run every artifact on the images of ``images`` and compare each with ``reference``.

    Each artifact is fed the images preprocessed by its *own* metadata
    (``read_metadata(path).preprocessing``), so a board needs nothing but the
    artifacts. The reference defaults to the first float32 model given (the
    first model if none is float). A folder with one subfolder per class gives
    labels and so accuracy; class folders are matched to the model's class
    names when its metadata has them, else taken in sorted order.

    Memory stays flat whatever the number of images: the statistics are
    accumulated chunk by chunk (:class:`RunningComparison`) and no logits are
    kept; ``logits_path`` writes them to an .npz as they come (see
    :class:`LogitsFile`). ``jobs`` threads (default: the usable cores) decode
    and preprocess images ahead and run the models of a chunk side by side,
    each with its own ``threads``; the statistics are accumulated in image
    order, so the report is the same for any ``jobs``.

    Images that fail to decode are skipped and counted, or raise under ``strict``.
    ``progress(done, total)`` is called as images are evaluated. ``tflite_kernels``
    picks LiteRT's kernels for TFLite models: xnnpack, builtin or reference.
    ``preprocessing`` and ``class_names`` describe the artifacts that carry no
    metadata (files edgeshuffle did not write; see
    :func:`~edgeshuffle.metadata.artifact_metadata`).

    Raises:
        InputFileError: a missing or invalid model, an artifact without metadata and no
            ``preprocessing``, no images.
        InvalidArgumentError: ``limit`` or ``jobs`` below 1; ``preprocessing`` contradicting an artifact's input size.
    """
    from edgeshuffle.bench import check_image_input, short_labels
    from edgeshuffle.data.images import labelled_images, load_rgb, preprocess
    from edgeshuffle.data.stream import check_jobs, chunks, default_jobs, ordered_map, worker_pool
    from edgeshuffle.errors import InputFileError, InvalidArgumentError
    from edgeshuffle.metadata import artifact_metadata
    from edgeshuffle.runtime.base import open_runner

    if limit is not None and limit < 1:
        raise InvalidArgumentError(f"Limit must be at least 1. Received: `limit={limit}`")
    jobs = check_jobs(default_jobs() if jobs is None else jobs)
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
    ref_index = paths.index(reference_path)
    image_set = labelled_images(Path(images))
    if not image_set.paths:
        raise InputFileError(f"no images (.jpg, .jpeg, .png, .bmp) under {images}")
    chosen = image_set.paths[:limit] if limit else image_set.paths
    mapping = None
    if image_set.labels is not None:
        mapping = _label_map(image_set.class_names, metadata[reference_path].class_names, reference_path)
    preprocessings = list(dict.fromkeys(metadata[p].preprocessing for p in paths))

    def decode(number: int):
        """The image's input for every preprocessing, or the InputFileError that its decoding raised."""
        try:
            image = load_rgb(chosen[number])
        except InputFileError as error:
            return error
        return {pre: preprocess(image, pre) for pre in preprocessings}

    runners = [open_runner(p, runtime=runtime, threads=threads, tflite_kernels=tflite_kernels) for p in paths]
    statistics = [RunningComparison() for _ in paths]
    skipped: list[str] = []
    logits_file = LogitsFile(logits_path, [str(p) for p in paths]) if logits_path is not None else None
    try:
        for runner in runners:
            runner.activate()
            check_image_input(runner.input_info(), runner.path)
        with worker_pool(jobs) as pool:
            decoded = ordered_map(decode, range(len(chosen)), pool, ahead=2 * PARITY_CHUNK)
            done = 0
            for chunk in chunks(zip(range(len(chosen)), decoded), PARITY_CHUNK):
                kept = []
                for number, inputs in chunk:
                    if not isinstance(inputs, InputFileError):
                        kept.append((number, inputs))
                        continue
                    if strict:
                        raise inputs
                    skipped.append(str(chosen[number]))
                    log.warning("skipping an image that does not decode: %s", chosen[number])
                if kept:
                    batches = {pre: np.stack([inputs[pre] for _, inputs in kept]) for pre in preprocessings}
                    feeds = [batches[metadata[p].preprocessing] for p in paths]
                    if pool is None:
                        outputs = [runner.infer(feed) for runner, feed in zip(runners, feeds)]
                    else:  # the runtimes release the GIL while they run; one chunk at a time per runner
                        futures = [pool.submit(runner.infer, feed) for runner, feed in zip(runners, feeds)]
                        outputs = [future.result() for future in futures]
                    for path, output in zip(paths, outputs):
                        if output.shape != outputs[ref_index].shape:
                            raise InputFileError(
                                f"{path} gives logits of shape {output.shape[1:]}, the reference {reference_path} "
                                f"{outputs[ref_index].shape[1:]}: not the same classifier")
                    labels = None if mapping is None else \
                        np.asarray([mapping[image_set.labels[number]] for number, _ in kept])
                    for running, output in zip(statistics, outputs):
                        running.add(outputs[ref_index], output, labels)
                    if logits_file is not None:
                        logits_file.add(outputs, [str(chosen[number]) for number, _ in kept])
                done += len(chunk)
                if progress:
                    progress(done, len(chosen))
        if not statistics[0].samples:
            raise InputFileError(f"none of the {len(chosen)} images under {images} decodes")
        if logits_file is not None:
            logits_file.finish()
    finally:
        if logits_file is not None:
            logits_file.discard()
        for runner in runners:
            if runner.active:
                runner.deactivate()
    results = tuple(
        ModelParity(model=str(path), label=label, runtime=runners[i].kind, precision=metadata[path].precision,
                    comparison=statistics[i].result(), is_reference=i == ref_index)
        for i, (path, label) in enumerate(zip(paths, short_labels(tuple(paths)))))
    return ParityReport(images=str(images), reference=str(reference_path), evaluated=statistics[0].samples,
                        skipped=len(skipped), labelled=mapping is not None, results=results,
                        skipped_files=tuple(skipped[:20]))
