"""Saving and loading ShuffleNet ``.keras`` files: safe mode on, atomic writes, clear errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

from edgeshuffle.atomic import atomic_path
from edgeshuffle.errors import InputFileError


def load_model(path: Path):
    """Load an edgeshuffle ShuffleNet from a ``.keras`` file with Keras' safe mode on.

    Raises:
        InputFileError: missing, unreadable or corrupt file; a file carrying
            code (a ``Lambda`` layer, refused by safe mode); a model that is
            not an edgeshuffle ShuffleNet.
    """
    import keras

    from edgeshuffle.models.shufflenet import ShuffleNetV1

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"no model file at {path}")
    if not zipfile.is_zipfile(path):
        raise InputFileError(f"not a .keras model file (not a zip archive): {path}")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except ValueError as error:
        message = str(error)
        if "Lambda" in message or "safe_mode" in message:
            raise InputFileError(f"refused {path}: it carries Python code (a Lambda layer), "
                                 "which safe mode does not load") from None
        raise InputFileError(f"cannot load {path}: {message.splitlines()[0]}") from None
    except (OSError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise InputFileError(f"cannot load {path}: {error}") from None
    if not isinstance(model, ShuffleNetV1):
        raise InputFileError(f"not an edgeshuffle ShuffleNet model: {path} "
                             "(build one with `edgeshuffle convert` or `edgeshuffle train`)")
    return model


def save_model(model, path: Path) -> None:
    """Save atomically: an interrupted save leaves any previous file intact."""
    path = Path(path)
    if path.suffix != ".keras":
        raise InputFileError(f"model files must end in .keras: {path}")
    with atomic_path(path) as temporary:
        model.save(temporary)
