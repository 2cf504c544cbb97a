"""What every artifact carries about itself: preprocessing, labels and, for edgeshuffle's own models, the spec.

TFLite: a flatbuffer ``metadata`` entry named ``edgeshuffle`` whose buffer
holds UTF-8 JSON (the documented associated entry; the TFLite schema's own
mechanism for named metadata). ONNX: ``metadata_props`` with the same JSON
under ``edgeshuffle`` plus readable keys (``mean``, ``std``, ...). Keras: an
``edgeshuffle.json`` entry in the ``.keras`` zip (Keras ignores it on load).
Reading the metadata of a ``.tflite`` or ``.onnx`` file needs neither
TensorFlow nor the ``onnx`` package, so it works on a board. For artifacts written elsewhere
(no metadata), :func:`artifact_metadata` makes one from the user's
preprocessing options.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from edgeshuffle.errors import InputFileError, InvalidArgumentError
from edgeshuffle.preprocessing import Preprocessing, PreprocessingOptions
from edgeshuffle.models.variants import ModelSpec

log = logging.getLogger(__name__)

METADATA_NAME = "edgeshuffle"
KERAS_ENTRY = "edgeshuffle.json"  # the metadata's entry in a .keras zip
SCHEMA_VERSION = 2  # 2: preprocessing and class names stand on their own; 1 had them inside the spec only


@dataclasses.dataclass(frozen=True)
class ArtifactMetadata:
    """The JSON an artifact carries: what any image classifier needs to be run and checked on a board.

    ``preprocessing`` and ``class_names`` serve every model; ``spec`` is set
    only for edgeshuffle's own ShuffleNets (:meth:`for_spec`). ``precision``
    is ``float32`` or ``int8``; ``name`` is the variant's or the Keras model's.
    """

    preprocessing: Preprocessing
    class_names: tuple[str, ...] | None = None
    precision: str = "float32"
    name: str = "model"
    spec: ModelSpec | None = None
    form: dict[str, Any] = dataclasses.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(self.class_names))

    @classmethod
    def for_spec(cls, spec: ModelSpec, precision: str = "float32",
                 form: dict[str, Any] | None = None) -> "ArtifactMetadata":
        """The metadata of an edgeshuffle ShuffleNet: its spec's preprocessing, class names and name."""
        return cls(preprocessing=spec.preprocessing, class_names=spec.class_names, precision=precision,
                   name=spec.name, spec=spec, form=form or {})

    def to_json(self) -> str:
        return json.dumps({"schema_version": self.schema_version, "precision": self.precision, "name": self.name,
                           "preprocessing": self.preprocessing.to_dict(),
                           "class_names": list(self.class_names) if self.class_names else None,
                           "spec": self.spec.to_dict() if self.spec else None, "form": self.form}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ArtifactMetadata":
        data = json.loads(text)
        spec = ModelSpec.from_dict(data["spec"]) if data.get("spec") else None
        if "preprocessing" not in data:  # schema 1: everything inside the spec
            return cls.for_spec(spec, precision=data.get("precision", "float32"), form=data.get("form", {}))
        return cls(preprocessing=Preprocessing.from_dict(data["preprocessing"]),
                   class_names=data.get("class_names"), precision=data.get("precision", "float32"),
                   name=data.get("name", "model"), spec=spec, form=data.get("form", {}),
                   schema_version=data.get("schema_version", SCHEMA_VERSION))

    def onnx_props(self) -> dict[str, str]:
        """ONNX ``metadata_props``: the full JSON and the keys a person looks for."""
        pre = self.preprocessing
        props = {
            METADATA_NAME: self.to_json(),
            "input_size": str(pre.input_size), "resize_size": str(pre.resize_size),
            "mean": json.dumps(list(pre.mean)), "std": json.dumps(list(pre.std)),
            "channel_order": pre.channel_order, "layout": "NHWC", "precision": self.precision,
        }
        if self.class_names:
            props["labels"] = json.dumps(list(self.class_names))
        return props


def tflite_with_metadata(model_bytes: bytes, metadata: ArtifactMetadata) -> bytes:
    """Return the TFLite flatbuffer with an ``edgeshuffle`` metadata entry (replacing an old one)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    buffer = schema.BufferT()
    buffer.data = list(metadata.to_json().encode("utf-8"))
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_tflite_metadata(path: Path) -> ArtifactMetadata | None:
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(Path(path).read_bytes())
    try:
        model = schema.Model.GetRootAsModel(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() == METADATA_NAME.encode():
                buffer = model.Buffers(entry.Buffer())
                return ArtifactMetadata.from_json(bytes(buffer.DataAsNumpy()).decode("utf-8"))
    except Exception as error:  # a corrupt flatbuffer raises anything from struct to IndexError
        raise InputFileError(f"not a valid TFLite model: {path} ({error.__class__.__name__})") from None
    return None


def _onnx_session(path: Path):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped exceptions
        raise InputFileError(f"not a valid ONNX model: {path} ({str(error).splitlines()[0]})") from None


def _onnx_metadata(session, path: Path) -> ArtifactMetadata | None:
    try:
        props = session.get_modelmeta().custom_metadata_map
        return ArtifactMetadata.from_json(props[METADATA_NAME]) if METADATA_NAME in props else None
    except Exception as error:  # undecodable or malformed metadata: bad UTF-8, bad JSON, a bad spec
        raise InputFileError(f"unreadable edgeshuffle metadata in {path} ({error.__class__.__name__})") from None


def read_onnx_metadata(path: Path) -> ArtifactMetadata | None:
    return _onnx_metadata(_onnx_session(path), path)


def read_keras_metadata(path: Path) -> ArtifactMetadata | None:
    """The ``edgeshuffle.json`` entry of a ``.keras`` zip; else the spec of an edgeshuffle ShuffleNet; else None."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read(KERAS_ENTRY).decode("utf-8") if KERAS_ENTRY in archive.namelist() else None
    except (zipfile.BadZipFile, OSError) as error:
        raise InputFileError(f"not a .keras model file: {path} ({error.__class__.__name__})") from None
    except UnicodeDecodeError:
        raise InputFileError(f"unreadable edgeshuffle metadata in {path} (UnicodeDecodeError)") from None
    if text is not None:
        try:
            return ArtifactMetadata.from_json(text)
        except Exception as error:  # bad JSON, a bad spec
            raise InputFileError(f"unreadable edgeshuffle metadata in {path} ({error.__class__.__name__})") from None
    from edgeshuffle.models.io import load_model

    model = load_model(path)
    spec = getattr(model, "spec", None)
    return ArtifactMetadata.for_spec(spec, form=model.form.to_dict()) if spec is not None else None


def read_metadata(path: Path) -> ArtifactMetadata | None:
    """The metadata of a ``.tflite``, ``.onnx`` or ``.keras`` artifact; None if it carries none."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"no model file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return read_tflite_metadata(path)
    if suffix == ".onnx":
        return read_onnx_metadata(path)
    if suffix == ".keras":
        return read_keras_metadata(path)
    raise InputFileError(f"not a .tflite, .onnx or .keras model: {path}")


def read_labels(path: Path) -> tuple[str, ...]:
    """Class names from a text file, one a line (surrounding whitespace and blank trailing lines ignored).

    Raises:
        InputFileError: the file is missing, unreadable, not UTF-8 text, empty, or has a blank line inside.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputFileError(f"cannot read labels file {path}: {getattr(error, 'strerror', None) or error}") from None
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise InputFileError(f"labels file {path} is empty (one class name a line)")
    if "" in names:
        raise InputFileError(f"labels file {path} has a blank line {names.index('') + 1} (one class name a line)")
    return tuple(names)


def _tflite_facts(path: Path) -> tuple[tuple[int, ...], int, bool]:
    """(input shape, output classes, whether any tensor is 8-bit) of a TFLite file, read from the flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema

    def shape(tensor) -> tuple[int, ...]:
        dims = tensor.ShapeAsNumpy() if tensor.ShapeSignatureIsNone() else tensor.ShapeSignatureAsNumpy()
        return tuple(int(d) for d in dims)

    try:
        graph = schema.Model.GetRootAsModel(bytearray(Path(path).read_bytes()), 0).Subgraphs(0)
        eight_bit = any(graph.Tensors(i).Type() in (schema.TensorType.INT8, schema.TensorType.UINT8)
                        for i in range(graph.TensorsLength()))
        return shape(graph.Tensors(graph.Inputs(0))), shape(graph.Tensors(graph.Outputs(0)))[-1], eight_bit
    except Exception as error:  # a corrupt flatbuffer raises anything from struct to IndexError
        raise InputFileError(f"not a valid TFLite model: {path} ({error.__class__.__name__})") from None


def artifact_metadata(path: Path, preprocessing: Preprocessing | PreprocessingOptions | None = None,
                      class_names=None) -> ArtifactMetadata:
    """What to run an artifact with: its own metadata, else one made from the user's preprocessing.

    A ``.tflite`` or ``.onnx`` file edgeshuffle did not write carries no
    metadata; ``preprocessing`` (a :class:`Preprocessing` of the artifact's
    input size, or :class:`PreprocessingOptions` resolved at that size) and
    ``class_names`` then describe it, and its precision is read from the
    graph (8-bit tensors or quantize/dequantize nodes: ``int8``). A file with
    metadata keeps its own; the options only fill in for files without.

    Raises:
        InputFileError: no metadata and no preprocessing given; an invalid file; a non-square image input.
        InvalidArgumentError: preprocessing that contradicts the artifact's input size; a wrong number
            of class names.
    """
    path = Path(path)
    metadata = read_metadata(path)
    if metadata is not None:
        if preprocessing is not None or class_names is not None:
            log.info("%s carries its own preprocessing and labels; the options apply to files without", path)
        return metadata
    given = preprocessing is not None and (not isinstance(preprocessing, PreprocessingOptions) or preprocessing.given)
    if not given:
        raise InputFileError(f"{path} carries no edgeshuffle metadata (preprocessing): give --mean/--std or "
                             "--preprocess (and --labels) for it")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        shape, outputs, eight_bit = _tflite_facts(path)
    elif suffix == ".keras":  # a user's model.keras saved without metadata (build machine: Keras is there)
        from edgeshuffle.models.io import load_model
        from edgeshuffle.models.source import check_image_classifier

        height, width, outputs = check_image_classifier(load_model(path), str(path))
        shape, eight_bit = (1, height, width, 3), False
    else:
        from edgeshuffle.runtime.onnx_graph import onnx_ops

        session = _onnx_session(path)
        shape = tuple(d if isinstance(d, int) else -1 for d in session.get_inputs()[0].shape)
        outputs = session.get_outputs()[0].shape[-1]
        eight_bit = any(op.split(".")[-1] in ("QuantizeLinear", "DequantizeLinear") or "QLinear" in op
                        for op in onnx_ops(path)[0])
    if len(shape) != 4 or shape[3] != 3 or min(shape[1:3]) < 1:
        raise InputFileError(f"{path}: input of shape {list(shape)} is not an NHWC image (batch, height, width, 3)")
    height, width = shape[1:3]
    if height != width:
        raise InputFileError(f"{path}: input {height}x{width} is not square; preprocessing makes square crops")
    if isinstance(preprocessing, PreprocessingOptions):
        preprocessing = preprocessing.resolve(height)
    elif preprocessing.input_size != height:
        raise InvalidArgumentError(f"Preprocessing input size must be the artifact's ({height}x{width}, "
                                   f"{path}). Received: `input_size={preprocessing.input_size}`")
    if class_names is not None:
        class_names = tuple(class_names)
        if isinstance(outputs, int) and len(class_names) != outputs:
            raise InvalidArgumentError(f"Need one class name per output class of {path} ({outputs}). "
                                       f"Received: `class_names=<{len(class_names)} names>`")
    return ArtifactMetadata(preprocessing=preprocessing, class_names=class_names,
                            precision="int8" if eight_bit else "float32", name=path.stem)
