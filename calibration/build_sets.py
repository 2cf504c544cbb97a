"""Rebuild the image sets shipped in calibration/ from the original data (provenance, not run by tests).

    python calibration/build_sets.py --cifar EXTRACTED_CIFAR10_DEV --imagenet IMAGENET_VAL_1300

``--cifar``: the extracted cifar10-dev.zip (``train/<class>/NNNN.jpg``,
``test/<class>/NNNN.jpg``); ``--imagenet``: the imagenet-val-1300 folder
(``images/``, ``labels.tsv``, ``synset_words.txt``). Files are copied byte
for byte (no re-encoding). The choice is deterministic:

- ``cifar10-train-300``: 30 images per class from CIFAR-10 *train*, drawn
  without replacement by ``numpy.random.default_rng(0)`` from each class's
  sorted file list (classes in sorted order, one generator for all).
- ``cifar10-test-2000``: files 0000-0199 of each class of CIFAR-10 *test*.
- ``imagenet-val-200`` and ``imagenet-val-agree-100``: the 1,300 ImageNet
  validation images in sorted order, permuted by ``default_rng(0)``; the
  first 200 calibrate, the next 100 are the agreement set.

Calibration comes from CIFAR-10 train and evaluation from CIFAR-10 test,
which are disjoint by construction; the two ImageNet sets are disjoint
slices of one permutation. The script checks both.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CIFAR_CALIBRATION_PER_CLASS = 30
CIFAR_EVALUATION_PER_CLASS = 200
IMAGENET_CALIBRATION = 200
IMAGENET_AGREEMENT = 100


def _copy(files: list[Path], source_root: Path, target: Path) -> None:
    for path in files:
        destination = target / path.relative_to(source_root)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)


def build_cifar(cifar: Path) -> None:
    rng = np.random.default_rng(0)
    calibration, evaluation = [], []
    for class_dir in sorted(p for p in (cifar / "train").iterdir() if p.is_dir()):
        files = sorted(class_dir.glob("*.jpg"))
        calibration += [files[i] for i in sorted(rng.choice(len(files), CIFAR_CALIBRATION_PER_CLASS,
                                                            replace=False))]
    for class_dir in sorted(p for p in (cifar / "test").iterdir() if p.is_dir()):
        evaluation += sorted(class_dir.glob("*.jpg"))[:CIFAR_EVALUATION_PER_CLASS]
    assert not {p.read_bytes() for p in calibration} & {p.read_bytes() for p in evaluation}
    _copy(calibration, cifar / "train", HERE / "cifar10-train-300")
    _copy(evaluation, cifar / "test", HERE / "cifar10-test-2000")


def build_imagenet(imagenet: Path) -> None:
    files = sorted((imagenet / "images").iterdir())
    order = np.random.default_rng(0).permutation(len(files))
    chosen = [files[i] for i in order[:IMAGENET_CALIBRATION + IMAGENET_AGREEMENT]]
    labels = dict(line.split("\t") for line in (imagenet / "labels.tsv").read_text().splitlines() if line)
    for name, subset in (("imagenet-val-200", chosen[:IMAGENET_CALIBRATION]),
                         ("imagenet-val-agree-100", chosen[IMAGENET_CALIBRATION:])):
        target = HERE / name
        _copy(subset, imagenet / "images", target)
        (target / "labels.tsv").write_text("".join(f"{p.name}\t{labels[p.name]}\n" for p in subset))
    shutil.copyfile(imagenet / "synset_words.txt", HERE / "imagenet-synset_words.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", type=Path, required=True)
    parser.add_argument("--imagenet", type=Path, required=True)
    args = parser.parse_args()
    build_cifar(args.cifar)
    build_imagenet(args.imagenet)


if __name__ == "__main__":
    main()
