"""Reading images from folders and turning them into model inputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from edgeshuffle.errors import InputFileError
from edgeshuffle.preprocessing import Preprocessing

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def load_rgb(path: Path) -> Image.Image:
    """Decode an image fully as 8-bit RGB (grayscale, RGBA, palette and CMYK are converted).

    Raises:
        InputFileError: the file is missing, not an image, or truncated.
    """
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257.0).astype(np.uint8))
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as error:
        raise InputFileError(f"cannot read image {path}: {error}") from None


def preprocess(image: Image.Image, preprocessing: Preprocessing) -> np.ndarray:
    """RGB image -> float32 (size, size, 3) array, exactly as ``preprocessing`` says.

    Resize the shorter side to ``resize_size``, center-crop ``input_size``,
    reorder channels, then ``(x - mean) / std``.
    """
    width, height = image.size
    short = preprocessing.resize_size
    if (width, height) != (short, short) or short != preprocessing.input_size:
        ratio = short / min(width, height)
        size = (max(short, round(width * ratio)), max(short, round(height * ratio)))
        image = image.resize(size, _RESAMPLE[preprocessing.interpolation])
        left = (size[0] - preprocessing.input_size) // 2
        top = (size[1] - preprocessing.input_size) // 2
        image = image.crop((left, top, left + preprocessing.input_size, top + preprocessing.input_size))
    pixels = np.asarray(image, dtype=np.float32)
    if preprocessing.channel_order == "BGR":
        pixels = pixels[..., ::-1]
    mean = np.asarray(preprocessing.mean, dtype=np.float32)
    std = np.asarray(preprocessing.std, dtype=np.float32)
    return np.ascontiguousarray((pixels - mean) / std, dtype=np.float32)


def find_images(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursive), sorted by relative path.

    Raises:
        InputFileError: ``folder`` is missing or not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"not a folder of images: {folder}")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """Image paths with optional labels (index into ``class_names``)."""

    paths: tuple[Path, ...]
    labels: tuple[int, ...] | None = None
    class_names: tuple[str, ...] | None = None


def labelled_images(folder: Path) -> ImageSet:
    """A folder with one subfolder per class gives labels; a plain folder gives none.

    Class indices follow the sorted subfolder names (Keras'
    ``image_dataset_from_directory`` convention).
    """
    folder = Path(folder)
    paths = find_images(folder)
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if classes and all(p.parent.parent == folder for p in paths):
        index = {name: i for i, name in enumerate(classes)}
        return ImageSet(tuple(paths), tuple(index[p.parent.name] for p in paths), tuple(classes))
    return ImageSet(tuple(paths))
