"""Keep TensorFlow's and LiteRT's C++ log chatter out of the tools' output (shown again with -v).

TensorFlow (absl logging), its converter and the LiteRT interpreter write
start-up and progress lines ("INFO: Created TensorFlow Lite XNNPACK delegate
for CPU.", "fully_quantize: 0, inference_type: 6, ...", oneDNN notices) to
file descriptor 2 from C++. Neither Python's logging nor, with TensorFlow
2.21's absl logging, ``TF_CPP_MIN_LOG_LEVEL`` reaches them. So the command
line sends descriptor 2 through a small filter process that drops those
known lines and passes every other line on unchanged, errors and fatal
messages included. A separate process rather than a thread, so that a C++
abort cannot lose the message that explains it. Python's own ``sys.stderr``
keeps the real stream (a terminal stays a terminal for the progress bars).
"""

from __future__ import annotations

import os
import subprocess
import sys

# One regular expression per known kind of chatter line (matched from the start of the line).
CHATTER = (
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"[IW]\d{4} [\d:.]+ +\d+ [\w.-]+:\d+\] ",  # absl INFO/WARNING; E and F lines pass
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] ",  # TensorFlow's own INFO/WARNING prefix
    r"INFO: ",  # LiteRT's INFO lines
    r"fully_quantize: \d+, inference_type: \d+, input_inference_type: ",
    r"To enable the following instructions: .* rebuild TensorFlow",
)

_FILTER = r"""
import re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)   # outlive Ctrl-C and SIGTERM to pass the last lines on
signal.signal(signal.SIGTERM, signal.SIG_IGN)
chatter = re.compile(b"|".join(b"(?:" + p.encode() + b")" for p in sys.argv[1:]))
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    if not chatter.match(line):
        out.write(line)
        out.flush()
"""

_installed = False


def filter_native_logs() -> None:
    """Route descriptor 2 through the chatter filter for the rest of the process (once; a no-op if
    ``sys.stderr`` is not descriptor 2, as under click's CliRunner or pytest's capture)."""
    global _installed
    try:
        if _installed or sys.stderr is None or sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return
    sys.stderr.flush()
    real = os.dup(2)
    try:
        process = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER, *CHATTER], stdin=subprocess.PIPE,
                                   stdout=real, stderr=real, close_fds=True)
    except OSError:
        os.close(real)
        return
    os.dup2(process.stdin.fileno(), 2)
    process.stdin.close()  # descriptor 2 now holds the pipe; the filter ends when this process does
    sys.stderr = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding, errors=sys.stderr.errors)
    _installed = True
