"""Turning a folder of images into model inputs: calibration sets, and small batches in memory.

Images are decoded and preprocessed with the model's own definition; files
that do not decode are skipped (or, in strict mode, refused). A calibration
set is read batch by batch, so it may hold any number of images.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from edgeshuffle.data.images import find_images, load_rgb, preprocess
from edgeshuffle.errors import InputFileError
from edgeshuffle.preprocessing import Preprocessing

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LoadedImages:
    inputs: np.ndarray  # (N, size, size, 3) float32, preprocessed
    paths: tuple[Path, ...]  # the files behind inputs, in order
    skipped: tuple[tuple[Path, str], ...]  # (file, reason) for files that did not decode


def load_images(paths: Sequence[Path], preprocessing: Preprocessing, *, strict: bool = False) -> LoadedImages:
    """Decode and preprocess ``paths`` in order, in memory (for a few images; see :class:`CalibrationSet`).

    Files that fail to decode are skipped and listed (``strict``: the first
    one raises :class:`InputFileError`).
    """
    inputs, used, skipped = [], [], []
    for path in paths:
        try:
            inputs.append(preprocess(load_rgb(path), preprocessing))
            used.append(Path(path))
        except InputFileError as error:
            if strict:
                raise
            skipped.append((Path(path), str(error)))
    if skipped:
        log.warning("skipped %d unreadable image(s): %s", len(skipped), ", ".join(str(p) for p, _ in skipped))
    size = preprocessing.input_size
    array = np.stack(inputs) if inputs else np.zeros((0, size, size, 3), np.float32)
    return LoadedImages(array, tuple(used), tuple(skipped))


def sample_order(paths: Sequence[Path], seed: int = 0) -> list[Path]:
    """A deterministic shuffle of ``paths`` (same files, same seed: same order on any machine)."""
    order = np.random.default_rng(seed).permutation(len(paths))
    return [paths[i] for i in order]


class CalibrationSet:
    """Calibration images, chosen and checked once, then decoded again each time they are read.

    Nothing is kept in memory but the file names, so memory does not grow with
    the count: :meth:`batches` decodes and preprocesses in a pool of ``jobs``
    threads, a few batches ahead, and yields in the files' order (the same
    arrays whatever ``jobs``).
    """

    def __init__(self, paths: Sequence[Path], skipped: Sequence[tuple[Path, str]], preprocessing: Preprocessing,
                 jobs: int = 1):
        self.paths = tuple(paths)
        self.skipped = tuple(skipped)
        self.preprocessing = preprocessing
        self.jobs = jobs

    def __len__(self) -> int:
        return len(self.paths)

    def batches(self, batch: int, progress: Callable[[int, int], None] | None = None) -> Iterator[np.ndarray]:
        """``(batch, size, size, 3)`` float32 arrays of the images in order (a last, partial batch is left out).

        ``progress(done, total)`` is called after each batch.
        """
        from edgeshuffle.data.stream import chunks, ordered_map, worker_pool

        usable = len(self.paths) - len(self.paths) % batch
        with worker_pool(self.jobs) as pool:
            images = ordered_map(self._load, self.paths[:usable], pool, ahead=max(2 * batch, 4 * self.jobs))
            for done, chunk in enumerate(chunks(images, batch), start=1):
                yield np.stack(chunk)
                if progress:
                    progress(done * batch, usable)

    def inputs(self, count: int | None = None) -> np.ndarray:
        """The first ``count`` (default: all) images in memory, ``(count, size, size, 3)``: for a few images."""
        count = len(self.paths) if count is None else min(count, len(self.paths))
        return next(self.batches(count)) if count else np.zeros((0, self.preprocessing.input_size,
                                                                 self.preprocessing.input_size, 3), np.float32)

    def _load(self, path: Path) -> np.ndarray:
        return preprocess(load_rgb(path), self.preprocessing)


def calibration_set(folder: Path, preprocessing: Preprocessing, count: int, *, seed: int = 0,
                    strict: bool = False, progress: Callable[[int], None] | None = None,
                    jobs: int = 1) -> CalibrationSet:
    """``count`` images sampled deterministically from ``folder`` (recursive), checked to decode.

    Files are tried in the sample's order until ``count`` decode; those that
    do not are skipped and listed (``strict``: the first one raises).
    ``progress(n)`` is called with the number of files tried so far.

    Raises:
        InputFileError: the folder has no images, or fewer than ``count``
            that decode.
    """
    from edgeshuffle.data.stream import ordered_map, worker_pool

    paths = find_images(folder)
    if not paths:
        raise InputFileError(f"no images (.jpg, .jpeg, .png, .bmp) in calibration folder {folder}")

    def check(path: Path) -> InputFileError | None:
        try:
            preprocess(load_rgb(path), preprocessing)
        except InputFileError as error:
            return error
        return None

    used, skipped = [], []
    with worker_pool(jobs) as pool:
        for tried, (path, error) in enumerate(
                zip(sample_order(paths, seed), ordered_map(check, sample_order(paths, seed), pool, 4 * jobs)),
                start=1):
            if error is None:
                used.append(Path(path))
            elif strict:
                raise error
            else:
                skipped.append((Path(path), str(error)))
            if progress:
                progress(tried)
            if len(used) >= count:
                break
    if skipped:
        log.warning("skipped %d unreadable image(s): %s", len(skipped), ", ".join(str(p) for p, _ in skipped))
    if len(used) < count:
        raise InputFileError(f"calibration folder {folder} has {len(used)} usable images, "
                             f"{count} needed (see --num-calibration)")
    return CalibrationSet(used, skipped, preprocessing, jobs)


class ArrayCalibration:
    """Calibration inputs already in memory (a model's random or generated inputs), read like a
    :class:`CalibrationSet`."""

    def __init__(self, inputs: np.ndarray):
        self._inputs = np.asarray(inputs, dtype=np.float32)

    def __len__(self) -> int:
        return len(self._inputs)

    def batches(self, batch: int, progress: Callable[[int, int], None] | None = None) -> Iterator[np.ndarray]:
        usable = len(self._inputs) - len(self._inputs) % batch
        for start in range(0, usable, batch):
            yield self._inputs[start:start + batch]
            if progress:
                progress(start + batch, usable)

    def inputs(self, count: int | None = None) -> np.ndarray:
        return self._inputs[:count]
