"""`edgeshuffle quantize`: int8 TFLite and ONNX of a model trained in the test, on generated images.

The model learns a real (if easy) task, so the accuracy gate means something:
four classes of noisy images, told apart by their dominant colour and stripe
direction. Calibration and evaluation images are drawn separately and never
overlap.
"""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeshuffle.cli import main

CLASSES = ("blue_h", "blue_v", "red_h", "red_v")


def _image(rng, label: int) -> Image.Image:
    colour = np.array([40, 60, 200]) if label < 2 else np.array([200, 50, 40])
    stripes = (np.arange(32) // 4 % 2)[:, None] * np.ones((1, 32))
    if label % 2:
        stripes = stripes.T
    pixels = colour * (0.55 + 0.45 * stripes[..., None]) + rng.normal(0, 25, (32, 32, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _write_set(folder, count_per_class: int, seed: int, labelled: bool = True):
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        target = folder / name if labelled else folder
        target.mkdir(parents=True, exist_ok=True)
        for i in range(count_per_class):
            _image(rng, label).save(target / f"{name}_{seed}_{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 0.25x g=2 CIFAR-stem ShuffleNet trained for a few epochs, saved as model.keras."""
    import keras

    from edgeshuffle.data import labelled_images, load_rgb, preprocess
    from edgeshuffle.models.io import save_model
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.variants import ModelSpec

    root = tmp_path_factory.mktemp("quantize")
    train = _write_set(root / "train", 48, seed=1)
    spec = ModelSpec(groups=2, scale=0.25, input_size=32, classes=4, stem="cifar", class_names=CLASSES)
    images = labelled_images(train)
    x = np.stack([preprocess(load_rgb(p), spec.preprocessing) for p in images.paths])
    y = np.asarray(images.labels)
    keras.utils.set_random_seed(0)
    model = build_shufflenet(spec)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(True))
    model.fit(x, y, epochs=6, batch_size=16, verbose=0)
    save_model(model, root / "model.keras")
    return {"root": root, "model": root / "model.keras",
            "calibration": _write_set(root / "calibration", 8, seed=2, labelled=False),
            "eval": _write_set(root / "eval", 25, seed=3)}


@pytest.fixture(scope="module")
def quantized(trained):
    out = trained["root"] / "out"
    result = CliRunner().invoke(main, [
        "quantize", str(trained["model"]), "--calibration", str(trained["calibration"]), "--num-calibration",
        "32", "--eval", str(trained["eval"]), "--output-dir", str(out), "--layer-report", "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output[result.output.index("{"):])


def test_int8_accuracy_within_one_point_of_float_on_unseen_images(trained, quantized):
    from edgeshuffle.data import labelled_images, load_rgb, preprocess
    from edgeshuffle.models.io import load_model
    from edgeshuffle.runtime import open_runner

    out, _ = quantized
    model = load_model(trained["model"])
    images = labelled_images(trained["eval"])
    x = np.stack([preprocess(load_rgb(p), model.spec.preprocessing) for p in images.paths])
    labels = np.asarray(images.labels)
    float_accuracy = np.mean(np.asarray(model(x)).argmax(1) == labels)
    assert float_accuracy >= 0.9  # the task is learnt, so the gate below is meaningful
    for name in ("int8.tflite", "int8.onnx"):
        with open_runner(out / name) as runner:
            accuracy = np.mean(runner.infer(x).argmax(1) == labels)
        assert 100 * (float_accuracy - accuracy) <= 1.0, f"{name}: {accuracy:.3f} vs float {float_accuracy:.3f}"


def test_int8_tflite_is_one_xnnpack_partition_of_int8_ops(quantized):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgeshuffle.runtime.delegation import xnnpack_delegation

    out, _ = quantized
    report = xnnpack_delegation(out / "int8.tflite")
    assert report.partitions == 1 and report.undelegated_ops == {}
    assert not {"SHAPE", "STRIDED_SLICE", "PACK", "AVERAGE_POOL_2D", "RELU"} & set(report.op_histogram)
    interpreter = Interpreter(model_path=str(out / "int8.tflite"),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    tensors = interpreter.get_tensor_details()
    assert max(len(t["shape"]) for t in tensors) <= 4
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    conv_weights = [t for t in tensors if t["dtype"] == np.int8 and len(t["quantization_parameters"]["scales"]) > 1]
    assert conv_weights, "weights are quantized per channel"


def test_int8_onnx_is_qdq_and_carries_metadata(quantized):
    import onnx

    from edgeshuffle.metadata import read_metadata

    out, _ = quantized
    proto = onnx.load(str(out / "int8.onnx"))
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    onnx.checker.check_model(proto)
    for name in ("int8.tflite", "int8.onnx"):
        metadata = read_metadata(out / name)
        assert metadata.precision == "int8" and metadata.class_names == CLASSES


def test_int8_onnx_kernels_compute_what_the_qdq_graph_means(quantized):
    """onnxruntime's fused integer kernels agree with the QDQ graph run op by op in float.

    The reference is the same file with graph optimizations off: each
    DequantizeLinear -> float op -> QuantizeLinear evaluated as written. The
    u8u8 default cannot saturate, so only rounding order differs (a step or
    two at the logits); u8s8 on x86 without VNNI misses by several steps on average
    (benchmarks/bench_onnx_types.py measures it).
    """
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    out, _ = quantized
    proto = onnx.load(str(out / "int8.onnx"))
    initializers = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    weights = [initializers[n.input[0]] for n in proto.graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in initializers and initializers[n.input[0]].ndim == 4]
    assert weights and all(w.dtype == np.uint8 for w in weights)
    output_node = next(n for n in proto.graph.node if proto.graph.output[0].name in n.output)
    assert output_node.op_type == "DequantizeLinear"
    step = float(initializers[output_node.input[1]])

    def logits(level):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        session = ort.InferenceSession(str(out / "int8.onnx"), options, providers=["CPUExecutionProvider"])
        feed = session.get_inputs()[0]
        x = np.random.default_rng(0).normal(size=(32, *feed.shape[1:])).astype(np.float32)
        return np.concatenate([session.run(None, {feed.name: x[i:i + 1]})[0] for i in range(len(x))])

    steps = np.abs(logits(ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
                   - logits(ort.GraphOptimizationLevel.ORT_DISABLE_ALL)) / step
    assert steps.mean() <= 1.0 and steps.max() <= 3.0, (steps.mean(), steps.max())


def test_report_records_calibration_parity_and_layers(trained, quantized):
    from edgeshuffle.data import find_images, load_rgb, preprocess
    from edgeshuffle.data.sets import sample_order
    from edgeshuffle.models.io import load_model
    from edgeshuffle.runtime import open_runner

    out, report = quantized
    assert json.loads((out / "quantize.json").read_text()) == report
    assert report["status"] == "passed" and report["calibration"]["images"] == 32
    assert set(report["sizes"]) >= {"int8_tflite", "int8_onnx", "float32_tflite", "float32_onnx"}
    assert report["sizes"]["int8_tflite"] < report["sizes"]["float32_tflite"]
    calibration_files = {os.path.basename(f) for f in report["calibration"]["files"]}
    evaluated = {os.path.basename(r) for r in os.listdir(trained["eval"] / CLASSES[0])}
    assert not calibration_files & evaluated
    # The layer report's figure for the logits equals the int8 error computed here, independently.
    layers = {e["layer"]: e for e in report["layer_errors"]}
    assert "logits" in layers and "stage3_unit1_relu" in layers
    model = load_model(trained["model"])
    paths = sample_order(find_images(trained["calibration"]))[:8]
    x = np.stack([preprocess(load_rgb(p), model.spec.preprocessing) for p in paths])
    # The layer report reads intermediates, so it runs LiteRT's built-in kernels, not XNNPACK.
    with open_runner(out / "int8.tflite", tflite_kernels="builtin") as runner:
        rmse = float(np.sqrt(np.mean((runner.infer(x) - np.asarray(model(x))) ** 2)))
    assert layers["logits"]["rmse"] == pytest.approx(rmse, rel=0.02)


def test_gate_fails_with_exit_3_and_keeps_artifacts(trained, quantized, tmp_path):
    out = tmp_path / "strict-gate"
    result = CliRunner().invoke(main, [
        "quantize", str(trained["model"]), "-c", str(trained["calibration"]), "--num-calibration", "2",
        "--eval", str(trained["eval"]), "--max-drop", "0", "--output-dir", str(out)])
    report = json.loads((out / "quantize.json").read_text())
    if report["status"] == "failed":  # two calibration images: int8 loses something at zero tolerance
        assert result.exit_code == 3 and "accuracy gate failed" in result.output
        assert (out / "int8.tflite").is_file() and (out / "int8.onnx").is_file()
    else:
        assert result.exit_code == 0


@pytest.mark.parametrize("case", ["empty", "not_images", "too_few", "mixed_strict"])
def test_bad_calibration_folders(trained, tmp_path, case):
    folder = tmp_path / "cal"
    folder.mkdir()
    if case == "not_images":
        (folder / "notes.txt").write_text("hello")
        (folder / "fake.jpg").write_bytes(os.urandom(300))
    if case == "too_few":
        _write_set(folder, 1, seed=5, labelled=False)
    if case == "mixed_strict":
        _write_set(folder, 3, seed=5, labelled=False)
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    out = tmp_path / "out"
    strict = ["--strict"] if "strict" in case else []
    needed = "13" if strict else "8"  # strict: the sample must reach the broken file
    result = CliRunner().invoke(main, ["quantize", str(trained["model"]), "-c", str(folder), "--num-calibration",
                                       needed, "--output-dir", str(out)] + strict)
    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()[-1]
    assert message.startswith("error: ") and ("broken.png" in message if strict else "cal" in message)
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir()), "nothing written on a calibration error"


def test_mixed_folder_skips_unreadable_images_with_a_warning(trained, tmp_path, caplog):
    from edgeshuffle.data.sets import calibration_set
    from edgeshuffle.models.io import load_model

    folder = _write_set(tmp_path / "cal", 3, seed=6, labelled=False)
    (folder / "truncated.png").write_bytes((folder / os.listdir(folder)[0]).read_bytes()[:80])
    (folder / "zero.jpg").write_bytes(b"")
    spec = load_model(trained["model"]).spec
    loaded = calibration_set(folder, spec.preprocessing, 12)
    assert len(loaded) == 12 and {p.name for p, _ in loaded.skipped} == {"truncated.png", "zero.jpg"}
    assert "truncated.png" in caplog.text


@pytest.mark.slow
def test_full_size_1x_g3_int8_is_one_partition_with_nothing_outside(tmp_path):
    """ShuffleNet 1x g=3, 224x224, calibrated on the shipped ImageNet images (issue's Done-when)."""
    from pathlib import Path

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgeshuffle.runtime.delegation import xnnpack_delegation

    from edgeshuffle.export.quantize import QuantizeConfig, quantize
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.variants import ModelSpec

    calibration = Path(__file__).resolve().parents[2] / "calibration" / "imagenet-val-200"
    quantize(build_shufflenet(ModelSpec(groups=3, scale=1.0)), tmp_path,
             QuantizeConfig(calibration=calibration, num_calibration=16))
    report = xnnpack_delegation(tmp_path / "int8.tflite")
    assert report.partitions == 1 and report.undelegated_ops == {}
    assert not {"SHAPE", "STRIDED_SLICE", "PACK", "FlexDelegate", "CUSTOM"} & set(report.op_histogram)
    interpreter = Interpreter(model_path=str(tmp_path / "int8.tflite"),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    assert max(len(t["shape"]) for t in interpreter.get_tensor_details()) <= 4
    assert (tmp_path / "int8.onnx").stat().st_size < (tmp_path / "float32.onnx").stat().st_size / 2


def test_official_variant_quantizes_to_one_partition_and_passes_parity(tmp_path):
    """The imported (official-convention) network gets the paper variant's int8 guarantees."""
    from pathlib import Path

    from edgeshuffle.export.quantize import QuantizeConfig, quantize
    from edgeshuffle.models.shufflenet import build_shufflenet
    from edgeshuffle.models.variants import ModelSpec
    from edgeshuffle.runtime.delegation import xnnpack_delegation

    import keras

    shipped = Path(__file__).resolve().parents[2] / "calibration"
    keras.utils.set_random_seed(0)
    model = build_shufflenet(ModelSpec.official(groups=8, scale=0.5, input_size=64, classes=10))
    # Untrained: its logits are near ties, so top-1 agreement says little; the cosine is the check.
    report = quantize(model, tmp_path, QuantizeConfig(
        calibration=shipped / "imagenet-val-200", num_calibration=16, eval=shipped / "imagenet-val-agree-100",
        eval_limit=24, max_drop=100.0))
    delegation = xnnpack_delegation(tmp_path / "int8.tflite")
    assert delegation.partitions == 1 and delegation.undelegated_ops == {}
    assert "PAD" in delegation.op_histogram  # PyTorch's symmetric padding, delegated too
    results = {Path(r["model"]).name: r for r in report.parity["results"]}
    assert results["float32.tflite"]["max_relative_error"] < 1e-4
    assert results["int8.tflite"]["mean_cosine"] > 0.99 and results["int8.onnx"]["mean_cosine"] > 0.99


def test_artifacts_and_parity_are_identical_with_one_job_and_several(trained, tmp_path):
    """Calibration and --eval in a pool of threads change nothing: same int8.tflite bytes, same int8.onnx
    outputs (ONNX files themselves differ run to run, see README "Determinism"), same parity figures."""
    import onnxruntime as ort

    from edgeshuffle.data import labelled_images, load_rgb, preprocess
    from edgeshuffle.export.quantize import QuantizeConfig, quantize
    from edgeshuffle.models.io import load_model

    model = load_model(trained["model"])
    config = QuantizeConfig(calibration=trained["calibration"], num_calibration=21, eval=trained["eval"],
                            eval_limit=40, max_drop=100.0)
    reports = {jobs: quantize(model, tmp_path / f"jobs{jobs}", config, jobs=jobs) for jobs in (1, 2)}
    one, two = tmp_path / "jobs1", tmp_path / "jobs2"
    assert json.dumps(reports[1].parity).replace(str(one), "out") == json.dumps(reports[2].parity).replace(str(two),
                                                                                                         "out")
    assert reports[1].calibration == reports[2].calibration
    assert (one / "int8.tflite").read_bytes() == (two / "int8.tflite").read_bytes()
    x = np.stack([preprocess(load_rgb(p), model.spec.preprocessing)
                  for p in labelled_images(trained["eval"]).paths[::6]])
    outputs = []
    for folder in (one, two):
        session = ort.InferenceSession(str(folder / "int8.onnx"), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        outputs.append(np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))]))
    assert outputs[0].tobytes() == outputs[1].tobytes()


def test_jobs_below_one_is_refused(trained, tmp_path):
    result = CliRunner().invoke(main, ["quantize", str(trained["model"]), "-c", str(trained["calibration"]),
                                       "--output-dir", str(tmp_path / "out"), "--jobs", "0"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().endswith("Received: `jobs=0`")
    assert not (tmp_path / "out").exists()


def test_streamed_onnx_calibration_equals_onnxruntimes_one_shot_calibration(trained, quantized, tmp_path):
    """Strided reading (ranges merged stride by stride, no per-batch outputs kept) gives the int8 model that
    onnxruntime's own one-shot MinMax calibration gives on the same images in memory."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgeshuffle.data.sets import calibration_set
    from edgeshuffle.export.quantize import quantize_onnx
    from edgeshuffle.models.io import load_model

    out, _ = quantized
    spec = load_model(trained["model"]).spec
    calibration = calibration_set(trained["calibration"], spec.preprocessing, 23, jobs=2)  # 23 batches: stride 1
    quantize_onnx(out / "float32.onnx", calibration, tmp_path / "streamed.onnx", tmp_path)
    inputs = calibration.inputs()
    name = ort.InferenceSession(str(out / "float32.onnx"), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class InMemory:
        def __init__(self):
            self.feeds = iter({name: inputs[i:i + 1]} for i in range(len(inputs)))

        def get_next(self):
            return next(self.feeds, None)

    quant_pre_process(str(out / "float32.onnx"), str(tmp_path / "prepared.onnx"), skip_symbolic_shape=True)
    quantize_static(str(tmp_path / "prepared.onnx"), str(tmp_path / "one_shot.onnx"), InMemory(),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QUInt8, calibrate_method=CalibrationMethod.MinMax)
    x = inputs[:8]
    outputs = []
    for path in (tmp_path / "streamed.onnx", tmp_path / "one_shot.onnx"):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs.append(np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))]))
    assert outputs[0].tobytes() == outputs[1].tobytes()
