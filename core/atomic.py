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


FLAT_DEPTH = 7


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_open(target) as handle:
        handle.write(data)


def write_json(target: Path, obj: Any) -> None:
    """Write JSON the way the collector does (indented, UTF-8, trailing newline)."""
    write_bytes(target, (indented_json(obj) + "\n").encode("utf-8"))


def indented_json(obj: Any, depth: int = 0) -> str:
    """JSON indented by two spaces, except that containers nested ``FLAT_DEPTH`` deep are
    written on one line.

    ``json.dumps(indent=...)`` runs json's pure-Python encoder (about 20 MB/s): a migration
    plan of 8,000 tickers, rewritten at every checkpoint, then costs minutes of CPU. Deep
    containers (a plan's per-ticker records) go through the C encoder instead, and each
    record stays one line for ``grep``.
    """
    if depth >= FLAT_DEPTH or not isinstance(obj, dict | list) or not obj:
        return json.dumps(obj, ensure_ascii=False)
    inner = "\n" + "  " * (depth + 1)
    if isinstance(obj, dict):
        items = [
            f"{json.dumps(str(k), ensure_ascii=False)}: {indented_json(v, depth + 1)}"
            for k, v in obj.items()
        ]
        return "{" + inner + ("," + inner).join(items) + "\n" + "  " * depth + "}"
    items = [indented_json(v, depth + 1) for v in obj]
    return "[" + inner + ("," + inner).join(items) + "\n" + "  " * depth + "]"
