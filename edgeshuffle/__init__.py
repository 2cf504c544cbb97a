"""edgeshuffle: a Keras image classifier (a ShuffleNet above all) to int8 on an edge board, with proof that
nothing was lost.

The Python API (:mod:`edgeshuffle.api`): :func:`convert`, :func:`quantize` and
:class:`Preprocessing`. Importing the package loads no TensorFlow, Keras or
numpy; the functions import them when called.
"""

__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ start-up chatter drowns the tools' own output; errors still show.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edgeshuffle.api import convert, quantize  # noqa: E402
from edgeshuffle.preprocessing import Preprocessing  # noqa: E402

__all__ = ["Preprocessing", "convert", "quantize"]
