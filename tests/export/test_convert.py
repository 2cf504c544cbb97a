"""`edgeshuffle convert` end to end: every Done-when item, asserted by reading the artifacts."""

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")
onnx = pytest.importorskip("onnx")

from click.testing import CliRunner  # noqa: E402

from edgeshuffle.cli import main  # noqa: E402
from edgeshuffle.export.convert import ConvertConfig, convert  # noqa: E402
from edgeshuffle.metadata import read_metadata  # noqa: E402
from edgeshuffle.models.variants import STAGE_REPEATS, ModelSpec  # noqa: E402

from .conftest import randomize_batchnorm  # noqa: E402

FORBIDDEN = {"SHAPE", "STRIDED_SLICE", "PACK"}


def channel_shuffles(spec: ModelSpec) -> int:
    """Paper: one shuffle per unit when g > 1; 4 + 8 + 4 units."""
    return 0 if spec.groups == 1 else sum(STAGE_REPEATS)


def grouped_pointwise_convs(spec: ModelSpec) -> int:
    """Two grouped 1x1 convs per unit, except Stage 2's first (paper, Sec. 3.3)."""
    return 0 if spec.groups == 1 else 2 * sum(STAGE_REPEATS) - 1


def assert_tflite_is_edge_friendly(path, batch=1):
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgeshuffle.runtime.delegation import xnnpack_delegation

    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not ops & FORBIDDEN and not any(name.startswith("Flex") for name in ops), ops
    flat = schema.Model.GetRootAsModel(bytearray(path.read_bytes()), 0)
    codes = [flat.OperatorCodes(i) for i in range(flat.OperatorCodesLength())]
    assert all(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()) != schema.BuiltinOperator.CUSTOM for c in codes)
    assert max(len(t["shape"]) for t in interpreter.get_tensor_details()) <= 4
    assert interpreter.get_input_details()[0]["shape"][0] == batch
    delegation = xnnpack_delegation(path)
    assert delegation.partitions == 1 and delegation.delegated_nodes == delegation.nodes


def assert_onnx_is_edge_friendly(path, spec, opset=17):
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == opset
    nodes = list(proto.graph.node)
    transposes = [n for n in nodes if n.op_type == "Transpose"]
    assert len(transposes) <= channel_shuffles(spec) + 2
    # NCHW inside: one layout change right at the input; every other Transpose sits inside a shuffle,
    # between two Reshapes (the view and the way back), never next to a conv.
    at_input = [n for n in transposes if n.input[0] == "input"]
    assert len(at_input) == 1 and list(at_input[0].attribute[0].ints) == [0, 3, 1, 2]
    producer = {out: n for n in nodes for out in n.output}
    consumers = {}
    for n in nodes:
        for name in n.input:
            consumers.setdefault(name, []).append(n.op_type)
    for n in transposes:
        if n.input[0] != "input":
            assert producer[n.input[0]].op_type == "Reshape" and consumers[n.output[0]] == ["Reshape"]
    groups = [next((a.i for a in n.attribute if a.name == "group"), 1) for n in nodes if n.op_type == "Conv"]
    assert sum(g == spec.groups for g in groups) == grouped_pointwise_convs(spec) or spec.groups == 1


def independent_parity(model, output_dir, seed=11, batch=1, samples=3):
    """Keras (split form) vs LiteRT vs onnxruntime, run here on inputs the convert step never saw."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    size = model.spec.input_size
    x = np.random.default_rng(seed).normal(size=(samples * batch, size, size, 3)).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    interpreter = Interpreter(model_path=str(output_dir / "float32.tflite"))
    interpreter.allocate_tensors()
    session = ort.InferenceSession(str(output_dir / "float32.onnx"), providers=["CPUExecutionProvider"])
    for name in ("tflite", "onnx"):
        outputs = []
        for i in range(0, len(x), batch):
            chunk = x[i:i + batch]
            if name == "tflite":
                interpreter.set_tensor(interpreter.get_input_details()[0]["index"], chunk)
                interpreter.invoke()
                outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
            else:
                outputs.append(session.run(["logits"], {"input": chunk})[0])
        got = np.concatenate(outputs)
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), name
        np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


def assert_metadata(output_dir, spec, form):
    for name in ("float32.tflite", "float32.onnx"):
        meta = read_metadata(output_dir / name)
        assert meta is not None and meta.spec == spec and meta.precision == "float32"
        assert meta.preprocessing == spec.preprocessing and meta.class_names == spec.class_names
        assert meta.form == form
    props = {p.key: p.value for p in onnx.load(str(output_dir / "float32.onnx")).metadata_props}
    assert json.loads(props["mean"]) == list(spec.preprocessing.mean)
    assert props["channel_order"] == spec.preprocessing.channel_order


def _write_images(folder, count, size):
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size + 7, size + 3, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


SMALL = [
    pytest.param(ModelSpec(groups=1, scale=0.5, input_size=32, classes=10), 1, id="g1"),
    pytest.param(ModelSpec(groups=2, scale=0.25, input_size=64, classes=10,
                           class_names=tuple("abcdefghij")), 1, id="g2-labels-images"),
    pytest.param(ModelSpec(groups=3, scale=0.25, input_size=32, classes=10), 2, id="g3-batch2"),
    pytest.param(ModelSpec(groups=4, scale=0.25, input_size=32, classes=10, stem="cifar"), 1, id="g4-cifar"),
    pytest.param(ModelSpec(groups=8, scale=0.5, input_size=32, classes=10), 1, id="g8"),
]


@pytest.mark.parametrize("spec,batch", SMALL)
def test_convert_small_variants(tmp_path, spec, batch):
    from edgeshuffle.models.shufflenet import build_shufflenet

    model = randomize_batchnorm(build_shufflenet(spec), seed=spec.groups)
    images = _write_images(tmp_path / "images", 3, spec.input_size) if spec.class_names else None
    out = tmp_path / "out"
    report = convert(model, out, ConvertConfig(batch=batch, samples=2, images=images))
    assert sorted(p.name for p in out.iterdir()) == ["convert.json", "float32.onnx", "float32.tflite", "model.keras"]
    assert_tflite_is_edge_friendly(out / "float32.tflite", batch)
    assert_onnx_is_edge_friendly(out / "float32.onnx", spec)
    independent_parity(model, out, batch=batch)
    assert_metadata(out, spec, {"batch": batch, "shuffle": "reshape"})
    fired = {p["name"]: p["fired"] for p in report.rewrites["passes"]}
    assert fired["grouped_conv"] == grouped_pointwise_convs(spec) and fired["static_batch"] == 1
    assert fired["shuffle_after_depthwise"] == channel_shuffles(spec)
    saved = json.loads((out / "convert.json").read_text())
    assert saved["status"] == "passed" == report.status
    assert set(saved["parity"]["comparisons"]) == {"tflite", "onnx"}
    assert saved["parity"]["inputs"].startswith("2 images" if images else "2 random-pixel images")
    assert saved["tflite"]["xnnpack"]["partitions"] == 1 and "tensorflow" in saved["versions"]


@pytest.mark.slow
def test_convert_full_size_1x_g3(tmp_path):
    """The issue's target: ShuffleNet 1x g=3 at 224x224, through the CLI."""
    from edgeshuffle.models.io import load_model

    out = tmp_path / "full"
    result = CliRunner().invoke(main, ["convert", "--groups", "3", "--scale", "1", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output
    spec = ModelSpec()
    assert_tflite_is_edge_friendly(out / "float32.tflite")
    assert_onnx_is_edge_friendly(out / "float32.onnx", spec)
    model = load_model(out / "model.keras")
    assert model.spec == spec
    independent_parity(model, out, samples=2)
    assert_metadata(out, spec, {"batch": 1, "shuffle": "reshape"})


def test_failed_gate_keeps_artifacts_and_exits_3(tmp_path, monkeypatch):
    """A perturbed ONNX output must fail the gate: exit 3, one line, artifacts kept, report failed."""
    import edgeshuffle.export.convert as convert_module

    real_gate = convert_module.parity_gate

    def perturbed(reference, artifacts, inputs):
        from edgeshuffle.parity import compare
        from edgeshuffle.runtime import KerasRunner, open_runner

        results = real_gate(reference, artifacts, inputs)
        with KerasRunner(None, model=reference) as runner:
            expected = runner.infer(inputs)
        with open_runner(artifacts["onnx"]) as runner:
            logits = runner.infer(inputs)
        logits[:, 0] += 1e-2 * np.abs(expected).max()
        return {**results, "onnx": compare(expected, logits)}

    monkeypatch.setattr(convert_module, "parity_gate", perturbed)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", "-g", "2", "-s", "0.25", "--input-size", "32", "--samples", "2",
                                       "-o", str(out)])
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "onnx max relative error" in error_lines[0]
    saved = json.loads((out / "convert.json").read_text())
    assert saved["status"] == "failed" and "onnx" in saved["reason"] and "tflite" not in saved["reason"]
    assert (out / "float32.tflite").is_file() and (out / "float32.onnx").is_file()
    assert not [p for p in out.iterdir() if ".partial" in p.name]


def _not_a_classifier(path):
    import keras

    inputs = keras.Input((8, 8, 3))
    keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs)).save(path)
    return path


@pytest.mark.parametrize("make_args,culprit,code", [
    (lambda tmp: [str(tmp / "missing.keras")], "no model file", 1),
    (lambda tmp: [str((tmp / "junk.keras").absolute()), "-o", str(tmp / "o")], "not a .keras model file", 1),
    (lambda tmp: [str(_not_a_classifier(tmp / "plain.keras"))], "needs (batch, classes)", 1),
    (lambda tmp: ["--shuffle", "roll"], "'roll'", 2),
    (lambda tmp: ["--batch", "0"], "0", 2),
    (lambda tmp: ["--opset", "9"], "9", 2),
    (lambda tmp: ["--groups", "5"], "'5'", 2),
    (lambda tmp: ["--input-size", "100"], "input_size=100", 2),
    (lambda tmp: ["-s", "0.25", "--input-size", "32", "--images", str(tmp / "nope")], "nope", 1),
    (lambda tmp: ["-s", "0.25", "--input-size", "32", "-o", str(tmp / "junk.keras" / "sub")], "junk.keras", 1),
], ids=["missing", "not-a-zip", "not-a-classifier", "shuffle", "batch", "opset", "groups", "input-size",
        "no-images", "unwritable-output"])
def test_cli_errors_are_one_line(tmp_path, make_args, culprit, code):
    (tmp_path / "junk.keras").write_text("not a zip")
    args = make_args(tmp_path)
    if "-o" not in args:
        args += ["-o", str(tmp_path / "out")]
    result = CliRunner().invoke(main, ["convert", *args])
    assert result.exit_code == code, result.output
    assert culprit in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "float32.tflite").exists()


def test_convert_onnx_form_option(tmp_path):
    """`--onnx-form` picks the float32.onnx graph form; the parity gate holds for it too."""
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", "-g", "3", "-s", "0.25", "--input-size", "32", "--stem", "cifar",
                                       "--samples", "2", "--onnx-form", "split-groups", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "form split-groups" in result.output
    saved = json.loads((out / "convert.json").read_text())
    assert saved["status"] == "passed" and saved["onnx"]["form"] == "split-groups"
    proto = onnx.load(str(out / "float32.onnx"))
    assert "Split" in {n.op_type for n in proto.graph.node}
    assert all(next((a.i for a in n.attribute if a.name == "group"), 1) == 1 or proto_weight_is_depthwise(proto, n)
               for n in proto.graph.node if n.op_type == "Conv")


def proto_weight_is_depthwise(proto, node):
    dims = next(tuple(i.dims) for i in proto.graph.initializer if i.name == node.input[1])
    return dims[1] == 1
