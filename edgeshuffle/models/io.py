"""Saving and loading ``.keras`` files: safe mode on by default, atomic writes, clear errors."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

from edgeshuffle.atomic import atomic_path
from edgeshuffle.errors import InputFileError

log = logging.getLogger(__name__)


def load_model(path: Path, trust_code: bool = False):
    """Load a Keras model (any functional or Sequential one, edgeshuffle's included) from a ``.keras`` file.

    Keras' safe mode is on unless ``trust_code``: a file carrying Python code
    (a ``Lambda`` layer) is refused. ``import edgeshuffle`` registers nothing
    with Keras; this function imports edgeshuffle's layers first, so its own
    models load too.

    Raises:
        InputFileError: missing, unreadable or corrupt file; a file carrying
            code without ``trust_code``.
    """
    import keras

    import edgeshuffle.models.shufflenet  # noqa: F401  (registers edgeshuffle's layers with Keras)

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"no model file at {path}")
    if not zipfile.is_zipfile(path):
        raise InputFileError(f"not a .keras model file (not a zip archive): {path}")
    try:
        if trust_code:
            log.warning("loading %s with Keras' safe mode off (--trust-code): its Python code runs", path)
        return keras.saving.load_model(path, safe_mode=not trust_code, compile=False)
    except ValueError as error:
        message = str(error)
        if not trust_code and ("Lambda" in message or "safe_mode" in message):
            raise InputFileError(f"refused {path}: it carries Python code (a Lambda layer), which safe mode "
                                 "does not load; give --trust-code if you trust the file") from None
        raise InputFileError(f"cannot load {path}: {message.splitlines()[0]}") from None
    except (OSError, KeyError, TypeError, NameError, zipfile.BadZipFile) as error:
        raise InputFileError(f"cannot load {path}: {str(error).splitlines()[0] if str(error) else error!r}") from None


def load_shufflenet(path: Path):
    """Load an edgeshuffle ShuffleNet (for training and the demo, which need its spec).

    Raises:
        InputFileError: as :func:`load_model`, or a model edgeshuffle did not build.
    """
    from edgeshuffle.models.shufflenet import ShuffleNetV1

    model = load_model(path)
    if not isinstance(model, ShuffleNetV1):
        raise InputFileError(f"not an edgeshuffle ShuffleNet model: {path} "
                             "(build one with `edgeshuffle train` or `edgeshuffle import`)")
    return model


def save_model(model, path: Path, metadata=None) -> None:
    """Save atomically: an interrupted save leaves any previous file intact.

    ``metadata`` (an :class:`~edgeshuffle.metadata.ArtifactMetadata`) goes
    into the zip as an ``edgeshuffle.json`` entry, which Keras ignores on
    load and :func:`~edgeshuffle.metadata.read_metadata` reads: so a foreign
    model's ``model.keras`` carries its preprocessing and labels like the
    other artifacts.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise InputFileError(f"model files must end in .keras: {path}")
    with atomic_path(path) as temporary:
        model.save(temporary)
        if metadata is not None:
            from edgeshuffle.metadata import KERAS_ENTRY

            with zipfile.ZipFile(temporary, "a") as archive:
                archive.writestr(KERAS_ENTRY, metadata.to_json())
