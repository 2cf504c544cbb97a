"""The op histogram and opsets of an ONNX file, read without the ``onnx`` package.

onnxruntime does not list a session's nodes and the board has no ``onnx``
package, so this walks the protobuf wire format directly: ``ModelProto``
field 7 is the graph, ``GraphProto`` field 1 its nodes, ``NodeProto`` field 4
the op type and field 7 its domain; ``ModelProto`` field 8 the opset imports
(domain 1, version 2). Only the main graph is counted (not subgraphs of
``If``/``Loop``), which is all a ShuffleNet has.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

from edgeshuffle.errors import InputFileError

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of one message; bytes values are memoryviews."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(data, pos)
        elif wire == _FIXED64:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == _FIXED32:
            value, pos = data[pos:pos + 4], pos + 4
        elif wire == _BYTES:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            value, pos = data[pos:pos + length], pos + length
        else:
            raise ValueError(f"wire type {wire}")
        if number == 0:
            raise ValueError("field number 0")
        yield number, wire, value


def onnx_ops(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(op histogram ``{op_type: count}``, opsets ``{domain: version}``) of an ONNX model file.

    Ops of a non-default domain are named ``domain.OpType`` (``com.microsoft.QLinearAdd``).

    Raises:
        InputFileError: the file is not an ONNX protobuf with a graph.
    """
    data = memoryview(Path(path).read_bytes())
    histogram: collections.Counter[str] = collections.Counter()
    opsets: dict[str, int] = {}
    graphs = 0
    try:
        for number, wire, value in _fields(data):
            if number == 8 and wire == _BYTES:
                entry = {n: v for n, w, v in _fields(value)}
                domain = bytes(entry.get(1, b"")).decode() or "ai.onnx"
                opsets[domain] = int(entry.get(2, 0))
            elif number == 7 and wire == _BYTES:
                graphs += 1
                for g_number, g_wire, node in _fields(value):
                    if g_number != 1 or g_wire != _BYTES:
                        continue
                    fields = {n: v for n, w, v in _fields(node) if n in (4, 7) and w == _BYTES}
                    op = bytes(fields.get(4, b"")).decode()
                    domain = bytes(fields.get(7, b"")).decode()
                    histogram[f"{domain}.{op}" if domain and domain != "ai.onnx" else op] += 1
    except (ValueError, UnicodeDecodeError) as error:
        raise InputFileError(f"not a valid ONNX model: {path} ({error})") from None
    if graphs != 1:
        raise InputFileError(f"not a valid ONNX model: {path} (no graph)")
    return dict(sorted(histogram.items())), opsets
