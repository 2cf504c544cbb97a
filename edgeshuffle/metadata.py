"""What every artifact carries about itself: preprocessing, labels and, for edgeshuffle's own models, the spec.

TFLite: a flatbuffer ``metadata`` entry named ``edgeshuffle`` whose buffer
holds UTF-8 JSON (the documented associated entry; the TFLite schema's own
mechanism for named metadata). ONNX: ``metadata_props`` with the same JSON
under ``edgeshuffle`` plus readable keys (``mean``, ``std``, ...). Reading
needs neither TensorFlow nor the ``onnx`` package, so it works on a board.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from edgeshuffle.errors import InputFileError
from edgeshuffle.preprocessing import Preprocessing
from edgeshuffle.models.variants import ModelSpec

METADATA_NAME = "edgeshuffle"
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


def read_onnx_metadata(path: Path) -> ArtifactMetadata | None:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped exceptions
        raise InputFileError(f"not a valid ONNX model: {path} ({str(error).splitlines()[0]})") from None
    try:
        props = session.get_modelmeta().custom_metadata_map
        return ArtifactMetadata.from_json(props[METADATA_NAME]) if METADATA_NAME in props else None
    except Exception as error:  # undecodable or malformed metadata: bad UTF-8, bad JSON, a bad spec
        raise InputFileError(f"unreadable edgeshuffle metadata in {path} ({error.__class__.__name__})") from None


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
        from edgeshuffle.models.io import load_model

        model = load_model(path)
        return ArtifactMetadata.for_spec(model.spec, form=model.form.to_dict())
    raise InputFileError(f"not a .tflite, .onnx or .keras model: {path}")
