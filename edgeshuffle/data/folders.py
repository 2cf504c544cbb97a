"""Class-subfolder image folders for training and evaluation: validation and loading.

The layout is Keras' ``image_dataset_from_directory`` convention: one
subfolder per class, class index = position of the subfolder name in sorted
order, images anywhere below their class folder. Never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgeshuffle.data.images import IMAGE_SUFFIXES, find_images, load_rgb, preprocess
from edgeshuffle.errors import InputFileError
from edgeshuffle.preprocessing import Preprocessing

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ClassFolder:
    """A validated class-subfolder image folder: every class has at least one image."""

    root: Path
    class_names: tuple[str, ...]
    paths: tuple[Path, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        counts = np.bincount(np.asarray(self.labels, dtype=np.int64), minlength=len(self.class_names))
        return dict(zip(self.class_names, (int(c) for c in counts)))


def class_folder(folder: Path) -> ClassFolder:
    """Check that ``folder`` has class subfolders, each holding images, and list them.

    Hidden folders (``.name``) are ignored. Image files directly in ``folder``
    (outside any class) are refused, since they would silently go unused.

    Raises:
        InputFileError: ``folder`` is missing or not a folder, has no class
            subfolders, has images outside class subfolders, or a class
            subfolder has no images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"not a folder: {folder}")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise InputFileError(f"no class subfolders in {folder} (expected one subfolder of images per class)")
    loose = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if loose:
        raise InputFileError(f"{len(loose)} image(s) outside class subfolders in {folder}, e.g. {loose[0]} "
                             "(put every image in its class subfolder)")
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        images = find_images(folder / name)
        if not images:
            raise InputFileError(f"class '{name}' has no images: {folder / name} "
                                 f"(image files end in {', '.join(IMAGE_SUFFIXES)})")
        paths += images
        labels += [index] * len(images)
    return ClassFolder(folder, tuple(classes), tuple(paths), tuple(labels))


def load_class_folder(data: ClassFolder, preprocessing: Preprocessing,
                      progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode and preprocess every image (the one :func:`preprocess`), in memory.

    Returns ``(inputs, labels)``: float32 ``(N, size, size, 3)`` and int32 ``(N,)``.
    ``progress(done, total)`` is called every 1,000 images and at the end.

    Raises:
        InputFileError: an image does not decode (the message names it).
    """
    size = preprocessing.input_size
    total = len(data)
    inputs = np.empty((total, size, size, 3), dtype=np.float32)
    for i, path in enumerate(data.paths):
        inputs[i] = preprocess(load_rgb(path), preprocessing)
        if progress and ((i + 1) % 1000 == 0 or i + 1 == total):
            progress(i + 1, total)
    log.info("loaded %d images of %d classes from %s", total, len(data.class_names), data.root)
    return inputs, np.asarray(data.labels, dtype=np.int32)
