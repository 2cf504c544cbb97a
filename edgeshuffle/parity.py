"""Comparing a model's logits with a reference's: agreement, accuracy, error statistics."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Comparison:
    """How one set of logits compares with the reference logits on the same inputs.

    ``max_relative_error`` is the max absolute difference divided by the
    largest absolute reference logit (a scale-free figure for the gates).
    """

    samples: int
    top1_agreement: float  # fraction of inputs whose top-1 class equals the reference's
    max_abs_error: float
    max_relative_error: float
    mean_cosine: float
    accuracy: float | None = None  # against labels, when there are labels
    reference_accuracy: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def passes(self, max_relative_error: float, min_agreement: float) -> bool:
        return self.max_relative_error <= max_relative_error and self.top1_agreement >= min_agreement


def compare(reference: np.ndarray, logits: np.ndarray, labels: np.ndarray | None = None) -> Comparison:
    reference = np.asarray(reference, dtype=np.float64)
    logits = np.asarray(logits, dtype=np.float64)
    if reference.shape != logits.shape:
        raise ValueError(f"logit shapes differ: {reference.shape} vs {logits.shape}")
    diff = np.abs(reference - logits)
    scale = max(float(np.abs(reference).max()), 1e-12)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(logits, axis=1)
    cosine = np.sum(reference * logits, axis=1) / np.maximum(norms, 1e-12)
    accuracy = reference_accuracy = None
    if labels is not None:
        labels = np.asarray(labels)
        accuracy = float(np.mean(logits.argmax(1) == labels))
        reference_accuracy = float(np.mean(reference.argmax(1) == labels))
    return Comparison(
        samples=len(reference),
        top1_agreement=float(np.mean(reference.argmax(1) == logits.argmax(1))),
        max_abs_error=float(diff.max()),
        max_relative_error=float(diff.max()) / scale,
        mean_cosine=float(cosine.mean()),
        accuracy=accuracy,
        reference_accuracy=reference_accuracy,
    )
