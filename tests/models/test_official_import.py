"""`edgeshuffle import`: official checkpoints load into Keras and compute what PyTorch computes.

The reference is a PyTorch ShuffleNet v1 written here from the paper
(arXiv:1707.01083) and the description of megvii's ShuffleNetV1/network.py
(state-dict names, (n, g) shuffle after the depthwise conv, symmetric
padding, average pool counting padding, BatchNorm eps 1e-5, bias-free
classifier). It gets random weights and random, non-trivial BatchNorm
statistics, is saved in the released format ({'state_dict': {'module.' + k}}),
imported, and its logits are compared with the Keras model's.
"""

import dataclasses
import json
import math
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from click.testing import CliRunner  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

from edgeshuffle.cli import main  # noqa: E402
from edgeshuffle.data import find_images, load_rgb, preprocess  # noqa: E402
from edgeshuffle.errors import InputFileError  # noqa: E402
from edgeshuffle.models.io import load_model  # noqa: E402
from edgeshuffle.models.official import (  # noqa: E402
    CheckpointMismatchError,
    assign_official_weights,
    import_official,
    read_checkpoint,
)
from edgeshuffle.models.shufflenet import build_shufflenet  # noqa: E402
from edgeshuffle.models.variants import ModelSpec  # noqa: E402

nn = torch.nn
F = torch.nn.functional
REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-4  # max |keras - torch| / max |torch|

# The official stage_out_channels (index 0 unused there), per groups and scale, written out
# independently of edgeshuffle's own table: [stem, stage2, stage3, stage4].
STAGE_OUT_CHANNELS = {
    (3, 0.5): [12, 120, 240, 480], (3, 1.0): [24, 240, 480, 960],
    (3, 1.5): [24, 360, 720, 1440], (3, 2.0): [48, 480, 960, 1920],
    (8, 0.5): [16, 192, 384, 768], (8, 1.0): [24, 384, 768, 1536],
    (8, 1.5): [24, 576, 1152, 2304], (8, 2.0): [48, 768, 1536, 3072],
}


# --------------------------------------------------------------------------------------------
# The reference: ShuffleNet v1 as megvii's PyTorch code computes it.

def official_channel_shuffle(x, groups):
    """View channels as (c / g, g), swap to (g, c / g), flatten."""
    b, c, h, w = x.shape
    x = x.reshape(b, c // groups, groups, h, w).permute(0, 2, 1, 3, 4)
    return x.reshape(b, c, h, w)


class ReferenceUnit(nn.Module):
    def __init__(self, inp, oup, groups, first_group, stride):
        super().__init__()
        self.groups, self.stride = groups, stride
        mid = oup // 4
        outputs = oup - inp if stride == 2 else oup
        self.branch_main_1 = nn.Sequential(
            nn.Conv2d(inp, mid, 1, 1, 0, groups=1 if first_group else groups, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False),
            nn.BatchNorm2d(mid),
        )
        self.branch_main_2 = nn.Sequential(
            nn.Conv2d(mid, outputs, 1, 1, 0, groups=groups, bias=False),
            nn.BatchNorm2d(outputs),
        )
        if stride == 2:
            self.branch_proj = nn.AvgPool2d(3, stride=2, padding=1)  # count_include_pad=True

    def forward(self, old_x):
        x = self.branch_main_1(old_x)
        if self.groups > 1:
            x = official_channel_shuffle(x, self.groups)
        x = self.branch_main_2(x)
        if self.stride == 1:
            return F.relu(x + old_x)
        return torch.cat((self.branch_proj(old_x), F.relu(x)), 1)


class ReferenceShuffleNetV1(nn.Module):
    def __init__(self, groups, scale, input_size, classes):
        super().__init__()
        stem, *stages = STAGE_OUT_CHANNELS[(groups, scale)]
        self.first_conv = nn.Sequential(nn.Conv2d(3, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem),
                                        nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        units, inp = [], stem
        for stage, (repeats, oup) in enumerate(zip([4, 8, 4], stages)):
            for i in range(repeats):
                units.append(ReferenceUnit(inp, oup, groups, first_group=(stage == 0 and i == 0),
                                           stride=2 if i == 0 else 1))
                inp = oup
        self.features = nn.Sequential(*units)
        self.globalpool = nn.AvgPool2d(7) if input_size == 224 else nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(stages[-1], classes, bias=False))

    def forward(self, x):
        x = self.maxpool(self.first_conv(x))
        x = self.globalpool(self.features(x))
        return self.classifier(x.flatten(1))


def random_reference(groups, scale, input_size, classes, seed):
    """Random weights; BatchNorm statistics measured on random images, then perturbed per channel."""
    torch.manual_seed(seed)
    net = ReferenceShuffleNetV1(groups, scale, input_size, classes)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_in))
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0.0, 1.0 / math.sqrt(m.in_features))
        for bn in bns:
            bn.momentum = None  # cumulative average: the statistics of the batch seen
        net.train()
        net(torch.rand(8, 3, input_size, input_size) * 255.0)
        for bn in bns:
            c = bn.num_features
            std = bn.running_var.sqrt()
            bn.running_mean += 0.3 * std * torch.randn(c)
            bn.running_var *= torch.empty(c).uniform_(0.5, 2.0)
            bn.weight.copy_(torch.empty(c).uniform_(0.5, 1.5))
            bn.bias.copy_(0.3 * torch.randn(c))
    return net.eval()


def save_official(net, path, wrap=True, prefix="module.", legacy=False):
    """The released layout: {'state_dict': {'module.' + key: tensor}} (or bare / unprefixed).

    ``legacy``: torch's pre-1.6 (non-zip) serialization, which files released in 2019 may use.
    """
    state = {prefix + k: v.clone() for k, v in net.state_dict().items()}
    torch.save({"state_dict": state} if wrap else state, path, _use_new_zipfile_serialization=not legacy)
    return path


def torch_logits(net, x_nhwc):
    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))).numpy()


def relative_error(got, want):
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


# --------------------------------------------------------------------------------------------
# Inputs: random 0-255 BGR tensors, and real images through the official preprocessing.

def natural_images(folder: Path, count: int = 3) -> list[Path]:
    """Smooth colour gradients with blurred shapes, saved as JPEG (used when the repo ships none)."""
    rng = np.random.default_rng(7)
    paths = []
    for i in range(count):
        w, h = 320 + 40 * i, 240
        yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
        base = np.stack([255 * (0.5 + 0.5 * np.sin(6 * xx * rng.uniform(0.5, 2) + c + yy * 3))
                         for c in range(3)], axis=-1).astype(np.uint8)
        image = Image.fromarray(base)
        draw = ImageDraw.Draw(image)
        for _ in range(8):
            x0, y0 = rng.integers(0, w - 40), rng.integers(0, h - 40)
            draw.ellipse([x0, y0, x0 + rng.integers(20, 120), y0 + rng.integers(20, 120)],
                         fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        path = folder / f"natural_{i}.jpg"
        image.filter(ImageFilter.GaussianBlur(2)).save(path, quality=90)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def real_image_paths(tmp_path_factory):
    """Three ImageNet images the repo ships for agreement checks, else generated ones."""
    folder = REPO / "calibration" / "imagenet-val-agree-100"
    shipped = find_images(folder) if folder.is_dir() else []
    return shipped[:3] if shipped else natural_images(tmp_path_factory.mktemp("images"))


def model_inputs(spec, paths, random_count=2, seed=3):
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, size=(random_count, spec.input_size, spec.input_size, 3)).astype(np.float32)
    real = np.stack([preprocess(load_rgb(p), spec.preprocessing) for p in paths])
    return noise, real


# --------------------------------------------------------------------------------------------
# Keras == PyTorch.

def assert_matches_reference(model, net, paths):
    noise, real = model_inputs(model.spec, paths)
    for name, x in (("random", noise), ("real", real)):
        want = torch_logits(net, x)
        assert np.isfinite(want).all() and want.std() > 1e-3, "degenerate reference logits"
        got = np.asarray(model(x))
        error = relative_error(got, want)
        assert error <= TOLERANCE, f"{name} images: relative error {error:.2e}"


@pytest.fixture(scope="module")
def small_checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    made = {}
    for groups in (3, 8):
        net = random_reference(groups, 0.5, 64, classes=10, seed=groups)
        made[groups] = (net, save_official(net, folder / f"ShuffleNetV1-Group{groups}-0.5x.pth.tar"))
    return made


def test_official_preprocessing_is_bgr_0_255_resize_256_crop_224():
    spec = ModelSpec.official(3, 1.0)
    p = spec.preprocessing
    assert (p.channel_order, p.mean, p.std, p.resize_size, p.input_size) == \
        ("BGR", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 256, 224)
    red = Image.new("RGB", (300, 260), (250, 10, 0))
    x = preprocess(red, p)
    assert x.shape == (224, 224, 3)
    np.testing.assert_allclose(x[100, 100], [0.0, 10.0, 250.0])


@pytest.mark.parametrize("groups", [3, 8])
def test_import_matches_pytorch_small(small_checkpoints, real_image_paths, groups):
    net, path = small_checkpoints[groups]
    model, report = import_official(path, groups, 0.5, input_size=64)
    assert model.spec == ModelSpec.official(groups, 0.5, 64, classes=10)
    assert report.classes == 10
    expected_tensors = sum(1 for k in net.state_dict() if not k.endswith("num_batches_tracked"))
    assert report.tensors == expected_tensors
    assert model.count_params() == sum(v.numel() for k, v in net.state_dict().items()
                                       if not k.endswith("num_batches_tracked"))
    assert_matches_reference(model, net, real_image_paths)


@pytest.mark.parametrize("change", [
    {"shuffle_order": "paper"},
    {"shuffle_position": "before_dw"},
    {"padding": "keras"},
    {"bn_epsilon": 1e-3},
])
def test_each_official_convention_matters(small_checkpoints, change):
    """The same weights in a model without one of the official conventions disagree: the test can fail."""
    net, path = small_checkpoints[3]
    spec = dataclasses.replace(ModelSpec.official(3, 0.5, 64, classes=10), **change)
    model = build_shufflenet(spec)
    assign_official_weights(model, read_checkpoint(path))
    x = np.random.default_rng(5).uniform(0, 255, size=(2, 64, 64, 3)).astype(np.float32)
    assert relative_error(np.asarray(model(x)), torch_logits(net, x)) > 10 * TOLERANCE


@pytest.mark.slow
def test_import_matches_pytorch_1x_g3_224(tmp_path, real_image_paths):
    net = random_reference(3, 1.0, 224, classes=1000, seed=11)
    path = save_official(net, tmp_path / "ShuffleNetV1-Group3-1.0x.pth.tar")
    model, report = import_official(path, 3, 1.0)
    assert model.spec == ModelSpec.official(3, 1.0, 224, 1000)
    assert_matches_reference(model, net, real_image_paths)


def test_imported_model_converts_and_its_artifacts_match_pytorch(small_checkpoints, real_image_paths, tmp_path):
    """import -> convert: float TFLite and ONNX compute the official network, carry BGR 0-255, one partition."""
    convert_module = pytest.importorskip("edgeshuffle.export.convert")
    from edgeshuffle.metadata import read_metadata
    from edgeshuffle.runtime import open_runner

    net, path = small_checkpoints[8]
    model, _ = import_official(path, 8, 0.5, input_size=64)
    report = convert_module.convert(model, tmp_path / "out", convert_module.ConvertConfig(samples=2))
    assert report.passed and report.tflite["xnnpack"]["partitions"] == 1
    noise, real = model_inputs(model.spec, real_image_paths)
    x = np.concatenate([noise, real])
    want = torch_logits(net, x)
    for name in ("float32.tflite", "float32.onnx"):
        artifact = tmp_path / "out" / name
        assert read_metadata(artifact).preprocessing == ModelSpec.official(8, 0.5, 64).preprocessing
        with open_runner(artifact, threads=1) as runner:
            error = relative_error(runner.infer(x), want)
        assert error <= TOLERANCE, f"{name}: relative error {error:.2e}"


# --------------------------------------------------------------------------------------------
# Reading checkpoints.

def test_bare_and_unprefixed_state_dicts_read_the_same(small_checkpoints, tmp_path):
    net, path = small_checkpoints[3]
    official = read_checkpoint(path)
    bare = read_checkpoint(save_official(net, tmp_path / "bare.pth", wrap=False, prefix=""))
    wrapped_unprefixed = read_checkpoint(save_official(net, tmp_path / "plain.pth", prefix=""))
    bare_prefixed = read_checkpoint(save_official(net, tmp_path / "bp.pth", wrap=False))
    legacy = read_checkpoint(save_official(net, tmp_path / "legacy.pth.tar", legacy=True))
    want = {k: v.numpy() for k, v in net.state_dict().items()}
    for state in (official, bare, wrapped_unprefixed, bare_prefixed, legacy):
        assert state.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(state[key], want[key])


class _Payload:
    """Unpickling this runs code; a weights_only load must refuse it."""

    marker = None

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_is_refused_not_run(small_checkpoints, tmp_path):
    net, _ = small_checkpoints[3]
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = str(marker)
    path = tmp_path / "evil.pth.tar"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {}, "extra": payload}, f)  # legacy-format pickle
    with pytest.raises(InputFileError, match="not a PyTorch checkpoint|refused"):
        read_checkpoint(path)
    zipped = tmp_path / "evil_zip.pth.tar"
    torch.save({"state_dict": net.state_dict(), "extra": payload}, zipped)
    marker.unlink(missing_ok=True)
    with pytest.raises(InputFileError, match="refused"):
        read_checkpoint(zipped)
    assert not marker.exists()


def test_mismatch_lists_missing_unexpected_and_misshaped(small_checkpoints):
    _, path = small_checkpoints[3]
    state = read_checkpoint(path)
    del state["features.3.branch_main_2.1.running_var"]
    state["features.99.extra.weight"] = np.zeros(3, np.float32)
    state["classifier.0.weight"] = np.zeros((10, 7), np.float32)
    model = build_shufflenet(ModelSpec.official(3, 0.5, 64, classes=10))
    with pytest.raises(CheckpointMismatchError) as caught:
        assign_official_weights(model, state)
    message = str(caught.value)
    assert "\n" not in message
    assert "1 missing (features.3.branch_main_2.1.running_var)" in message
    assert "1 unexpected (features.99.extra.weight)" in message
    assert "1 mis-shaped (classifier.0.weight (10, 7) vs (10, 480))" in message


# --------------------------------------------------------------------------------------------
# The command.

def _invoke(*args):
    return CliRunner().invoke(main, ["import", *map(str, args)])


def test_cli_import_writes_a_model_that_matches(small_checkpoints, real_image_paths, tmp_path):
    net, path = small_checkpoints[8]
    out = tmp_path / "imported.keras"
    result = _invoke(path, "--groups", "8", "--scale", "0.5", "--input-size", "64", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "shufflenet_v1_g8_0.5x_official" and data["classes"] == 10
    counters = [k for k in net.state_dict() if k.endswith("num_batches_tracked")]
    assert data["tensors"] == len(net.state_dict()) - len(counters) and data["ignored"] == len(counters)
    model = load_model(out)
    assert model.spec == ModelSpec.official(8, 0.5, 64, classes=10)
    assert_matches_reference(model, net, real_image_paths[:1])


def _assert_one_line_failure(result, *needles):
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_cli_wrong_variant_names_the_right_one(small_checkpoints, tmp_path):
    _, path = small_checkpoints[8]
    out = tmp_path / "m.keras"
    result = _invoke(path, "-g", "3", "-s", "0.5", "--input-size", "64", "-o", out)
    _assert_one_line_failure(result, "does not fit shufflenet_v1_g3_0.5x_official", "mis-shaped",
                             "it fits --groups 8 --scale 0.5")
    assert not out.exists() and not list(tmp_path.iterdir())
    result = _invoke(path, "-g", "8", "-s", "1", "--input-size", "64", "-o", out)
    _assert_one_line_failure(result, "does not fit", "it fits --groups 8 --scale 0.5")


@pytest.mark.parametrize("legacy", [False, True])
def test_cli_truncated_checkpoint(small_checkpoints, tmp_path, legacy):
    net, _ = small_checkpoints[3]
    data = save_official(net, tmp_path / "full.pth.tar", legacy=legacy).read_bytes()
    for fraction in (0.05, 0.5, 0.98):
        cut = tmp_path / f"cut{fraction}.pth.tar"
        cut.write_bytes(data[:int(len(data) * fraction)])
        result = _invoke(cut, "-g", "3", "-s", "0.5", "--input-size", "64", "-o", tmp_path / "m.keras")
        _assert_one_line_failure(result, "truncated or corrupt checkpoint", cut.name)
    assert not (tmp_path / "m.keras").exists()


@pytest.mark.parametrize("kind", ["text", "png", "keras", "tensor", "other_net"])
def test_cli_not_a_checkpoint(kind, tmp_path):
    path = tmp_path / f"input.{kind}"
    if kind == "text":
        path.write_text("this is not a checkpoint\n")
        needle = "not a PyTorch checkpoint"
    elif kind == "png":
        Image.new("RGB", (8, 8)).save(path, format="PNG")
        needle = "not a PyTorch checkpoint"
    elif kind == "keras":  # a zip, but not torch's (a .keras file's layout)
        path = tmp_path / "x.keras"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("metadata.json", "{}")
            archive.writestr("config.json", "{}")
        needle = "not a PyTorch checkpoint"
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
        needle = "not a model checkpoint"
    else:
        torch.save({"state_dict": nn.Linear(3, 2).state_dict()}, path)
        needle = "not a ShuffleNet v1 checkpoint"
    result = _invoke(path, "-g", "3", "-s", "0.5", "-o", tmp_path / "m.keras")
    _assert_one_line_failure(result, needle)
    assert not (tmp_path / "m.keras").exists()


def test_cli_missing_checkpoint(tmp_path):
    result = _invoke(tmp_path / "nope.pth.tar", "-g", "3", "-s", "0.5", "-o", tmp_path / "m.keras")
    _assert_one_line_failure(result, "no checkpoint file", "nope.pth.tar")


def test_torch_stays_out_of_the_board_path():
    """Importing the board-side modules (and the import module itself) loads no torch."""
    code = ("import importlib, sys\n"
            "for name in ['edgeshuffle.runtime', 'edgeshuffle.parity', 'edgeshuffle.data', "
            "'edgeshuffle.metadata', 'edgeshuffle.bench', 'edgeshuffle.cli', 'edgeshuffle.models.official']:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ModuleNotFoundError as e:\n"
            "        if e.name != name: raise\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
