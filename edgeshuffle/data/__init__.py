"""Image folders and preprocessing: one definition used by quantize, parity, bench and train.

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
