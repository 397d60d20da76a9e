"""Atomic, durable file writes: temp beside the target, fsync, rename, fsync the directory.

A reader (or a crash) sees either the old file or the new one, never a mix. An fsync
error is a failed write: the temp file is removed and the error propagates.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

TEMP_MARKER = ".parqctl-tmp-"


def temp_path_for(target: Path) -> Path:
    """A unique temp name in the target's directory (same filesystem, so rename is atomic).

    Hidden and not of the form ``data.parquet.tmp-*``: the collector's start-up cleanup
    renames files matching that glob onto ``data.parquet`` even when they are partial, and
    its readers glob for ``data.parquet`` exactly, so neither ever touches our temp files.
    """
    return target.with_name(f".{target.name}{TEMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}")


def is_temp_name(name: str) -> bool:
    return TEMP_MARKER in name


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces ``target`` atomically.

    For writers that want a path rather than a file object (pyarrow.parquet.write_table).
    The writer must close the file before the block ends; it is fsynced here.
    """
    target = Path(target)
    tmp = temp_path_for(target)
    try:
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_open(target: Path, *, durable: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file object; on success its content replaces ``target`` atomically."""
    with atomic_path(target, durable=durable) as tmp, open(tmp, "xb") as handle:
        yield handle
        handle.flush()


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_open(target) as handle:
        handle.write(data)


def write_json(target: Path, obj: Any) -> None:
    """Write JSON the way the collector does (indented, UTF-8, trailing newline)."""
    text = json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    write_bytes(target, text.encode("utf-8"))
