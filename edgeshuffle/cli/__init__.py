"""The `edgeshuffle` command line: thin commands over the library.

Each command (one module per verb in this package) parses its options, calls
one library function and renders the result; library errors become a
one-line message and an exit code (see :mod:`edgeshuffle.errors`).
"""

from __future__ import annotations

import logging
import signal
import threading

import click

from edgeshuffle import __version__
from edgeshuffle.cli.native_logs import filter_native_logs


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgeshuffle")
@click.option("--verbose", "-v", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """ShuffleNet v1 from Keras to int8 on an edge board, with proof that nothing was lost.

    \b
    Build machine:  info, train, import, convert, quantize
    Board:          info, bench, parity   (runtime extra only, no TensorFlow)
    """
    if not verbose:
        filter_native_logs()  # before logging binds sys.stderr
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)


def _terminate_as_interrupt(signum, frame) -> None:
    """SIGTERM (a CI timeout, `kill`) ends a run like Ctrl-C: temporary files removed, exit 130."""
    raise KeyboardInterrupt



def _register() -> None:
    from edgeshuffle.cli.import_ import import_
    from edgeshuffle.cli.bench import bench
    from edgeshuffle.cli.convert import convert
    from edgeshuffle.cli.info import info
    from edgeshuffle.cli.parity import parity
    from edgeshuffle.cli.quantize import quantize
    from edgeshuffle.cli.train import train

    for command in (info, import_, bench, parity, convert, quantize, train):
        main.add_command(command)


_register()
