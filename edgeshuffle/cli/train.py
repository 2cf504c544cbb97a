"""`edgeshuffle train`: train a ShuffleNet v1 on a class-subfolder image folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeshuffle.cli.common import reports_errors, spec_from_options, variant_options


def _progress_listener(progress):
    from edgeshuffle.train import TrainingListener

    class RichListener(TrainingListener):
        def __init__(self):
            self.load_tasks: dict[str, int] = {}
            self.task = None

        def loading(self, what, done, total):
            if what not in self.load_tasks:
                self.load_tasks[what] = progress.add_task(f"loading {what} images", total=total, stats="")
            progress.update(self.load_tasks[what], completed=done)

        def epoch_start(self, epoch, epochs, steps):
            self.task = progress.add_task(f"epoch {epoch}/{epochs}", total=steps, stats="")

        def step_end(self, step, loss, accuracy):
            progress.update(self.task, completed=step, stats=f"loss {loss:.3f} acc {accuracy:.3f}")

        def epoch_end(self, record):
            val = f" val {record.val_accuracy:.4f}" if record.val_accuracy is not None else ""
            progress.update(self.task, stats=f"loss {record.loss:.3f} acc {record.train_accuracy:.3f}{val} "
                                             f"{record.images_per_second:.0f} img/s")

    return RichListener()


@click.command()
@click.option("--data", "data_dir", type=click.Path(path_type=Path), required=True,
              help="Training images: one subfolder per class (sorted names give the class indices).")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The trained model, NAME.keras (written at the end, atomically).")
@variant_options
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs [default: 30].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Batch size [default: 128].")
@click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Peak learning rate of the one-cycle schedule [default: 0.1].")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=None, help="[default: 5e-4]")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="[default: 0.1]")
@click.option("--warmup-epochs", type=click.FloatRange(min=0), default=None, help="[default: 1]")
@click.option("--seed", type=int, default=None, help="Seed of initialisation, shuffling, augmentation [default: 0].")
@click.option("--no-augment", is_flag=True, default=None, help="Train without random crops and flips.")
@click.option("--cutout", type=click.IntRange(min=0), default=None, metavar="PIXELS",
              help="Also zero a random PIXELS x PIXELS square of every training image (Cutout; "
              "8 or 16 at 32x32) [default: 0, off].")
@click.option("--average-from", type=click.IntRange(min=1), default=None, metavar="EPOCH",
              help="Save the average of the weights at the end of epoch EPOCH and every later one, with "
              "BatchNorm statistics recomputed on the training images (stochastic weight averaging), "
              "instead of the last epoch's weights. May be added or changed with --resume while no epoch "
              "it averages is done [default: off].")
@click.option("--steps-per-epoch", type=click.IntRange(min=1), default=None,
              help="Cap the batches per epoch (smoke runs; default: one pass over the data).")
@click.option("--val", "val_dir", type=click.Path(path_type=Path),
              help="Labelled images with the same classes: top-1 accuracy after every epoch.")
@click.option("--checkpoint-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Per-epoch checkpoints [default: OUTPUT with .checkpoints instead of .keras].")
@click.option("--resume", is_flag=True, help="Continue after the last checkpoint, with its variant and recipe "
              "(recipe options may be left out; given ones must match).")
@click.option("--init-from", type=click.Path(path_type=Path, dir_okay=False),
              help="Start from this .keras model's weights (same variant options and classes) instead of a "
              "random initialisation: a new run with a new learning-rate cycle, e.g. a second cycle or fine-tuning. "
              "Not read with --resume (the checkpoint's weights descend from it).")
@click.option("--json", "as_json", is_flag=True, help="Print the training record as JSON at the end.")
@reports_errors
def train(data_dir, output, groups, scale, input_size, classes, stem, epochs, batch_size, learning_rate,
          weight_decay, label_smoothing, warmup_epochs, seed, no_augment, cutout, average_from, steps_per_epoch,
          val_dir, checkpoint_dir, resume, init_from, as_json):
    """Train a ShuffleNet v1 on an image folder with one subfolder per class.

    Recipe: SGD (Nesterov momentum 0.9) with linear warm-up then cosine decay
    to zero, weight decay on kernels, label smoothing, random crops from
    images padded by 1/8 of their size (4 px at 32x32) and horizontal flips
    (--cutout adds Cutout). Preprocessing is the variant's own (stored in the
    model). A checkpoint is written after every epoch; --resume continues from
    the last one (epoch, optimizer state and learning-rate schedule included).
    --average-from saves the average of the last epochs' weights instead of
    the last epoch's. The class names are stored in the saved model.
    """
    import dataclasses

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    from edgeshuffle.errors import InvalidArgumentError
    from edgeshuffle.train import TrainConfig
    from edgeshuffle.train import train as run_train

    from edgeshuffle.data.folders import class_folder
    from edgeshuffle.train import default_checkpoint_dir, latest_checkpoint

    names = class_folder(data_dir).class_names
    if classes is not None and classes != len(names):
        raise InvalidArgumentError(f"--classes does not match the {len(names)} class folders of --data. "
                                   f"Received: `classes={classes}`")
    spec = spec_from_options(groups, scale, input_size, len(names), stem)
    given = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
             "weight_decay": weight_decay, "label_smoothing": label_smoothing, "warmup_epochs": warmup_epochs,
             "seed": seed, "augment": False if no_augment else None, "cutout": cutout,
             "max_steps_per_epoch": steps_per_epoch, "average_from": average_from}
    given = {k: v for k, v in given.items() if v is not None}
    if "warmup_epochs" not in given and given.get("epochs", 2) <= TrainConfig.warmup_epochs:
        given["warmup_epochs"] = 0.0  # a one-epoch run has no room for warm-up
    config = None if resume else dataclasses.replace(TrainConfig(), **given)
    if resume:
        # Options left out keep the checkpoint's values; given ones must agree with it.
        found = latest_checkpoint(checkpoint_dir or default_checkpoint_dir(output))
        if found is not None:
            stored = json.loads((found / "state.json").read_text())["config"]
            defaults = TrainConfig().to_dict()  # a field newer than the checkpoint has its default there
            changed = sorted(k for k, v in given.items() if stored.get(k, defaults[k]) != v)
            if changed and changed != ["average_from"]:
                raise InvalidArgumentError(f"A resumed run keeps its recipe; these differ from the checkpoint's: "
                                           f"{', '.join(changed)}. Received: `--resume`")
            # train() checks that no epoch the new averaging would cover is done yet.
            config = TrainConfig(**{**defaults, **stored, **given}) if changed else None

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[stats]}"))
    with Progress(*columns, disable=as_json, transient=False) as progress:
        result = run_train(data_dir, output, spec, config, val_dir=val_dir, checkpoint_dir=checkpoint_dir,
                           resume=resume, init_from=init_from, listener=_progress_listener(progress))
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    last = result.history[-1]
    accuracy = result.final_val_accuracy
    val = f", top-1 on --val {100 * accuracy:.2f}%" if accuracy is not None else ""
    if result.config.average_from is not None:
        val += f" (weights averaged over epochs {result.config.average_from}-{result.config.epochs})"
    click.echo(f"trained {result.spec.name} for {result.config.epochs} epochs on {result.train_images} images "
               f"({', '.join(result.spec.class_names)}){val}; "
               f"{sum(r.seconds for r in result.history) / 60:.1f} min of training, "
               f"last epoch {last.images_per_second:.0f} images/s")
    click.echo(f"wrote {result.output}")
