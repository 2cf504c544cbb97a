"""The ONNX forms: each exact against Keras, each with the graph shape it promises; int8 fully fused by onnxruntime."""

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from edgeshuffle.export.onnx_forms import DEFAULT_ONNX_FORM, ONNX_FORMS, validate_onnx_form  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

# Ops that onnxruntime's CPU QDQ selectors (qdq_selector_action_transformer.cc) turn into integer kernels
# (QLinearConv, QLinearAdd, QLinearMul, QLinearConcat, QLinearAveragePool, QLinearGlobalAveragePool, QGemm,
# MatMulIntegerToFloat...) or run on integers directly once their DequantizeLinear/QuantizeLinear pair is
# dropped (MaxPool, Reshape, Transpose, Squeeze, Unsqueeze, Flatten, Gather, Split; Relu folds into the
# QuantizeLinear after it). None of them may be left as DequantizeLinear -> float op -> QuantizeLinear.
INTEGER_KERNEL_OPS = ("Conv", "MatMul", "Gemm", "Add", "Mul", "Concat", "AveragePool", "GlobalAveragePool",
                      "MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Gather", "Split",
                      "Relu")


@pytest.fixture(scope="module")
def model(small_model):
    return small_model(groups=3, scale=0.5, input_size=32, stem="cifar")


@pytest.fixture(scope="module")
def edge(model):
    """The edge graph the artifacts are made from (its native grouped convs run only once exported)."""
    from edgeshuffle.graph import RewriteOptions, rewrite

    return rewrite(model, RewriteOptions()).model


@pytest.fixture(scope="module")
def inputs():
    return np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)


def _run(proto, x):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])


def _convs(proto):
    return [node for node in proto.graph.node if node.op_type == "Conv"]


def _group(node):
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)


def _grouped_pointwise(proto):
    weights = {init.name: tuple(init.dims) for init in proto.graph.initializer}
    return [n for n in _convs(proto) if _group(n) > 1 and weights[n.input[1]][1] > 1]


@pytest.fixture(scope="module")
def converted(edge):
    """float_onnx_model of ``edge`` in a form, converted once per form."""
    from edgeshuffle.export.onnx import float_onnx_model

    cache = {}

    def convert(form):
        if form not in cache:
            cache[form] = float_onnx_model(edge, form=form)  # passes onnx.checker (full check) inside
        return cache[form]

    return convert


@pytest.mark.parametrize("form", list(ONNX_FORMS))
def test_form_is_exact_against_keras(model, converted, inputs, form):
    proto = converted(form)
    reference = np.asarray(model(inputs, training=False))
    outputs = _run(proto, inputs)
    assert np.abs(outputs - reference).max() <= 1e-5 * np.abs(reference).max()
    assert (outputs.argmax(1) == reference.argmax(1)).all()

    ops = [node.op_type for node in proto.graph.node]
    if form == "nchw":
        assert len(_grouped_pointwise(proto)) > 0
    if form == "nchw-bias":
        assert all(len(node.input) == 3 for node in _convs(proto))
    if form == "split-groups":
        assert not _grouped_pointwise(proto) and ops.count("Split") > 0
    if form.startswith("dense"):
        assert not _grouped_pointwise(proto) and "Split" not in ops


def test_unknown_form_is_refused():
    from edgeshuffle.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="Received: `onnx_form=nope`"):
        validate_onnx_form("nope")
    assert DEFAULT_ONNX_FORM in ONNX_FORMS


def _optimized_model(path: Path, target: Path):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(target)
    options.log_severity_level = 3  # the NCHWc warning about a machine-specific dump
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return onnx.load(str(target))


def float_ops_between_dq_and_q(graph) -> list[str]:
    """Float ops of ``INTEGER_KERNEL_OPS`` that read a DequantizeLinear and feed a QuantizeLinear."""
    producers = {out: node for node in graph.node for out in node.output}
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    chains = []
    for node in graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in INTEGER_KERNEL_OPS:
            continue
        reads_dq = any(producers.get(name) is not None and producers[name].op_type == "DequantizeLinear"
                       for name in node.input)
        feeds_q = any(c.op_type == "QuantizeLinear" for out in node.output for c in consumers.get(out, []))
        if reads_dq and feeds_q:
            chains.append(f"{node.op_type} {node.name}")
    return chains


@pytest.mark.parametrize("types", ["u8u8", "u8s8"])
def test_int8_onnx_leaves_no_float_op_between_dequantize_and_quantize(model, edge, tmp_path, types):
    from edgeshuffle.data.sets import calibration_set
    from edgeshuffle.export.onnx import float_onnx_model
    from edgeshuffle.export.quantize import quantize_onnx

    float_path, int8_path = tmp_path / "float32.onnx", tmp_path / "int8.onnx"
    onnx.save(float_onnx_model(edge), str(float_path))
    calibration = calibration_set(REPO / "calibration" / "cifar10-train-300", model.spec.preprocessing, 16)
    quantize_onnx(float_path, calibration, int8_path, tmp_path, types)
    quantized = onnx.load(str(int8_path)).graph
    assert float_ops_between_dq_and_q(quantized)  # the QDQ file has them: the check can fail

    optimized = _optimized_model(int8_path, tmp_path / "int8.optimized.onnx").graph
    assert float_ops_between_dq_and_q(optimized) == []
    ops = [node.op_type for node in optimized.node]
    assert "QLinearConv" in ops and "QLinearAdd" in ops and "QLinearConcat" in ops
    assert ops.count("DequantizeLinear") == 1 and ops.count("QuantizeLinear") == 1  # the float input and output


def test_fold_shuffles_into_convs_is_exact_and_removes_the_shuffle():
    from onnx import TensorProto, helper, numpy_helper

    from edgeshuffle.export.onnx import remove_unused
    from edgeshuffle.export.onnx_forms import fold_shuffles_into_convs

    rng = np.random.default_rng(4)
    a, b, height, width, filters = 3, 4, 5, 2, 7  # shuffle of 12 channels in 3 groups of 4
    inits = {"view": np.array([1, a, b, height * width], np.int64),
             "back": np.array([1, a * b, height, width], np.int64),
             "w": rng.normal(size=(filters, a * b, 1, 1)).astype(np.float32),
             "bias": rng.normal(size=filters).astype(np.float32)}
    nodes = [helper.make_node("Reshape", ["x", "view"], ["r1"]),
             helper.make_node("Transpose", ["r1"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["t", "back"], ["r2"]),
             helper.make_node("Conv", ["r2", "w", "bias"], ["y"])]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, a * b, height, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, filters, height, width])],
                              [numpy_helper.from_array(value, name) for name, value in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(size=(1, a * b, height, width)).astype(np.float32)
    # independent reference: the paper's shuffle (output channel j*a + i is input channel i*b + j), then a 1x1 conv
    shuffled = np.empty_like(x)
    for i in range(a):
        for j in range(b):
            shuffled[:, j * a + i] = x[:, i * b + j]
    reference = np.einsum("oc,nchw->nohw", inits["w"][:, :, 0, 0], shuffled) + inits["bias"][None, :, None, None]

    assert fold_shuffles_into_convs(model) == 1
    remove_unused(model)
    onnx.checker.check_model(model, full_check=True)
    assert [node.op_type for node in model.graph.node] == ["Conv"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], reference, rtol=1e-5, atol=1e-5)


def test_convert_help_names_every_form_and_the_default():
    from click.testing import CliRunner

    from edgeshuffle.cli import main

    result = CliRunner().invoke(main, ["convert", "--help"], terminal_width=400)
    assert result.exit_code == 0
    help_text = " ".join(result.output.split())
    assert f"[default: {DEFAULT_ONNX_FORM}," in help_text
    assert all(name in help_text for name in ONNX_FORMS)


def test_convert_refuses_an_unknown_form_in_one_line(tmp_path):
    from click.testing import CliRunner

    from edgeshuffle.cli import main

    result = CliRunner().invoke(main, ["convert", "--onnx-form", "nope", "--output-dir", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "Received: `onnx_form=nope`" in result.output and not (tmp_path / "out" / "float32.onnx").exists()
