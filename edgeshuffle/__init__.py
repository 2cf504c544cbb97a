"""edgeshuffle: ShuffleNet v1 from Keras to int8 on an edge board, with proof that nothing was lost."""

__version__ = "0.1.0"

import os as _os

# TensorFlow's C++ start-up chatter drowns the tools' own output; errors still show.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
