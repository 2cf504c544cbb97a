"""Bad input across every verb: one-line error naming the culprit, documented exit code, nothing written.

Exit codes (docs/exit-codes.md): 1 bad input or a failed
step, 2 usage error or a value out of range. Every case runs against a folder
that already holds a previous good set of artifacts, and checks that no file
in the workspace was created, changed or removed.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeshuffle.cli import main
from edgeshuffle.data.images import load_rgb


def _png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(width).integers(0, 255, (height, width, 3), dtype=np.uint8)).save(
        buffer, "PNG")
    return buffer.getvalue()


def bomb_png() -> bytes:
    """A PNG whose header claims 100000x100000 pixels (10 gigapixels) followed by a tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def write_odd_images(folder: Path) -> dict[str, Path]:
    """Images that are valid but unusual (16-bit, CMYK, animated) and ones that are not images at all."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = {}
    paths["16bit"] = folder / "a_16bit.png"
    Image.fromarray(rng.integers(0, 65535, (40, 40), dtype=np.uint16)).save(paths["16bit"])
    paths["cmyk"] = folder / "b_cmyk.jpg"
    Image.new("CMYK", (40, 40), (0, 255, 0, 0)).save(paths["cmyk"])
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 0, 255))]
    paths["gif"] = folder / "c_animated.gif"
    frames[0].save(paths["gif"], save_all=True, append_images=frames[1:])
    paths["apng"] = folder / "d_animated.png"
    frames[0].save(paths["apng"], save_all=True, append_images=frames[1:])
    return paths


def write_bad_images(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    png = _png_bytes(40, 40)
    paths = {"truncated": folder / "truncated.png", "empty": folder / "empty.jpg",
             "bomb": folder / "bomb.png", "text": folder / "text.jpg"}
    paths["truncated"].write_bytes(png[: len(png) // 2])
    paths["empty"].write_bytes(b"")
    paths["bomb"].write_bytes(bomb_png())
    paths["text"].write_text("this is not an image\n")
    return paths


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Tiny artifacts (made once), damaged copies of them, odd images and an output folder with old artifacts."""
    root = tmp_path_factory.mktemp("bad_input")
    good = root / "good"
    result = CliRunner().invoke(main, ["convert", "--stem", "cifar", "-s", "0.25", "-g", "2", "-o", str(good),
                                       "--samples", "2", "--json"])
    assert result.exit_code == 0, result.output
    files = root / "files"
    files.mkdir()
    rng = np.random.default_rng(1)
    names = {}
    for suffix, source in (("keras", "model.keras"), ("tflite", "float32.tflite"), ("onnx", "float32.onnx")):
        data = (good / source).read_bytes()
        for kind, content in (("empty", b""), ("truncated", data[: len(data) // 2]),
                              ("random", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())):
            path = files / f"{kind}.{suffix}"
            path.write_bytes(content)
            names[f"{kind}_{suffix}"] = path
    import torch

    checkpoint = files / "good.pth.tar"
    torch.save({"state_dict": {"module.first_conv.0.weight": torch.zeros(24, 3, 3, 3)}}, checkpoint)
    data = checkpoint.read_bytes()
    for kind, content in (("empty", b""), ("truncated", data[: len(data) // 2]),
                          ("random", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())):
        names[f"{kind}_pth"] = files / f"{kind}.pth.tar"
        names[f"{kind}_pth"].write_bytes(content)

    import keras

    other = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10)])
    other.save(files / "not_shufflenet.keras")
    flat = keras.Sequential([keras.Input((10,)), keras.layers.Dense(10)])
    flat.save(files / "rank2_input.keras")
    for name, model in _not_image_classifiers(keras).items():
        model.save(files / f"{name}.keras")
    keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Lambda(lambda x: x * 2.0),
                      keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]).save(files / "lambda.keras")
    import tensorflow as tf

    (files / "no_metadata.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(other).convert())
    (files / "labels_3.txt").write_text("cat\ndog\nship\n")
    (files / "labels_empty.txt").write_text("\n\n")

    write_bad_images(root / "bad_images")
    odd = write_odd_images(root / "odd_with_bomb")
    (root / "odd_with_bomb" / "z_bomb.png").write_bytes(bomb_png())
    (root / "no_images").mkdir()
    (root / "no_images" / "readme.txt").write_text("no images here\n")
    train_bad = root / "train_bad"
    write_bad_images(train_bad / "cat")
    write_bad_images(train_bad / "dog")
    (root / "a_file.txt").write_text("a regular file\n")

    out = root / "out"
    out.mkdir()
    for name in ("model.keras", "float32.tflite", "float32.onnx", "convert.json"):
        shutil.copy(good / name, out / name)
    paths = {"root": root, "good": good, "out": out, "keras": good / "model.keras",
             "tflite": good / "float32.tflite", "onnx": good / "float32.onnx",
             "other": files / "not_shufflenet.keras", "rank2": files / "rank2_input.keras",
             **{name: files / f"{name}.keras" for name in ("two_inputs", "gray_input", "two_outputs", "lambda")},
             "no_metadata_tflite": files / "no_metadata.tflite", "labels_3": files / "labels_3.txt",
             "labels_empty": files / "labels_empty.txt",
             "bad_images": root / "bad_images", "odd_with_bomb": root / "odd_with_bomb",
             "no_images": root / "no_images", "train_bad": train_bad, "file": root / "a_file.txt",
             "missing": root / "does_not_exist", "odd": odd["16bit"].parent, **names}
    return {k: str(v) for k, v in paths.items() if not isinstance(v, dict)}


def _not_image_classifiers(keras) -> dict:
    """Keras models that are not image classifiers: two inputs, a grayscale input, two outputs."""
    a, b = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    two_inputs = keras.Model([a, b], keras.layers.Dense(10)(pooled))
    gray = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    image = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    two_outputs = keras.Model(image, [keras.layers.Dense(10)(pooled), keras.layers.Dense(2)(pooled)])
    return {"two_inputs": two_inputs, "gray_input": gray, "two_outputs": two_outputs}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def check_refused(args: list[str], code: int, culprit: str, workspace: dict) -> str:
    """Run the CLI; check exit code, a one-line message naming the culprit, no traceback, nothing written."""
    root = Path(workspace["root"])
    before = snapshot(root)
    result = CliRunner().invoke(main, args)
    after = snapshot(root)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"uncaught {result.exception!r}\n{result.output}"
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.output
    prefix = "error: " if code != 2 else ("error: ", "Error: ")
    assert lines[-1].startswith(prefix), result.output
    if code != 2:
        assert sum(line.startswith("error:") for line in lines) == 1, result.output
    message = lines[-1]
    assert culprit in message, f"{culprit!r} not in {message!r}"
    assert after.keys() == before.keys(), f"files created or removed: {set(after) ^ set(before)}"
    changed = [name for name in before if before[name] != after[name]]
    assert not changed, f"files changed: {changed}"
    return message


# (id, args with {placeholders} from the workspace, exit code, culprit: a placeholder or a literal)
CASES = [
    # info
    ("info-missing", ["info", "{missing}"], 1, "{missing}"),
    ("info-folder", ["info", "{good}"], 1, "{good}"),
    ("info-empty-tflite", ["info", "{empty_tflite}"], 1, "{empty_tflite}"),
    ("info-truncated-tflite", ["info", "{truncated_tflite}"], 1, "{truncated_tflite}"),
    ("info-random-tflite", ["info", "{random_tflite}"], 1, "{random_tflite}"),
    ("info-empty-onnx", ["info", "{empty_onnx}"], 1, "{empty_onnx}"),
    ("info-truncated-onnx", ["info", "{truncated_onnx}"], 1, "{truncated_onnx}"),
    ("info-random-onnx", ["info", "{random_onnx}"], 1, "{random_onnx}"),
    ("info-truncated-keras", ["info", "{truncated_keras}"], 1, "{truncated_keras}"),
    ("info-random-keras", ["info", "{random_keras}"], 1, "{random_keras}"),
    ("info-not-shufflenet", ["info", "{other}"], 1, "{other}"),
    ("info-groups-out-of-range", ["info", "--groups", "5"], 2, "'5'"),
    # convert
    ("convert-missing-model", ["convert", "{missing}.keras", "-o", "{out}"], 1, "{missing}.keras"),
    ("convert-folder-as-model", ["convert", "{good}", "-o", "{out}"], 2, "{good}"),
    ("convert-file-as-output", ["convert", "{keras}", "-o", "{file}"], 2, "{file}"),
    ("convert-output-under-file", ["convert", "{keras}", "-o", "{file}/sub"], 1, "{file}"),
    ("convert-empty-keras", ["convert", "{empty_keras}", "-o", "{out}"], 1, "{empty_keras}"),
    ("convert-truncated-keras", ["convert", "{truncated_keras}", "-o", "{out}"], 1, "{truncated_keras}"),
    ("convert-random-keras", ["convert", "{random_keras}", "-o", "{out}"], 1, "{random_keras}"),
    ("convert-rank2-input", ["convert", "{rank2}", "-o", "{out}"], 1, "{rank2}"),
    ("convert-two-inputs", ["convert", "{two_inputs}", "-o", "{out}"], 1, "2 inputs"),
    ("convert-gray-input", ["convert", "{gray_input}", "-o", "{out}"], 1, "NHWC RGB"),
    ("convert-two-outputs", ["convert", "{two_outputs}", "-o", "{out}"], 1, "2 outputs"),
    ("convert-lambda-untrusted", ["convert", "{lambda}", "-o", "{out}"], 1, "--trust-code"),
    ("convert-resize-below-input", ["convert", "{keras}", "-o", "{out}", "--resize", "16"], 2, "resize=16"),
    ("convert-labels-wrong-count", ["convert", "{other}", "-o", "{out}", "--labels", "{labels_3}"], 2, "3 names"),
    ("convert-labels-empty", ["convert", "{other}", "-o", "{out}", "--labels", "{labels_empty}"], 1,
     "{labels_empty}"),
    ("convert-labels-missing", ["convert", "{other}", "-o", "{out}", "--labels", "{missing}"], 1, "{missing}"),
    ("convert-mean-two-values", ["convert", "{other}", "-o", "{out}", "--mean", "1,2"], 2, "mean=1,2"),
    ("convert-mean-text", ["convert", "{other}", "-o", "{out}", "--mean", "a,b,c"], 2, "mean=a,b,c"),
    ("convert-std-zero", ["convert", "{other}", "-o", "{out}", "--std", "0,1,1"], 2, "std=0,1,1"),
    ("convert-missing-images", ["convert", "{keras}", "-o", "{out}", "--images", "{missing}"], 1, "{missing}"),
    ("convert-file-as-images", ["convert", "{keras}", "-o", "{out}", "--images", "{file}"], 2, "{file}"),
    ("convert-bad-images", ["convert", "{keras}", "-o", "{out}", "--images", "{bad_images}"], 1, "{bad_images}"),
    ("convert-input-size", ["convert", "-o", "{out}", "--stem", "cifar", "--input-size", "33"], 2,
     "input_size=33"),
    ("convert-opset", ["convert", "{keras}", "-o", "{out}", "--opset", "12"], 2, "12"),
    ("convert-samples-zero", ["convert", "{keras}", "-o", "{out}", "--samples", "0"], 2, "0"),
    # quantize
    ("quantize-missing-calibration", ["quantize", "{keras}", "-c", "{missing}", "-o", "{out}"], 1, "{missing}"),
    ("quantize-file-as-calibration", ["quantize", "{keras}", "-c", "{file}", "-o", "{out}"], 1, "{file}"),
    ("quantize-no-images", ["quantize", "{keras}", "-c", "{no_images}", "-o", "{out}"], 1, "{no_images}"),
    ("quantize-only-bad-images", ["quantize", "{keras}", "-c", "{bad_images}", "-o", "{out}"], 1, "{bad_images}"),
    ("quantize-strict-bomb", ["quantize", "{keras}", "-c", "{odd_with_bomb}", "-o", "{out}", "--strict"], 1,
     "z_bomb.png"),
    ("quantize-empty-keras", ["quantize", "{empty_keras}", "-c", "{odd}", "-o", "{out}"], 1, "{empty_keras}"),
    ("quantize-random-keras", ["quantize", "{random_keras}", "-c", "{odd}", "-o", "{out}"], 1, "{random_keras}"),
    ("quantize-two-outputs", ["quantize", "{two_outputs}", "-c", "{odd}", "-o", "{out}"], 1, "2 outputs"),
    ("quantize-lambda-untrusted", ["quantize", "{lambda}", "-c", "{odd}", "-o", "{out}"], 1, "--trust-code"),
    ("quantize-labels-wrong-count", ["quantize", "{keras}", "-c", "{odd}", "-o", "{out}", "--labels",
                                     "{labels_3}"], 2, "3 names"),
    ("quantize-resize-below-input", ["quantize", "{keras}", "-c", "{odd}", "-o", "{out}", "--resize", "8"], 2,
     "resize=8"),
    ("quantize-output-under-file", ["quantize", "{keras}", "-c", "{odd}", "-o", "{file}/sub"], 1, "{file}"),
    ("quantize-eval-missing", ["quantize", "{keras}", "-c", "{odd}", "--num-calibration", "2", "-o", "{out}",
                               "--eval", "{missing}"], 1, "{missing}"),
    ("quantize-eval-no-images", ["quantize", "{keras}", "-c", "{odd}", "--num-calibration", "2", "-o", "{out}",
                                 "--eval", "{no_images}"], 1, "{no_images}"),
    ("quantize-num-calibration-zero", ["quantize", "{keras}", "-c", "{odd}", "-o", "{out}",
                                       "--num-calibration", "0"], 2, "0"),
    ("quantize-max-drop", ["quantize", "{keras}", "-c", "{odd}", "-o", "{out}", "--max-drop", "101"], 2, "101"),
    # parity
    ("parity-missing-images", ["parity", "{tflite}", "--images", "{missing}"], 1, "{missing}"),
    ("parity-file-as-images", ["parity", "{tflite}", "--images", "{file}"], 1, "{file}"),
    ("parity-strict-bad-images", ["parity", "{tflite}", "--images", "{bad_images}", "--strict"], 1,
     "{bad_images}/"),
    ("parity-only-bad-images", ["parity", "{tflite}", "--images", "{bad_images}"], 1, "{bad_images}"),
    ("parity-random-tflite", ["parity", "{random_tflite}", "--images", "{odd}"], 1, "{random_tflite}"),
    ("parity-truncated-onnx", ["parity", "{truncated_onnx}", "--images", "{odd}"], 1, "{truncated_onnx}"),
    ("parity-missing-model", ["parity", "{missing}.tflite", "--images", "{odd}"], 1, "{missing}.tflite"),
    ("parity-no-metadata", ["parity", "{no_metadata_tflite}", "--images", "{odd}"], 1, "{no_metadata_tflite}"),
    ("parity-no-metadata-resize-below-input", ["parity", "{no_metadata_tflite}", "--images", "{odd}",
                                               "--preprocess", "tf", "--resize", "16"], 2, "resize=16"),
    ("parity-no-metadata-labels-wrong-count", ["parity", "{no_metadata_tflite}", "--images", "{odd}",
                                               "--preprocess", "tf", "--labels", "{labels_3}"], 2, "3 names"),
    ("parity-std-zero", ["parity", "{no_metadata_tflite}", "--images", "{odd}", "--std", "0,1,1"], 2,
     "std=0,1,1"),
    ("parity-json-under-file", ["parity", "{tflite}", "--images", "{odd}", "--json", "{file}/r.json"], 1,
     "{file}"),
    # bench
    ("bench-missing", ["bench", "{missing}.onnx"], 1, "{missing}.onnx"),
    ("bench-folder", ["bench", "{good}"], 1, "{good}"),
    ("bench-random-tflite", ["bench", "{random_tflite}", "--runs", "1", "--warmup", "0"], 1, "{random_tflite}"),
    ("bench-empty-onnx", ["bench", "{empty_onnx}", "--runs", "1", "--warmup", "0"], 1, "{empty_onnx}"),
    ("bench-threads-zero", ["bench", "{tflite}", "--threads", "0"], 2, "threads"),
    ("bench-threads-text", ["bench", "{tflite}", "--threads", "abc"], 2, "threads=abc"),
    ("bench-runs-zero", ["bench", "{tflite}", "--runs", "0"], 2, "runs=0"),
    ("bench-inputs-bad-images", ["bench", "{tflite}", "--inputs", "{bad_images}", "--runs", "1"], 1,
     "{bad_images}"),
    ("bench-inputs-no-metadata", ["bench", "{no_metadata_tflite}", "--inputs", "{odd}", "--runs", "1"], 1,
     "{no_metadata_tflite}"),
    ("bench-inputs-resize-below-input", ["bench", "{no_metadata_tflite}", "--inputs", "{odd}", "--runs", "1",
                                         "--mean", "0,0,0", "--resize", "16"], 2, "resize=16"),
    ("bench-json-under-file", ["bench", "{tflite}", "--runs", "1", "--json", "{file}/r.json"], 1, "{file}"),
    # train
    ("train-missing-data", ["train", "--data", "{missing}", "-o", "{out}/t.keras"], 1, "{missing}"),
    ("train-file-as-data", ["train", "--data", "{file}", "-o", "{out}/t.keras"], 1, "{file}"),
    ("train-bad-images", ["train", "--data", "{train_bad}", "-o", "{out}/t.keras", "--stem", "cifar"], 1,
     "{train_bad}"),
    ("train-folder-as-output", ["train", "--data", "{train_bad}", "-o", "{out}"], 2, "{out}"),
    ("train-epochs-zero", ["train", "--data", "{train_bad}", "-o", "{out}/t.keras", "--epochs", "0"], 2, "0"),
    # import
    ("import-missing", ["import", "{missing}.pth.tar", "-g", "3", "-s", "0.5", "-o", "{out}/i.keras"], 1,
     "{missing}.pth.tar"),
    ("import-folder", ["import", "{good}", "-g", "3", "-s", "0.5", "-o", "{out}/i.keras"], 2, "{good}"),
    ("import-empty", ["import", "{empty_pth}", "-g", "3", "-s", "0.5", "-o", "{out}/i.keras"], 1, "{empty_pth}"),
    ("import-truncated", ["import", "{truncated_pth}", "-g", "3", "-s", "0.5", "-o", "{out}/i.keras"], 1,
     "{truncated_pth}"),
    ("import-random", ["import", "{random_pth}", "-g", "3", "-s", "0.5", "-o", "{out}/i.keras"], 1,
     "{random_pth}"),
    ("import-wrong-suffix", ["import", "{random_pth}", "-g", "3", "-s", "0.5", "-o", "{out}/i.txt"], 1, "i.txt"),
    ("import-groups", ["import", "{random_pth}", "-g", "5", "-s", "0.5", "-o", "{out}/i.keras"], 2, "'5'"),
]


@pytest.mark.parametrize("args,code,culprit", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line(workspace, args, code, culprit):
    check_refused([a.format(**workspace) for a in args], code, culprit.format(**workspace), workspace)


def test_unusual_images_decode_as_rgb(workspace):
    """16-bit, CMYK and animated files are images: they load as 8-bit RGB (first frame), not refused."""
    folder = Path(workspace["odd"])
    sixteen = load_rgb(folder / "a_16bit.png")
    raw = np.asarray(Image.open(folder / "a_16bit.png"), dtype=np.float64)
    assert sixteen.mode == "RGB" and sixteen.size == (40, 40)
    assert np.abs(np.asarray(sixteen)[..., 0] - raw / 257).max() <= 1
    cmyk = np.asarray(load_rgb(folder / "b_cmyk.jpg"), dtype=int)
    assert np.abs(cmyk[20, 20] - [255, 0, 255]).max() <= 8  # C=0 M=255 Y=0 K=0 is magenta
    for name in ("c_animated.gif", "d_animated.png"):
        first = np.asarray(load_rgb(folder / name), dtype=int)
        assert np.abs(first[20, 20] - [255, 0, 0]).max() <= 8, name


def test_decompression_bomb_is_an_input_error(tmp_path):
    from edgeshuffle.errors import InputFileError

    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    with pytest.raises(InputFileError, match="bomb.png"):
        load_rgb(path)


def test_read_only_output_folder(workspace, tmp_path):
    """chmod 0o555: refused before any work (as root, where chmod does not stop writes, the check is skipped)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "float32.tflite").write_bytes(b"old artifact")
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes (see the full-disk test)")
        result = CliRunner().invoke(main, ["convert", workspace["keras"], "-o", str(folder)])
        assert result.exit_code == 1 and "not writable" in result.stderr and str(folder) in result.stderr
        assert (folder / "float32.tflite").read_bytes() == b"old artifact"
    finally:
        folder.chmod(0o755)


def test_full_disk_keeps_the_old_artifact(workspace, tmp_path, monkeypatch):
    """ENOSPC while an artifact is renamed into place: one-line error, exit 1, old file intact, no temp file."""
    import edgeshuffle.atomic

    out = tmp_path / "out"
    shutil.copytree(workspace["out"], out)
    before = snapshot(out)
    real_replace = os.replace

    def full_disk(source, target, *args, **kwargs):
        if ".partial" in str(source):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(source))
        return real_replace(source, target, *args, **kwargs)

    monkeypatch.setattr(edgeshuffle.atomic.os, "replace", full_disk)
    result = CliRunner().invoke(main, ["convert", workspace["keras"], "-o", str(out)])
    monkeypatch.undo()
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "model.keras" in lines[-1] and "No space left" in lines[-1]
    assert "Traceback" not in result.output
    assert snapshot(out) == before
