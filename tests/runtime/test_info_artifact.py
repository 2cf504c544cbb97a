"""`edgeshuffle info MODEL`: metadata, tensors, size, op histogram and delegation of an artifact."""

from __future__ import annotations

import collections
import json

import pytest
from click.testing import CliRunner

from edgeshuffle.cli import main


def _info(path):
    result = CliRunner().invoke(main, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_info_tflite(artifacts):
    from ai_edge_litert import schema_py_generated as schema

    info = _info(artifacts["plain_int8"])
    assert info["format"] == "tflite" and info["size_bytes"] == artifacts["plain_int8"].stat().st_size
    assert info["metadata"]["model"] == "shufflenet_v1_g3_0.25x_cifar" and info["metadata"]["precision"] == "int8"
    assert info["metadata"]["preprocessing"]["input_size"] == 32
    assert info["metadata"]["form"]["passes"] == ["static_batch", "grouped_conv"]
    (inp,), (out,) = info["inputs"], info["outputs"]
    assert inp["shape"] == [1, 32, 32, 3] and inp["dtype"] == "int8" and inp["scale"] > 0
    assert out["shape"] == [1, 10] and out["dtype"] == "int8"
    # The op histogram counts the flatbuffer's own operators (read with the schema, independently).
    model = schema.ModelT.InitFromPackedBuf(bytearray(artifacts["plain_int8"].read_bytes()), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    expected = collections.Counter(names[codes[op.opcodeIndex]] for op in model.subgraphs[0].operators)
    assert info["op_histogram"] == dict(expected)
    assert info["delegation"]["partitions"] > 1
    assert info["delegation"]["undelegated_ops"] == {"AVERAGE_POOL_2D": expected["AVERAGE_POOL_2D"],
                                                     "RELU": expected["RELU"]}


def test_info_onnx_histogram_matches_the_onnx_package(artifacts):
    import onnx

    for key in ("onnx_float32", "onnx_int8"):
        info = _info(artifacts[key])
        proto = onnx.load(str(artifacts[key]))
        expected = collections.Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                                       for n in proto.graph.node)
        assert info["op_histogram"] == dict(expected)
        assert info["opsets"]["ai.onnx"] == next(o.version for o in proto.opset_import if o.domain == "")
        assert info["runner"]["providers"] == ["CPUExecutionProvider"]
        assert info["inputs"][0]["shape"] == [1, 32, 32, 3]
    assert "QuantizeLinear" in _info(artifacts["onnx_int8"])["op_histogram"]


def test_info_table(artifacts):
    result = CliRunner().invoke(main, ["info", str(artifacts["edge_int8"])])
    assert result.exit_code == 0, result.output
    assert "XNNPACK: 1 partition(s), " in result.output and "outside: none" in result.output
    assert "shufflenet_v1_g3_0.25x_cifar, int8" in result.output and "DEPTHWISE_CONV_2D" in result.output


@pytest.mark.parametrize("key,culprit", [("zero.tflite", "not a valid TFLite model"),
                                         ("random.onnx", "not a valid ONNX model"),
                                         ("missing", "no model file at")])
def test_info_bad_artifacts(artifacts, tmp_path, key, culprit):
    path = artifacts.get(key, tmp_path / "missing.tflite")
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 1 and culprit in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_info_refuses_variant_options_with_an_artifact(artifacts):
    result = CliRunner().invoke(main, ["info", str(artifacts["edge_int8"]), "--groups", "8"])
    assert result.exit_code == 2 and "--groups" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_metadata_of_a_model_edgeshuffle_did_not_build_round_trips():
    """Preprocessing and class names stand without a ShuffleNet spec (any image classifier)."""
    from edgeshuffle.metadata import ArtifactMetadata
    from edgeshuffle.preprocessing import Preprocessing

    meta = ArtifactMetadata(preprocessing=Preprocessing(input_size=96, resize_size=110, channel_order="BGR"),
                            class_names=("cat", "dog"), precision="int8", name="my_net")
    back = ArtifactMetadata.from_json(meta.to_json())
    assert back == meta and back.spec is None and back.preprocessing.channel_order == "BGR"


def test_schema_1_metadata_still_reads():
    """Artifacts written before schema 2 kept preprocessing and class names inside the spec."""
    import json

    from edgeshuffle.metadata import ArtifactMetadata
    from edgeshuffle.models.variants import ModelSpec

    spec = ModelSpec(groups=3, scale=0.25, input_size=32, classes=2, class_names=("a", "b"), stem="cifar")
    old = json.dumps({"schema_version": 1, "precision": "float32", "spec": spec.to_dict(), "form": {}})
    meta = ArtifactMetadata.from_json(old)
    assert meta.preprocessing == spec.preprocessing and meta.class_names == ("a", "b") and meta.name == spec.name
