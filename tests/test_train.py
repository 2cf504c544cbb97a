"""edgeshuffle train: tiny runs on generated images, checkpoints, resume, and refusal of bad data folders."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeshuffle.cli import main
from edgeshuffle.data.folders import class_folder, load_class_folder
from edgeshuffle.errors import InputFileError, InvalidArgumentError
from edgeshuffle.preprocessing import Preprocessing
from edgeshuffle.models.variants import ModelSpec
from edgeshuffle.train import (TrainConfig, TrainingListener, augment_batch, epoch_batches, latest_checkpoint,
                               predict_top1, recompute_batch_norm, train)

CLASSES = ("cat", "dog", "ship")
SPEC = ModelSpec(groups=3, scale=0.25, input_size=32, classes=3, stem="cifar")
# 2 epochs of 2 steps of 8 images.
CONFIG = TrainConfig(epochs=2, batch_size=8, learning_rate=0.05, warmup_epochs=0.0, max_steps_per_epoch=2)
# 3 epochs, the saved model the average of epochs 2 and 3.
AVERAGED = dataclasses.replace(CONFIG, epochs=3, average_from=2)
CLI_ARGS = ["-g", "3", "-s", "0.25", "--stem", "cifar", "--epochs", "2", "--batch-size", "8", "--lr", "0.05",
            "--warmup-epochs", "0", "--steps-per-epoch", "2"]


def make_folder(root: Path, classes=CLASSES, per_class: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            pixels[..., index % 3] = 255  # a learnable colour cue per class
            Image.fromarray(pixels).save(root / name / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("data") / "train")


# ---------------------------------------------------------------- folders (no TensorFlow)


def test_class_folder_lists_classes_in_sorted_order(tmp_path):
    root = make_folder(tmp_path / "d", classes=("zebra", "ant"), per_class=2)
    folder = class_folder(root)
    assert folder.class_names == ("ant", "zebra")
    assert folder.labels == (0, 0, 1, 1)
    assert [p.parent.name for p in folder.paths] == ["ant", "ant", "zebra", "zebra"]


def test_load_class_folder_uses_the_spec_preprocessing(tmp_path):
    root = make_folder(tmp_path / "d", per_class=1)
    inputs, labels = load_class_folder(class_folder(root), Preprocessing.cifar(32))
    raw = np.asarray(Image.open(root / "dog" / "00.png").convert("RGB"), dtype=np.float64)
    expected = (raw - np.array([125.31, 122.95, 113.87])) / np.array([62.99, 62.09, 66.70])  # CIFAR-10 mean/std
    np.testing.assert_allclose(inputs[1], expected, atol=1e-5)
    assert labels.tolist() == [0, 1, 2]


def test_augment_batch_is_a_padded_crop_or_its_mirror():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(16, 8, 8, 3)).astype(np.float32)
    out = augment_batch(images, np.random.default_rng(2), pad=2)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    flips = 0
    for i in range(len(images)):
        windows = [padded[i, y:y + 8, x:x + 8] for y in range(5) for x in range(5)]
        plain = any(np.array_equal(out[i], w) for w in windows)
        mirrored = any(np.array_equal(out[i], w[:, ::-1]) for w in windows)
        assert plain or mirrored
        flips += mirrored and not plain
    assert 0 < flips < len(images)  # both kinds occur


def test_cutout_zeroes_one_clipped_square_per_image_and_leaves_the_rest():
    images = np.random.default_rng(1).uniform(1, 2, size=(64, 12, 12, 3)).astype(np.float32)
    plain = augment_batch(images, np.random.default_rng(2), pad=0)
    out = augment_batch(images, np.random.default_rng(2), pad=0, cutout=6)  # same crops and flips, then Cutout
    zero = out == 0
    assert np.array_equal(zero.all(axis=-1), zero.any(axis=-1))  # all channels of a pixel, or none
    np.testing.assert_array_equal(out[~zero], plain[~zero])
    sides = set()
    for mask in zero[..., 0]:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        assert mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all() and mask.sum() == len(rows) * len(cols)
        assert 3 <= len(rows) <= 6 and 3 <= len(cols) <= 6  # a 6x6 square centred in the image, clipped
        sides.update((len(rows), len(cols)))
    assert {3, 6} <= sides  # clipped at a border and whole both occur
    assert len({tuple(np.argwhere(m)[0]) for m in zero[..., 0]}) > 10  # at varying places


def test_epoch_batches_are_a_seeded_permutation():
    first = epoch_batches(20, 8, seed=0, epoch=3)
    assert [len(b) for b in first] == [8, 8]  # full batches only
    assert len(set(np.concatenate(first).tolist())) == 16
    assert all(np.array_equal(a, b) for a, b in zip(first, epoch_batches(20, 8, seed=0, epoch=3)))
    assert not np.array_equal(first[0], epoch_batches(20, 8, seed=0, epoch=4)[0])


# ---------------------------------------------------------------- bad data folders, through the CLI


def _run(args):
    return CliRunner().invoke(main, ["train", *args], catch_exceptions=False)


def _assert_refused(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_refuses_a_folder_without_class_subfolders(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "flat" / "a.png")
    result = _run(["--data", str(tmp_path / "flat"), "--output", str(tmp_path / "m.keras")])
    _assert_refused(result, "no class subfolders", "flat")


def test_refuses_an_empty_class(tmp_path):
    root = make_folder(tmp_path / "d", per_class=2)
    (root / "horse").mkdir()
    (root / "horse" / "notes.txt").write_text("not an image")
    result = _run(["--data", str(root), "--output", str(tmp_path / "m.keras")])
    _assert_refused(result, "class 'horse' has no images")


def test_refuses_an_unreadable_image(tmp_path):
    root = make_folder(tmp_path / "d", per_class=2)
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    result = _run(["--data", str(root), "--output", str(tmp_path / "m.keras"), "--stem", "cifar"])
    _assert_refused(result, "cannot read image", "broken.jpg")
    assert not (tmp_path / "m.keras").exists()


def test_refuses_images_outside_class_subfolders(tmp_path):
    root = make_folder(tmp_path / "d", per_class=2)
    Image.new("RGB", (32, 32)).save(root / "stray.png")
    _assert_refused(_run(["--data", str(root), "--output", str(tmp_path / "m.keras")]), "stray.png")


def test_refuses_a_missing_folder_and_a_resume_without_checkpoint(tmp_path, data):
    _assert_refused(_run(["--data", str(tmp_path / "nope"), "--output", str(tmp_path / "m.keras")]), "nope")
    result = _run(["--data", str(data), "--output", str(tmp_path / "m.keras"), "--resume"])
    _assert_refused(result, "nothing to resume")
    assert not (tmp_path / "m.checkpoints").exists()  # a refused run leaves no empty folder behind


def test_refuses_classes_that_disagree_with_the_folder(tmp_path, data):
    result = _run(["--data", str(data), "--output", str(tmp_path / "m.keras"), "--classes", "10"])
    assert result.exit_code == 2 and "classes=10" in result.output


def test_config_is_validated():
    with pytest.raises(InvalidArgumentError, match="warmup_epochs"):
        TrainConfig(epochs=2, warmup_epochs=2)
    for epoch in (0, 3):
        with pytest.raises(InvalidArgumentError, match="average_from"):
            TrainConfig(epochs=2, warmup_epochs=0, average_from=epoch)


# ---------------------------------------------------------------- training and resume


class StopAfter(TrainingListener):
    """Simulates an interruption right after an epoch's checkpoint is written."""

    def __init__(self, epoch: int):
        self.stop_epoch, self.started = epoch, []

    def epoch_start(self, epoch, epochs, steps):
        self.started.append(epoch)

    def epoch_end(self, record):
        if record.epoch == self.stop_epoch:
            raise KeyboardInterrupt


def _weights(path: Path) -> list[np.ndarray]:
    from edgeshuffle.models.io import load_model

    return load_model(path).get_weights()


def _optimizer_steps(checkpoint: Path) -> int:
    with np.load(checkpoint / "optimizer.npz") as stored:
        return int(stored["arr_0"])  # the optimizer's iteration counter comes first


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data):
    """The reference run, through the CLI: CONFIG's recipe, uninterrupted."""
    out = tmp_path_factory.mktemp("full")
    result = _run(CLI_ARGS + ["--data", str(data), "--output", str(out / "model.keras"), "--val", str(data),
                              "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.output)


def test_train_writes_model_with_class_names_and_checkpoints(uninterrupted):
    from edgeshuffle.models.io import load_model

    out, result = uninterrupted
    model = load_model(out / "model.keras")
    assert model.spec.class_names == CLASSES  # from the folder names, stored in the .keras file
    assert model.spec.classes == 3 and model.output_shape == (None, 3)
    with zipfile.ZipFile(out / "model.keras") as archive, archive.open("model.weights.h5") as weights:
        assert "optimizer" not in h5py.File(weights, "r")  # the shipped file carries no optimizer state
    checkpoints = sorted(p.name for p in (out / "model.checkpoints").iterdir())
    assert checkpoints == ["epoch-0001", "epoch-0002"]
    assert _optimizer_steps(out / "model.checkpoints" / "epoch-0002") == 4  # 2 epochs x 2 steps
    assert [r["epoch"] for r in result["history"]] == [1, 2]
    assert all(np.isfinite(r["loss"]) and 0 <= r["val_accuracy"] <= 1 for r in result["history"])
    assert result["spec"]["class_names"] == list(CLASSES) and result["config"] == CONFIG.to_dict()
    state = json.loads((out / "model.checkpoints" / "epoch-0002" / "state.json").read_text())
    assert state["epoch"] == 2 and state["config"]["batch_size"] == 8


def test_resume_continues_from_the_saved_epoch(tmp_path, data, uninterrupted):
    full_dir, _ = uninterrupted
    output = tmp_path / "model.keras"
    stopper = StopAfter(epoch=1)
    with pytest.raises(KeyboardInterrupt):
        train(data, output, SPEC, CONFIG, listener=stopper)
    assert not output.exists()
    assert latest_checkpoint(tmp_path / "model.checkpoints").name == "epoch-0001"

    with pytest.raises(InputFileError, match="--resume"):
        train(data, output, SPEC, CONFIG)  # a fresh run must not overwrite the checkpoints
    with pytest.raises(InvalidArgumentError, match="epochs"):
        train(data, output, SPEC, TrainConfig(**{**CONFIG.to_dict(), "epochs": 3}), resume=True)

    listener = StopAfter(epoch=0)
    result = train(data, output, SPEC, None, resume=True, listener=listener)
    assert listener.started == [2]  # epoch 1 was not run again
    assert result.resumed_from == 1 and [r.epoch for r in result.history] == [1, 2]
    assert _optimizer_steps(tmp_path / "model.checkpoints" / "epoch-0002") == 4  # schedule position carried on
    # Same weights as the uninterrupted run: model, optimizer state and data order all resumed.
    for resumed, reference in zip(_weights(output), _weights(full_dir / "model.keras")):
        np.testing.assert_allclose(resumed, reference, rtol=1e-4, atol=1e-5)


def test_cli_resume_of_a_finished_run_and_changed_recipe(uninterrupted, data):
    out, _ = uninterrupted
    args = ["--data", str(data), "--output", str(out / "model.keras"), "--resume"]
    before = _weights(out / "model.keras")
    result = _run(args)  # nothing left to train: rewrites the final model from the last checkpoint
    assert result.exit_code == 0 and f"wrote {out / 'model.keras'}" in result.output and "cat, dog, ship" in result.output
    for a, b in zip(before, _weights(out / "model.keras")):
        np.testing.assert_array_equal(a, b)
    for changed in (["--epochs", "5"], ["--cutout", "8"]):
        result = _run(args + changed)
        assert result.exit_code == 2 and changed[0][2:] in result.output
    assert _run(args + ["--cutout", "0"]).exit_code == 0  # the value it was trained with
    # A run started with --init-from resumes with its own command plus --resume: the file is not read again.
    result = _run(args + ["--init-from", str(out / "gone.keras")])
    assert result.exit_code == 0, result.output
    for a, b in zip(before, _weights(out / "model.keras")):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("setting,expected", [(None, "True"), ("0", "False")])
def test_training_turns_on_onednn_unless_told_not_to(setting, expected):
    """TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it loads: it must load after edgeshuffle.train."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    script = ("import edgeshuffle.cli, edgeshuffle.train, tensorflow\n"
              "from tensorflow.python.util import _pywrap_util_port\n"
              "print(_pywrap_util_port.IsMklEnabled())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


def test_bad_folders_are_refused_without_tensorflow(tmp_path):
    """Folder checks and image decoding are in edgeshuffle.data (board-safe): no TensorFlow import."""
    import subprocess
    import sys

    (tmp_path / "flat").mkdir()
    script = (
        "import sys\n"
        "class Blocker:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras'):\n"
        "            raise ImportError(name + ' is blocked')\n"
        "sys.meta_path.insert(0, Blocker())\n"
        "import edgeshuffle.data.folders\n"
        "from edgeshuffle.cli import main\n"
        f"main(['train', '--data', {str(tmp_path / 'flat')!r}, '--output', {str(tmp_path / 'm.keras')!r}])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [f"error: no class subfolders in {tmp_path / 'flat'} "
                                                "(expected one subfolder of images per class)"]


def test_init_from_starts_a_new_run_from_the_given_weights(tmp_path, data, uninterrupted):
    from edgeshuffle.models.io import load_model

    initial = uninterrupted[0] / "model.keras"
    # One step at a vanishing learning rate: the trainable weights stay where the run started.
    args = ["-g", "3", "-s", "0.25", "--stem", "cifar", "--epochs", "1", "--batch-size", "8", "--lr", "1e-12",
            "--weight-decay", "0", "--steps-per-epoch", "1", "--data", str(data)]
    for name, start in (("second", ["--init-from", str(initial)]), ("fresh", [])):
        result = _run(args + ["--output", str(tmp_path / f"{name}.keras"), "--json"] + start)
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["history"][0]["epoch"] == 1  # a new run, not a resumed one
    reference = load_model(initial)
    second, fresh = (load_model(tmp_path / f"{name}.keras") for name in ("second", "fresh"))
    for expected, got, random_start in zip(reference.trainable_weights, second.trainable_weights,
                                           fresh.trainable_weights):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0, atol=1e-6, err_msg=got.path)
    assert not all(np.allclose(a.numpy(), b.numpy(), atol=1e-3)
                   for a, b in zip(reference.trainable_weights, fresh.trainable_weights))


def test_init_from_refuses_another_variant_and_other_classes(tmp_path, data, uninterrupted):
    initial = uninterrupted[0] / "model.keras"
    one_step = TrainConfig(epochs=1, batch_size=8, warmup_epochs=0.0, max_steps_per_epoch=1)
    with pytest.raises(InputFileError, match="differs in scale"):
        train(data, tmp_path / "m.keras", ModelSpec(groups=3, scale=0.5, input_size=32, classes=3, stem="cifar"),
              one_step, init_from=initial)
    others = make_folder(tmp_path / "others", classes=("ant", "bee", "fly"))
    with pytest.raises(InputFileError, match="other classes.*cat, dog, ship"):
        train(others, tmp_path / "m.keras", SPEC, one_step, init_from=initial)
    assert not (tmp_path / "m.keras").exists() and not (tmp_path / "m.checkpoints").exists()


# ---------------------------------------------------------------- weight averaging


@pytest.mark.parametrize("layer_class", ["keras", "xla"])
def test_recompute_batch_norm_sets_the_mean_of_the_batch_statistics(layer_class):
    import keras

    from edgeshuffle.models.layers import XlaBatchNorm

    layer = (keras.layers.BatchNormalization if layer_class == "keras" else XlaBatchNorm)(momentum=0.9)
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, layer(inputs))
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, scale, (8, 4, 4, 3)).astype(np.float32) for loc, scale in ((0, 1), (1, 2), (5, 3))]
    recompute_batch_norm(model, iter(batches))
    np.testing.assert_allclose(layer.moving_mean.numpy(), np.concatenate(batches).mean(axis=(0, 1, 2)),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(),
                               np.mean([b.var(axis=(0, 1, 2)) for b in batches], axis=0), rtol=1e-4)
    assert layer.momentum == 0.9


@pytest.fixture(scope="module")
def averaged(tmp_path_factory, data):
    """The reference averaged run (AVERAGED), uninterrupted."""
    out = tmp_path_factory.mktemp("averaged")
    return out, train(data, out / "model.keras", SPEC, AVERAGED, val_dir=data)


def test_average_from_saves_the_mean_of_the_averaged_epochs(averaged, data):
    from edgeshuffle.models.io import load_model
    from edgeshuffle.models.shufflenet import rebuild
    from edgeshuffle.models.variants import GraphForm

    out, result = averaged
    saved = load_model(out / "model.keras")
    # The two checkpoints kept are those of epochs 2 and 3, the averaged ones.
    ends = [rebuild(load_model(out / "model.checkpoints" / f"epoch-000{e}" / "model.keras"), GraphForm())
            for e in (2, 3)]
    for got, second, third in zip(saved.trainable_weights, *(m.trainable_weights for m in ends)):
        np.testing.assert_allclose(got.numpy(), (second.numpy() + third.numpy()) / 2, rtol=1e-5, atol=1e-6,
                                   err_msg=got.path)
    assert not all(np.allclose(a.numpy(), b.numpy()) for a, b in zip(saved.trainable_weights,
                                                                      ends[1].trainable_weights))
    # BatchNorm statistics are recomputed, not averaged.
    moving = [(w, a, b) for w, a, b in zip(saved.weights, ends[0].weights, ends[1].weights) if "moving_mean" in w.path]
    assert moving and not all(np.allclose(w.numpy(), (a.numpy() + b.numpy()) / 2) for w, a, b in moving)
    # The accuracy reported is the saved model's.
    inputs, labels = load_class_folder(class_folder(data), saved.spec.preprocessing)
    assert result.final_val_accuracy == pytest.approx(np.mean(predict_top1(saved, inputs) == labels))


def test_averaging_may_be_added_on_resume_and_a_resume_carries_the_average(tmp_path, data, averaged):
    output = tmp_path / "model.keras"
    with pytest.raises(KeyboardInterrupt):
        train(data, output, SPEC, dataclasses.replace(AVERAGED, average_from=None), listener=StopAfter(epoch=1))
    args = CLI_ARGS + ["--epochs", "3", "--data", str(data), "--output", str(output), "--resume"]
    result = _run(args + ["--average-from", "1"])  # epoch 1 is done without its weights kept
    assert result.exit_code == 2 and "average_from" in result.output, result.output
    with pytest.raises(KeyboardInterrupt):  # averaging added; interrupted once the average has begun
        train(data, output, SPEC, AVERAGED, resume=True, listener=StopAfter(epoch=2))
    result = _run(args)  # the checkpoint's recipe now averages from epoch 2
    assert result.exit_code == 0, result.output
    assert "averaged over epochs 2-3" in result.output
    for resumed, reference in zip(_weights(output), _weights(averaged[0] / "model.keras")):
        np.testing.assert_allclose(resumed, reference, rtol=1e-4, atol=1e-5)
