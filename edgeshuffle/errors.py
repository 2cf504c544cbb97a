"""The errors edgeshuffle raises on purpose; the CLI turns each into an exit code.

Exit codes (documented in docs/exit-codes.md): 2 usage error (click's own, and
:class:`InvalidArgumentError`), 1 bad input or a failed step, 3 a failed
parity gate, 130 interrupted.
"""


class EdgeShuffleError(Exception):
    """Base of every error edgeshuffle reports to the user; its message is one line."""

    exit_code = 1


class InvalidArgumentError(EdgeShuffleError, ValueError):
    """An option or argument out of range (an unsupported group count, a bad input size)."""

    exit_code = 2


class InputFileError(EdgeShuffleError):
    """A file or folder the user gave is missing, unreadable or of the wrong kind."""


class ConversionError(EdgeShuffleError):
    """A conversion or quantization step failed."""


class ParityError(EdgeShuffleError):
    """A parity gate failed: the artifacts exist but do not compute what the reference does."""

    exit_code = 3


def require(condition: bool, message: str, name: str, value) -> None:
    """Unless ``condition``: :class:`InvalidArgumentError`, ``message`` then "Received: `name=value`"."""
    if not condition:
        raise InvalidArgumentError(f"{message} Received: `{name}={value}`")
