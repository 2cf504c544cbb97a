"""Atomic file output: write to a temporary file beside the target, then rename.

An interrupted or failed step never leaves a half-written artifact, and an
existing file is replaced only by a complete new one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from edgeshuffle.errors import InputFileError


def ensure_writable_dir(folder: Path) -> Path:
    """Create ``folder`` if needed and check that files can be written in it."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputFileError(f"output path is not a folder: {folder}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputFileError(f"cannot create output folder {folder}: {error.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputFileError(f"output folder is not writable: {folder}")
    return folder


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto ``target``."""
    target = Path(target)
    # The name is chosen before the file exists, so an interrupt at any point (even right after
    # os.open) finds it in the except clause below; mode 0o666 minus the umask, like any new file.
    temporary = target.parent / f".{target.name}.{secrets.token_hex(6)}.partial{target.suffix}"
    try:
        while True:
            try:
                os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                break
            except FileExistsError:  # another writer's temporary file: never touch it
                temporary = target.parent / f".{target.name}.{secrets.token_hex(6)}.partial{target.suffix}"
        yield temporary
        os.replace(temporary, target)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):  # a full disk, a vanished folder: one line, not a traceback
            raise InputFileError(f"cannot write {target}: {error.strerror or error}") from None
        raise


def write_bytes(target: Path, data: bytes) -> None:
    try:
        with atomic_path(target) as temporary:
            temporary.write_bytes(data)
    except OSError as error:
        raise InputFileError(f"cannot write {target}: {error.strerror}") from None


def write_text(target: Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))
