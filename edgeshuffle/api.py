"""The Python API: ``edgeshuffle.convert`` and ``edgeshuffle.quantize`` on any Keras image classifier.

The CLI's ``convert`` and ``quantize`` call these same functions. They return
the report objects the CLI renders (``ConvertReport``, ``QuantizeReport``),
raise the errors of :mod:`edgeshuffle.errors` and never print. Nothing heavy
is imported until one of them is called, so ``import edgeshuffle`` stays light.

Example::

    import edgeshuffle

    pre = edgeshuffle.Preprocessing(input_size=224, resize_size=256, mean=(127.5,) * 3, std=(127.5,) * 3)
    report = edgeshuffle.convert(model, "out", preprocessing=pre, class_names=names)
    report = edgeshuffle.quantize(model, "calibration/", "out", preprocessing=pre, eval="val/")
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgeshuffle.errors import InvalidArgumentError


def _config(config_class, command: str, options: dict, **fixed):
    """``config_class(**options, **fixed)``; an unknown option is an error naming it."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    for name, value in options.items():
        if name not in fields:
            known = ", ".join(sorted(set(fields) - set(fixed)))
            raise InvalidArgumentError(f"Unknown option of {command}() (known: {known}). "
                                       f"Received: `{name}={value}`")
    values = {name: Path(value) if isinstance(value, str) and "Path" in str(fields[name].type) else value
              for name, value in {**options, **fixed}.items()}
    return config_class(**values)


def convert(model, output_dir, *, preprocessing=None, class_names=None, trust_code: bool = False,
            progress=None, **options):
    """Convert a Keras image classifier to float TFLite and ONNX, gated on parity with the model itself.

    Args:
        model: a ``keras.Model`` (functional or Sequential), a path to a
            ``.keras`` file, or a :class:`~edgeshuffle.models.source.SourceModel`.
        output_dir: folder for ``model.keras``, ``float32.tflite``,
            ``float32.onnx`` and ``convert.json`` (created if missing).
        preprocessing: an :class:`~edgeshuffle.preprocessing.Preprocessing`
            of the model's input size (default: an edgeshuffle ShuffleNet's
            own, else ImageNet mean/std, logged as a warning).
        class_names: one name per output class.
        trust_code: load a ``.keras`` file with Keras' safe mode off (``Lambda`` layers run their code).
        progress: called with each step's name as it starts.
        **options: fields of :class:`~edgeshuffle.export.convert.ConvertConfig`
            (``batch``, ``shuffle``, ``opset``, ``images``, ``samples``, ``seed``, ...).

    Returns:
        The :class:`~edgeshuffle.export.convert.ConvertReport` (also written as ``convert.json``).

    Raises:
        InvalidArgumentError: an unknown option or a value out of range.
        InputFileError: not an image classifier, an unloadable file, an unusable folder.
        ConversionError: a converter failed.
        ParityError: the gate failed (the artifacts and a failed report are written first).
    """
    from edgeshuffle.export.convert import ConvertConfig
    from edgeshuffle.export.convert import convert as run_convert
    from edgeshuffle.models.source import source_model

    config = _config(ConvertConfig, "convert", options, trust_code=trust_code)
    source = source_model(model, preprocessing=preprocessing, class_names=class_names, trust_code=trust_code)
    return run_convert(source, Path(output_dir), config, progress=progress)


def quantize(model, calibration, output_dir, *, preprocessing=None, class_names=None, trust_code: bool = False,
             progress=None, jobs: int | None = None, **options):
    """Quantize a Keras image classifier to int8 TFLite and ONNX, calibrated on the images of ``calibration``.

    Args:
        model, preprocessing, class_names, trust_code: as :func:`convert`.
        calibration: a folder of calibration images (searched recursively).
        output_dir: folder for ``int8.tflite``, ``int8.onnx`` and
            ``quantize.json`` (and the float artifacts when it lacks this model's).
        progress: ``progress(step, done, total)`` as the work advances.
        jobs: threads that decode calibration and evaluation images (default: the usable cores); the
            artifacts and figures do not depend on it.
        **options: fields of :class:`~edgeshuffle.export.quantize.QuantizeConfig`
            (``num_calibration``, ``io_type``, ``onnx_types``, ``eval``, ``max_drop``, ...).

    Returns:
        The :class:`~edgeshuffle.export.quantize.QuantizeReport` (also written as ``quantize.json``).

    Raises:
        As :func:`convert`; :class:`~edgeshuffle.errors.ParityError` when ``eval`` is given and the
        accuracy gate fails.
    """
    from edgeshuffle.export.quantize import QuantizeConfig
    from edgeshuffle.export.quantize import quantize as run_quantize
    from edgeshuffle.models.source import source_model

    config = _config(QuantizeConfig, "quantize", options, calibration=Path(calibration), trust_code=trust_code)
    source = source_model(model, preprocessing=preprocessing, class_names=class_names, trust_code=trust_code)
    return run_quantize(source, Path(output_dir), config, progress=progress, jobs=jobs)
