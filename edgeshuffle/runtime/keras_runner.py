"""Keras runner: the reference every artifact is compared with (build machine only)."""

from __future__ import annotations

import numpy as np

from edgeshuffle.runtime.base import InputInfo, Runner


class KerasRunner(Runner):
    """Runs a ``.keras`` file, or an in-memory model given as ``model=``."""

    kind = "keras"

    def __init__(self, path, threads: int = 1, model=None):
        super().__init__(path or "<in memory>", threads)
        self.model = model

    def activate(self) -> None:
        if self.model is None:
            super().activate()
        self.active = True

    def _activate(self) -> None:
        from edgeshuffle.models.io import load_model

        self.model = load_model(self.path)

    def input_info(self) -> InputInfo:
        shape = tuple(-1 if d is None else int(d) for d in self.model.input_shape)
        return InputInfo("input", shape, "float32")

    def _run(self, feed: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(feed, training=False), dtype=np.float32)
