"""edgeshuffle: ShuffleNet v1 from Keras to int8 on an edge board, with proof that nothing was lost.

Load a ``.keras`` file that edgeshuffle wrote (``train``, ``import``,
``convert``, ``make demo``) in your own code with :func:`load_model`::

    import edgeshuffle
    model = edgeshuffle.load_model("build/demo/model.keras")

``keras.saving.load_model`` alone cannot: Keras imports the module of a
saved custom class only for its own packages, so the ShuffleNet class is
unknown to it. Importing ``edgeshuffle`` imports no TensorFlow, Keras or
numpy; :func:`load_model` imports Keras when it is called.
"""

__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ start-up chatter drowns the tools' own output; errors still show.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edgeshuffle.models.io import load_model  # noqa: E402

__all__ = ["load_model"]
