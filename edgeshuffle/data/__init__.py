"""Image folders and their model inputs (preprocessed as :mod:`edgeshuffle.preprocessing` says).

Never imports TensorFlow (the board runs this).
"""

from edgeshuffle.data.images import (
    IMAGE_SUFFIXES,
    ImageSet,
    find_images,
    labelled_images,
    load_rgb,
    preprocess,
)

__all__ = ["IMAGE_SUFFIXES", "ImageSet", "find_images", "labelled_images", "load_rgb", "preprocess"]
