"""Making a whole batch of new files durable with two filesystem flushes, not one per file.

The scheme (per batch): the workers write every file of the batch to the staging area;
``flush_filesystem`` (Linux ``syncfs``) then writes back and waits for all dirty data and
metadata of that filesystem, so every staged file is on disk before any of them becomes
visible; the files are then renamed into the partitioned tree; a second flush makes the
renames (and the new directories) durable; only then is the checkpoint written that
records the batch as done. A crash at any point therefore leaves either no trace of a
file in the tree or a complete one, and the plan never claims a file the disk may lose.
One flush covers thousands of files, where fsync-per-file pays a device flush each time.

``syncfs`` reports writeback errors of the filesystem since the descriptor was opened
(Linux >= 5.8), so the descriptor is opened before the batch's first write. Where syncfs
is missing (not Linux), every file and directory is fsynced one by one instead.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from core.errors import ParqctlError
from core.safety.atomic import fsync_dir

_libc = None


def _syncfs():
    global _libc
    if not sys.platform.startswith("linux"):
        return None
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return getattr(_libc, "syncfs", None)


class FilesystemFlush:
    """Flushes the filesystem holding ``path``; open it before the writes it must cover."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._syncfs = _syncfs()
        self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY) if self._syncfs else None

    @property
    def whole_filesystem(self) -> bool:
        return self._fd is not None

    def flush(self, files: Iterable[Path] = (), directories: Iterable[Path] = ()) -> None:
        """Make everything written so far durable; an error means the writes failed."""
        if self._fd is not None:
            if self._syncfs(self._fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs failed: {os.strerror(err)}", str(self.path))
            return
        for path in files:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for directory in directories:
            fsync_dir(directory)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FilesystemFlush:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def require_same_filesystem(first: Path, second: Path) -> None:
    """Promotion is a rename: staging and the partitioned tree must share a filesystem."""
    if os.stat(first).st_dev != os.stat(second).st_dev:
        raise ParqctlError(
            f"{first} and {second} are on different filesystems",
            "the staging area must sit on the data's filesystem: do not mount .parqctl elsewhere",
        )
