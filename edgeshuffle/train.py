"""Training a ShuffleNet v1 on a class-subfolder image folder, with per-epoch checkpoints and resume.

Recipe (defaults of :class:`TrainConfig`): SGD with Nesterov momentum 0.9,
a linear warm-up then cosine decay to zero (one cycle over the whole run),
decoupled weight decay on convolution and dense kernels only (not on
BatchNorm or biases), label smoothing, and for every image a random crop
from the image padded by 1/8 of its size (4 px at 32x32) and a random
horizontal flip; optionally Cutout (DeVries & Taylor, 2017): a square of
each image set to 0, the dataset's mean colour. Images go through the
model's own preprocessing (:func:`edgeshuffle.data.images.preprocess` with
``spec.preprocessing``) once, when they are loaded into memory;
augmentation works on those arrays. Training runs the network in the graph
form :data:`TRAINING_FORM`: each grouped 1x1 conv as one matrix product with
a block-diagonal kernel (faster than one conv per group, several times
faster than Keras' grouped ``Conv2D``), the channel shuffle folded into the
second one's kernel rows (no op moves activations for it), and each
BatchNorm as two XLA-compiled kernels (forward, backward;
:class:`~edgeshuffle.models.layers.XlaBatchNorm`). The saved model is in the
default form, same weights. The model as a whole is not XLA-compiled
(``jit_compile=False``): on CPU that is several times slower for this
network.

A checkpoint is written after every epoch as a folder ``epoch-NNNN`` in the
checkpoint folder, complete or not at all (written under a temporary name,
then renamed): the model (``model.keras``, with its spec and class names),
the optimizer's variables (step counter, so the LR schedule position, and
momenta) and ``state.json`` (config, epoch, history). :func:`train` with
``resume=True`` continues after the last complete one. Shuffling and
augmentation draw from a generator seeded by (seed, epoch), so a resumed
run sees the same batches as an uninterrupted one.

With ``average_from`` the saved model is not the last epoch's weights but
their average over the last epochs (stochastic weight averaging, Izmailov
et al., 2018): a running mean updated at every epoch's end from that epoch
on, kept in each checkpoint (``average.npz``) so that resume carries it,
and at the end BatchNorm statistics recomputed for the averaged weights
(:func:`recompute_batch_norm`), since the average of the moving statistics
is not the statistics of the averaged network.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edgeshuffle.atomic import ensure_writable_dir
from edgeshuffle.data.folders import ClassFolder, class_folder, load_class_folder
from edgeshuffle.errors import InputFileError, InvalidArgumentError
from edgeshuffle.models.variants import GraphForm, ModelSpec

log = logging.getLogger(__name__)

# TensorFlow 2.21's x86 wheels leave oneDNN's CPU kernels off unless asked; with them on,
# the training step ran about 1.4x faster (benchmarks/bench_train_speed.py, docs/performance.md).
# It is read once, when TensorFlow loads, which every training path here does after this.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# The form the network trains in; the saved model is in the default form, same weights.
TRAINING_FORM = GraphForm(grouped_conv="dense", shuffle="folded", batch_norm="xla")

CHECKPOINT_PREFIX = "epoch-"
KEEP_CHECKPOINTS = 2
AVERAGE_FILE = "average.npz"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train; everything a run needs besides the data and the variant.

    ``learning_rate`` is the peak, reached after ``warmup_epochs`` of linear
    warm-up from a tenth of it; cosine decay to 0 follows. ``cutout``: side in
    pixels of the square Cutout zeroes in every training image (0: none;
    only with ``augment``). ``max_steps_per_epoch``
    caps an epoch (tests, benchmarks); None means one pass over the data.
    ``average_from``: the saved model is the average of the weights at the
    end of this epoch (1-based) and every later one (None: the last epoch's).
    """

    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 0.1
    warmup_epochs: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    augment: bool = True
    cutout: int = 0
    seed: int = 0
    max_steps_per_epoch: int | None = None
    average_from: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, "Epochs must be at least 1.", "epochs"),
            (isinstance(self.batch_size, int) and self.batch_size >= 1, "Batch size must be at least 1.",
             "batch_size"),
            (self.learning_rate > 0, "Learning rate must be positive.", "learning_rate"),
            (0 <= self.warmup_epochs < self.epochs, "Warm-up must be shorter than the run.", "warmup_epochs"),
            (0 <= self.momentum < 1, "Momentum must be in [0, 1).", "momentum"),
            (self.weight_decay >= 0, "Weight decay must not be negative.", "weight_decay"),
            (0 <= self.label_smoothing < 1, "Label smoothing must be in [0, 1).", "label_smoothing"),
            (isinstance(self.cutout, int) and self.cutout >= 0, "Cutout must be 0 or more pixels.", "cutout"),
            (self.augment or self.cutout == 0, "Cutout is augmentation; it needs augment on.", "cutout"),
            (self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
             "Steps per epoch must be at least 1.", "max_steps_per_epoch"),
            (self.average_from is None or (isinstance(self.average_from, int) and
                                           1 <= self.average_from <= self.epochs),
             "Averaging must start at an epoch of the run.", "average_from"),
        ]
        for ok, message, name in checks:
            if not ok:
                raise InvalidArgumentError(f"{message} Received: `{name}={getattr(self, name)}`")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def averages_epoch(self, epoch: int) -> bool:
        """Whether the weights at the end of ``epoch`` (1-based) go into the saved average."""
        return self.average_from is not None and epoch >= self.average_from


@dataclasses.dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1-based
    loss: float  # mean over the epoch's batches
    train_accuracy: float  # mean over the epoch's (augmented) batches
    val_accuracy: float | None  # top-1 on the --val folder, if any
    learning_rate: float  # at the end of the epoch
    seconds: float  # training time of the epoch (without validation)
    images_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    output: Path
    spec: ModelSpec
    config: TrainConfig
    history: tuple[EpochRecord, ...]
    resumed_from: int  # epochs already done when this call started (0: fresh run)
    train_images: int
    val_images: int
    averaged_val_accuracy: float | None = None  # of the saved average, with config.average_from and --val

    @property
    def final_val_accuracy(self) -> float | None:
        """Top-1 on the validation folder of the saved model."""
        if self.config.average_from is not None:
            return self.averaged_val_accuracy
        return self.history[-1].val_accuracy if self.history else None

    def to_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "model": self.spec.name, "spec": self.spec.to_dict(),
                "config": self.config.to_dict(), "resumed_from": self.resumed_from,
                "train_images": self.train_images, "val_images": self.val_images,
                "history": [r.to_dict() for r in self.history],
                "averaged_val_accuracy": self.averaged_val_accuracy,
                "training_seconds": sum(r.seconds for r in self.history)}


class TrainingListener:
    """Hooks for a progress display; the library itself only logs. Override what you need."""

    def loading(self, what: str, done: int, total: int) -> None:
        """Images decoded so far for ``what`` ("train" or "val")."""

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        """Epoch ``epoch`` (1-based) of ``epochs`` begins; it has ``steps`` batches."""

    def step_end(self, step: int, loss: float, accuracy: float) -> None:
        """Batch ``step`` (1-based) is done; running loss and accuracy of the epoch."""

    def epoch_end(self, record: EpochRecord) -> None:
        """The epoch is done, validated and checkpointed."""


# ---------------------------------------------------------------- augmentation


def augment_batch(images: np.ndarray, rng: np.random.Generator, pad: int, cutout: int = 0) -> np.ndarray:
    """Random crop from the image padded by ``pad`` pixels on each side, a random horizontal flip, then Cutout.

    Padding is with zeros of the preprocessed input, i.e. the dataset mean
    colour. Cutout (``cutout`` > 0) zeroes a ``cutout`` x ``cutout`` square
    centred on a uniformly drawn pixel, clipped at the borders (so corners
    and edges get less), as in DeVries & Taylor (2017). Returns a new array;
    ``images`` is left untouched.
    """
    count, height, width, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy = rng.integers(0, 2 * pad + 1, count)
    dx = rng.integers(0, 2 * pad + 1, count)
    flip = rng.random(count) < 0.5
    out = np.empty_like(images)
    for i in range(count):
        crop = padded[i, dy[i]:dy[i] + height, dx[i]:dx[i] + width]
        out[i] = crop[:, ::-1] if flip[i] else crop
    if cutout:
        top = rng.integers(0, height, count) - cutout // 2
        left = rng.integers(0, width, count) - cutout // 2
        rows = np.arange(height)[None, :] - top[:, None]
        cols = np.arange(width)[None, :] - left[:, None]
        inside = ((rows >= 0) & (rows < cutout))[:, :, None] & ((cols >= 0) & (cols < cutout))[:, None, :]
        out[inside] = 0
    return out


def epoch_batches(count: int, batch_size: int, seed: int, epoch: int,
                  max_steps: int | None = None) -> list[np.ndarray]:
    """Index batches of one epoch: a permutation seeded by (seed, epoch), full batches only."""
    order = np.random.default_rng([seed, epoch]).permutation(count)
    size = min(batch_size, count)
    steps = count // size
    if max_steps is not None:
        steps = min(steps, max_steps)
    return [order[i * size:(i + 1) * size] for i in range(steps)]


# ---------------------------------------------------------------- checkpoints


def default_checkpoint_dir(output: Path) -> Path:
    """``models/x.keras`` -> ``models/x.checkpoints``."""
    output = Path(output)
    return output.with_name(output.stem + ".checkpoints")


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint of the highest epoch in ``folder``, if any."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    done = sorted(p for p in folder.glob(f"{CHECKPOINT_PREFIX}*")
                  if p.is_dir() and (p / "state.json").is_file())
    return done[-1] if done else None


def _save_checkpoint(folder: Path, epoch: int, model, optimizer, state: dict[str, Any],
                     average: list[np.ndarray] | None) -> Path:
    target = folder / f"{CHECKPOINT_PREFIX}{epoch:04d}"
    partial = folder / f".{target.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        model.save(partial / "model.keras")
        np.savez(partial / "optimizer.npz", *[np.asarray(v.numpy()) for v in optimizer.variables])
        if average is not None:
            np.savez(partial / AVERAGE_FILE, *average)
        (partial / "state.json").write_text(json.dumps(state, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    for old in sorted(folder.glob(f"{CHECKPOINT_PREFIX}*"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _load_average(checkpoint: Path, model) -> list[np.ndarray]:
    path = checkpoint / AVERAGE_FILE
    if not path.is_file():
        raise InputFileError(f"checkpoint {checkpoint} has no {AVERAGE_FILE}: it was written by a run "
                             "that did not average these epochs")
    with np.load(path) as stored:
        average = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    if [a.shape for a in average] != [tuple(w.shape) for w in model.weights]:
        raise InputFileError(f"the weight average in {path} does not match the model")
    return average


def _restore_optimizer(optimizer, path: Path) -> None:
    with np.load(path) as stored:
        values = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    variables = optimizer.variables
    if len(values) != len(variables) or any(tuple(v.shape) != a.shape for v, a in zip(variables, values)):
        raise InputFileError(f"optimizer state in {path} does not match the model "
                             f"({len(values)} arrays for {len(variables)} variables)")
    for variable, value in zip(variables, values):
        variable.assign(value)


# ---------------------------------------------------------------- training


def _compile(model, config: TrainConfig, steps_per_epoch: int, jit_compile: bool = False):
    import keras

    total = config.epochs * steps_per_epoch
    warmup = round(config.warmup_epochs * steps_per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate * 0.1 if warmup else config.learning_rate,
        decay_steps=max(total - warmup, 1), alpha=0.0,
        warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup)
    optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=config.momentum, nesterov=True,
                                     weight_decay=config.weight_decay or None)
    # BatchNorm scales/offsets and biases are not decayed.
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                            label_smoothing=config.label_smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
                  jit_compile=jit_compile)
    # Built now, not inside the first traced step: a tf.function that creates variables is traced twice,
    # and tracing this network's training step is most of a short run's time.
    optimizer.build(model.trainable_variables)
    return optimizer


def _zero_init_residual_gammas(model) -> None:
    """Start each stride-1 unit as the identity: last BatchNorm scale of its branch set to 0.

    (Goyal et al., 2017, "Accurate, Large Minibatch SGD", section 5.1.) Keeps
    the initial logits small, so the first steps do not blow up.
    """
    adds = {layer.name[:-len("_add")] for layer in model.layers if layer.name.endswith("_add")}
    for prefix in adds:
        layer = model.get_layer(f"{prefix}_bn3")
        gamma, *rest = layer.get_weights()
        layer.set_weights([np.zeros_like(gamma), *rest])


def recompute_batch_norm(model, batches: Iterable[np.ndarray]) -> None:
    """Set every BatchNorm's moving mean and variance to the mean of its batch statistics over ``batches``.

    Runs the model in training mode with each layer's momentum set so that
    the moving statistics are the running mean over the batches seen (for
    equal-size batches: the data's mean, and the mean of the per-batch
    variances); restores the momenta after.
    """
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    try:
        for seen, batch in enumerate(batches):
            for layer in layers:
                layer.momentum = seen / (seen + 1)
            model(batch, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def predict_top1(model, inputs: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Class index of the highest logit per image."""
    predictions = []
    for start in range(0, len(inputs), batch_size):
        logits = model(inputs[start:start + batch_size], training=False)
        predictions.append(np.argmax(np.asarray(logits), axis=-1))
    return np.concatenate(predictions) if predictions else np.zeros((0,), dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class SpeedResult:
    model: str
    batch_size: int
    warmup_steps: int
    steps: int
    seconds: float
    cpu_seconds: float  # CPU time of this process (all threads) over the timed steps
    jit_compile: bool

    @property
    def images_per_second(self) -> float:
        return self.steps * self.batch_size / self.seconds

    @property
    def images_per_cpu_second(self) -> float:
        """Throughput per core-second used: on a loaded machine, the figure the load does not hide."""
        return self.steps * self.batch_size / self.cpu_seconds


def measure_training_speed(spec: ModelSpec, batch_size: int = 128, warmup_steps: int = 5, steps: int = 20,
                           jit_compile: bool = False, seed: int = 0,
                           form: GraphForm = TRAINING_FORM) -> SpeedResult:
    """Steady-state training throughput of :func:`train`'s own step (augmentation included).

    Random inputs (throughput does not depend on pixel values); the first
    ``warmup_steps`` (graph tracing, XLA compilation, allocator warm-up) are
    not timed. ``form``: another graph form to compare with the training form.
    """
    from edgeshuffle.models.shufflenet import build_shufflenet

    config = TrainConfig(epochs=2, batch_size=batch_size, seed=seed)
    rng = np.random.default_rng(seed)
    size = spec.input_size
    inputs = rng.normal(size=(batch_size * 4, size, size, 3)).astype(np.float32)
    labels = np.eye(spec.classes, dtype=np.float32)[rng.integers(0, spec.classes, len(inputs))]
    model = build_shufflenet(spec, form)
    _compile(model, config, steps_per_epoch=100, jit_compile=jit_compile)
    pad = max(1, size // 8)

    def step(i: int) -> None:
        index = np.arange(i % 4 * batch_size, (i % 4 + 1) * batch_size)
        model.train_on_batch(augment_batch(inputs[index], rng, pad), labels[index])

    for i in range(warmup_steps):
        step(i)
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(steps):
        step(i)
    return SpeedResult(spec.name, batch_size, warmup_steps, steps, time.perf_counter() - started,
                       time.process_time() - cpu_started, jit_compile)


def _check_spec(spec: ModelSpec, data: ClassFolder) -> ModelSpec:
    names = data.class_names
    if spec.class_names is not None and tuple(spec.class_names) != names:
        raise InvalidArgumentError(f"The data's classes differ from the model's. "
                                   f"Received: `classes={', '.join(names)}`")
    return dataclasses.replace(spec, classes=len(names), class_names=names)


def _initial_model(path: Path, spec: ModelSpec):
    """The ``init_from`` model, checked to be the variant ``spec`` trained on the same classes."""
    from edgeshuffle.models.io import load_shufflenet

    model = load_shufflenet(path)
    if model.spec.class_names != spec.class_names:
        raise InputFileError(f"{path} was trained on other classes than --data's: "
                             f"{', '.join(model.spec.class_names or ('(none stored)',))}")
    if model.spec != spec:
        stored, asked = model.spec.to_dict(), spec.to_dict()
        differing = sorted(k for k in asked if stored[k] != asked[k])
        raise InputFileError(f"{path} is not the variant asked for: it differs in {', '.join(differing)} "
                             f"(it is a {model.spec.name}; give its variant options)")
    return model


def train(data_dir: Path, output: Path, spec: ModelSpec, config: TrainConfig | None = None, *,
          val_dir: Path | None = None, checkpoint_dir: Path | None = None, resume: bool = False,
          init_from: Path | None = None, listener: TrainingListener | None = None) -> TrainResult:
    """Train ``spec`` on the class-subfolder folder ``data_dir`` and save it to ``output`` (``.keras``).

    Args:
        data_dir: one subfolder of images per class (sorted names = class indices).
        output: the trained model, written atomically at the end.
        spec: the variant; its ``classes`` and ``class_names`` are set from the data.
        config: the recipe; default :class:`TrainConfig`. With ``resume`` it
            must be None or equal to the stored one (the LR schedule depends
            on it), except ``average_from``, which may change while no epoch
            that either value averages is done.
        val_dir: optional labelled folder (same classes) for top-1 accuracy after every epoch.
        checkpoint_dir: default ``output`` with ``.checkpoints`` instead of ``.keras``.
        resume: continue after the last complete checkpoint.
        init_from: a ``.keras`` model of the same variant and classes whose
            weights replace the random initialisation of a new run (a second
            learning-rate cycle, or fine-tuning); the recipe starts from
            epoch 1 with a new optimizer. Unused with ``resume``: the
            checkpoint's weights descend from it, so an interrupted run
            resumes with its own command plus ``--resume``.
        listener: progress hooks.

    Returns:
        A :class:`TrainResult` with the per-epoch history of this run
        (including epochs done before a resume).

    Raises:
        InputFileError: a bad data folder (no class subfolders, an empty
            class, an image that does not decode), a missing or mismatched
            checkpoint, an existing checkpoint without ``resume``, an
            ``init_from`` model of another variant or other classes.
        InvalidArgumentError: a bad config, classes that differ between
            the training and validation folders.
    """
    listener = listener or TrainingListener()
    output = Path(output)
    if output.suffix != ".keras":
        raise InputFileError(f"model files must end in .keras: {output}")
    ensure_writable_dir(output.parent)

    train_folder = class_folder(data_dir)
    val_folder = class_folder(val_dir) if val_dir is not None else None
    if val_folder is not None and val_folder.class_names != train_folder.class_names:
        raise InvalidArgumentError(f"The validation classes differ from the training classes. "
                                   f"Received: `val classes={', '.join(val_folder.class_names)}`")
    spec = _check_spec(spec, train_folder)
    if init_from is not None and not resume:
        initial = _initial_model(Path(init_from), spec)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(output)

    start_epoch, history = 0, []
    checkpoint = latest_checkpoint(checkpoint_dir)
    if resume:
        if checkpoint is None:
            raise InputFileError(f"nothing to resume: no complete checkpoint in {checkpoint_dir}")
        state = json.loads((checkpoint / "state.json").read_text())
        stored = TrainConfig(**state["config"])
        start_epoch = int(state["epoch"])
        if config is not None and config != stored:
            changed = sorted(k for k, v in config.to_dict().items() if stored.to_dict()[k] != v)
            if changed != ["average_from"] or stored.averages_epoch(start_epoch) or config.averages_epoch(start_epoch):
                raise InvalidArgumentError(f"A resumed run keeps its recipe; these differ from the checkpoint's: "
                                           f"{', '.join(changed)}. Received: `resume=True`")
            log.info("averaging the weights from epoch %s on (was: %s)", config.average_from, stored.average_from)
            stored = config
        config = stored
        stored_spec = ModelSpec.from_dict(state["spec"])
        if stored_spec.class_names != spec.class_names:
            raise InputFileError(f"checkpoint {checkpoint} was trained on other classes: "
                                 f"{', '.join(stored_spec.class_names or ())}")
        spec = stored_spec
        history = [EpochRecord(**r) for r in state["history"]]
    else:
        if checkpoint is not None:
            raise InputFileError(f"checkpoints already exist in {checkpoint_dir}; pass --resume to continue "
                                 "that run, or remove them to start over")
        config = config or TrainConfig()
    # Created only once the inputs are checked, so a refused run leaves no empty folder behind.
    ensure_writable_dir(checkpoint_dir)

    # Every image is decoded before any model work, so an unreadable one fails fast.
    x_train, y_train = load_class_folder(train_folder, spec.preprocessing,
                                         lambda d, t: listener.loading("train", d, t))
    if val_folder is not None:
        x_val, y_val = load_class_folder(val_folder, spec.preprocessing,
                                         lambda d, t: listener.loading("val", d, t))
    import keras

    from edgeshuffle.models.io import load_shufflenet, save_model
    from edgeshuffle.models.shufflenet import build_shufflenet, rebuild

    if resume:
        model = load_shufflenet(checkpoint / "model.keras")
        log.info("resuming from %s (epoch %d of %d)%s", checkpoint, start_epoch, config.epochs,
                 "; its weights supersede --init-from" if init_from is not None else "")
    else:
        keras.utils.set_random_seed(config.seed)
        if init_from is not None:
            model = rebuild(initial, TRAINING_FORM)  # the same spec: _initial_model checked it
            log.info("starting from the weights of %s", init_from)
        else:
            model = build_shufflenet(spec, TRAINING_FORM)
            _zero_init_residual_gammas(model)
    steps = len(epoch_batches(len(x_train), config.batch_size, config.seed, 0, config.max_steps_per_epoch))
    if start_epoch < config.epochs:
        optimizer = _compile(model, config, steps)
        if resume:
            _restore_optimizer(optimizer, checkpoint / "optimizer.npz")
    average = _load_average(checkpoint, model) if resume and config.averages_epoch(start_epoch) else None

    pad = max(1, spec.input_size // 8)
    eye = np.eye(spec.classes, dtype=np.float32)
    for epoch in range(start_epoch, config.epochs):
        batches = epoch_batches(len(x_train), config.batch_size, config.seed, epoch, config.max_steps_per_epoch)
        rng = np.random.default_rng([config.seed, epoch, 1])
        listener.epoch_start(epoch + 1, config.epochs, len(batches))
        model.reset_metrics()
        started = time.perf_counter()
        loss_sum = accuracy_sum = 0.0
        for step, index in enumerate(batches, start=1):
            images = x_train[index]
            if config.augment:
                images = augment_batch(images, rng, pad, config.cutout)
            # train_on_batch resets the metrics at every call: its figures are this batch's alone.
            logs = model.train_on_batch(images, eye[y_train[index]], return_dict=True)
            loss_sum += float(logs["loss"])
            accuracy_sum += float(logs["accuracy"])
            listener.step_end(step, loss_sum / step, accuracy_sum / step)
        seconds = time.perf_counter() - started
        loss, train_accuracy = loss_sum / len(batches), accuracy_sum / len(batches)
        if not math.isfinite(loss):
            raise InvalidArgumentError(f"Training diverged (loss {loss}) in epoch {epoch + 1}; "
                                       f"try a lower learning rate. Received: `learning_rate={config.learning_rate}`")
        val_accuracy = None
        if val_folder is not None:
            val_accuracy = float(np.mean(predict_top1(model, x_val) == y_val))
        learning_rate = float(np.asarray(optimizer.learning_rate))
        record = EpochRecord(epoch + 1, loss, train_accuracy, val_accuracy, learning_rate, seconds,
                             len(batches) * len(batches[0]) / seconds)
        history.append(record)
        if config.averages_epoch(epoch + 1):
            weights = model.get_weights()
            count = epoch + 2 - config.average_from  # epochs in the average, this one included
            average = weights if average is None else [a + (w - a) / count for a, w in zip(average, weights)]
        state = {"epoch": epoch + 1, "config": config.to_dict(), "spec": spec.to_dict(),
                 "history": [r.to_dict() for r in history]}
        _save_checkpoint(checkpoint_dir, epoch + 1, model, optimizer, state, average)
        log.info("epoch %d/%d: loss %.4f, train acc %.4f, val acc %s, %.0f images/s", epoch + 1,
                 config.epochs, loss, record.train_accuracy, val_accuracy, record.images_per_second)
        listener.epoch_end(record)

    averaged_val_accuracy = None
    if average is not None:
        model.set_weights(average)
        started = time.perf_counter()
        rng = np.random.default_rng([config.seed, config.epochs, 1])
        batches = epoch_batches(len(x_train), config.batch_size, config.seed, config.epochs,
                                config.max_steps_per_epoch)
        recompute_batch_norm(model, (augment_batch(x_train[i], rng, pad, config.cutout) if config.augment
                                     else x_train[i] for i in batches))
        if val_folder is not None:
            averaged_val_accuracy = float(np.mean(predict_top1(model, x_val) == y_val))
        log.info("averaged the weights of epochs %d-%d, BatchNorm statistics recomputed on %d images in %.0f s; "
                 "val acc %s (last epoch's: %s)", config.average_from, config.epochs,
                 len(batches) * len(batches[0]), time.perf_counter() - started, averaged_val_accuracy,
                 history[-1].val_accuracy)
    # The default form with the trained weights; the saved file carries no optimizer state.
    save_model(rebuild(model, GraphForm()), output)
    return TrainResult(output, spec, config, tuple(history), start_epoch, len(x_train),
                       len(x_val) if val_folder is not None else 0, averaged_val_accuracy)
