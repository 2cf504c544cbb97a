"""edgeshuffle: a Keras image classifier (a ShuffleNet above all) to int8 on an edge board, with proof that
nothing was lost.

The Python API (:mod:`edgeshuffle.api`): :func:`convert`, :func:`quantize`,
:class:`Preprocessing`, and :func:`load_model` for the ``.keras`` files
edgeshuffle writes (``train``, ``import``, ``convert``, ``make demo``)::

    import edgeshuffle
    model = edgeshuffle.load_model("build/demo/model.keras")

``keras.saving.load_model`` alone cannot load edgeshuffle's ShuffleNets:
Keras imports the module of a saved custom class only for its own packages.
Importing the package loads no TensorFlow, Keras or numpy; the functions
import them when called.
"""

__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ start-up chatter drowns the tools' own output; errors still show.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edgeshuffle.api import convert, quantize  # noqa: E402
from edgeshuffle.models.io import load_model  # noqa: E402
from edgeshuffle.preprocessing import Preprocessing  # noqa: E402

__all__ = ["Preprocessing", "convert", "load_model", "quantize"]
