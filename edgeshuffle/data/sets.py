"""Turning a folder of images into a batch of model inputs: calibration and evaluation sets.

One loader for quantize (calibration), parity and bench (real inputs): it
decodes, preprocesses with the model's own definition, and skips (or, in
strict mode, refuses) files that do not decode.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
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


def load_images(paths: Sequence[Path], preprocessing: Preprocessing, *, limit: int | None = None,
                strict: bool = False, progress: Callable[[int], None] | None = None) -> LoadedImages:
    """Decode and preprocess ``paths`` in order until ``limit`` images have loaded.

    Files that fail to decode are skipped and listed (``strict``: the first
    one raises :class:`InputFileError`). ``progress(n)`` is called after each
    file with the number of files tried so far.
    """
    inputs, used, skipped = [], [], []
    for tried, path in enumerate(paths, start=1):
        if limit is not None and len(inputs) >= limit:
            break
        try:
            inputs.append(preprocess(load_rgb(path), preprocessing))
            used.append(Path(path))
        except InputFileError as error:
            if strict:
                raise
            skipped.append((Path(path), str(error)))
        if progress:
            progress(tried)
    if skipped:
        log.warning("skipped %d unreadable image(s): %s", len(skipped), ", ".join(str(p) for p, _ in skipped))
    size = preprocessing.input_size
    array = np.stack(inputs) if inputs else np.zeros((0, size, size, 3), np.float32)
    return LoadedImages(array, tuple(used), tuple(skipped))


def sample_order(paths: Sequence[Path], seed: int = 0) -> list[Path]:
    """A deterministic shuffle of ``paths`` (same files, same seed: same order on any machine)."""
    order = np.random.default_rng(seed).permutation(len(paths))
    return [paths[i] for i in order]


def calibration_set(folder: Path, preprocessing: Preprocessing, count: int, *, seed: int = 0,
                    strict: bool = False, progress: Callable[[int], None] | None = None) -> LoadedImages:
    """``count`` images sampled deterministically from ``folder`` (recursive).

    Raises:
        InputFileError: the folder has no images, or fewer than ``count``
            that decode.
    """
    paths = find_images(folder)
    if not paths:
        raise InputFileError(f"no images (.jpg, .jpeg, .png, .bmp) in calibration folder {folder}")
    loaded = load_images(sample_order(paths, seed), preprocessing, limit=count, strict=strict, progress=progress)
    if len(loaded.inputs) < count:
        raise InputFileError(f"calibration folder {folder} has {len(loaded.inputs)} usable images, "
                             f"{count} needed (see --num-calibration)")
    return loaded
