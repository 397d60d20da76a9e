"""Atomic, durable file writes: temp beside the target, fsync, rename, fsync the directory.

A reader (or a crash) sees either the old file or the new one, never a mix. An fsync
error is a failed write: the temp file is removed and the error propagates.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from core.errors import WorkspaceError

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


# --- staying inside the workspace ---------------------------------------------------------
#
# parqctl never creates, renames or deletes anything whose real path is outside the
# workspace, and never writes through a symbolic link it did not expect. The helpers below
# check that at the moment of each write: ``confined`` by looking at every component of the
# path below the workspace root (resolve-and-compare), ``open_dir`` and ``append`` by
# walking down from the root with O_NOFOLLOW, so that a link swapped in after any earlier
# check is still refused. The workspace root itself may be a link: it is what the operator
# named.

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeLinkError(WorkspaceError, OSError):
    """A path parqctl was about to write through is a symbolic link (or not what it should
    be: a FIFO or device where a file belongs, a file where a directory belongs), or leads
    outside the workspace. Nothing was written.

    Also an ``OSError`` (ELOOP), so code that reports a failed optional write (a disk
    history sample, the audit of a refusal) reports this one the same way."""

    def __init__(self, message: str, hint: str = "") -> None:
        WorkspaceError.__init__(self, message, hint)
        self.errno = errno.ELOOP
        self.strerror = message
        self.filename = None

    def __str__(self) -> str:
        return self.one_line()


def _state_hint(kind: str) -> str:
    return f"parqctl keeps its state inside the workspace; replace it with {kind}"


def unsafe_path_error(path: Path, *, want: str = "a directory") -> UnsafeLinkError:
    """The refusal for ``path``: a symbolic link (named with its target), or not ``want``."""
    try:
        target = os.readlink(path)
    except OSError:
        target = None
    if target is not None:
        return UnsafeLinkError(f"{path} is a symbolic link to {target}", _state_hint(want))
    return UnsafeLinkError(f"{path} is not {want}", _state_hint(want))


def _relative_parts(root: Path, path: Path) -> tuple[str, ...]:
    """The components of ``path`` below ``root``, refusing one that is not below it."""
    path = Path(path)
    try:
        rel = path.relative_to(root) if path.is_absolute() else path
    except ValueError:
        raise UnsafeLinkError(
            f"{path} is outside the workspace {root}", "parqctl writes only inside its workspace"
        ) from None
    if any(part in ("", ".", "..") for part in rel.parts) or rel.is_absolute():
        raise UnsafeLinkError(
            f"{path} is outside the workspace {root}", "parqctl writes only inside its workspace"
        )
    return rel.parts


def confined(root: Path, path: Path) -> Path:
    """``path`` (absolute under ``root``, or relative to it) as an absolute path, if no
    existing component of it below ``root`` is a symbolic link; else UnsafeLinkError naming
    the link. Components that do not exist yet are fine: creating them creates them inside.

    Call it right before the write; ``open_dir`` closes the window completely."""
    root = Path(root)
    parts = _relative_parts(root, path)
    current = root
    for part in parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except (FileNotFoundError, NotADirectoryError):
            break
        if stat.S_ISLNK(mode):
            raise unsafe_path_error(current)
    return root.joinpath(*parts)


def open_dir(
    root: Path, rel: Path | str, *, create: bool = False, made: list[Path] | None = None
) -> int:
    """A file descriptor of the directory ``root/rel``, reached from ``root`` one component
    at a time with O_NOFOLLOW: a symbolic link on the way is refused (UnsafeLinkError), not
    followed. With ``create``, missing directories are made (each appended to ``made``).
    The caller closes the descriptor; use it with ``dir_fd=`` for the write itself."""
    root = Path(root)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    current = root
    try:
        for part in _relative_parts(root, Path(rel)):
            current = current / part
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                else:
                    if made is not None:
                        made.append(current)
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise unsafe_path_error(current) from None
                raise
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def opened_dir(
    root: Path, rel: Path | str, *, create: bool = False, made: list[Path] | None = None
) -> Iterator[int]:
    """``open_dir`` as a context manager that closes the descriptor."""
    fd = open_dir(root, rel, create=create, made=made)
    try:
        yield fd
    finally:
        os.close(fd)


def append(root: Path, rel: Path | str, data: bytes, *, sync: bool = True) -> int:
    """Append ``data`` to the file ``root/rel`` in one ``write`` with O_APPEND (so concurrent
    writers never interleave within it), creating the file and its directories if missing;
    returns the file's size after. Every directory on the way and the file itself are opened
    with O_NOFOLLOW, the file with O_NONBLOCK (a FIFO there cannot hang the writer) and only
    written if it is a regular file: anything else is refused with UnsafeLinkError."""
    rel = Path(rel)
    path = Path(root) / rel
    with opened_dir(root, rel.parent, create=True) as dir_fd:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            fd = os.open(rel.name, flags | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENOTDIR):
                raise unsafe_path_error(path, want="a regular file") from None
            raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise unsafe_path_error(path, want="a regular file")
        os.write(fd, data)
        if sync:
            os.fsync(fd)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


class StateFileTooLarge(OSError):
    """A state file larger than its reader accepts: parqctl never writes one, so it is
    damaged or forged, and its readers take it for what a damaged file is to them."""


# Beyond this a state file is refused whole (rule 8: no one file may make a command use
# more than about a gigabyte). The largest parqctl writes, the disk tree of a 740,000-file
# store, is 75 MB; JSON state, which takes several times its size once parsed, asks less.
MAX_STATE_BYTES = 256 * 1024 * 1024
MAX_JSON_STATE_BYTES = 32 * 1024 * 1024


def read_state_file(
    root: Path, rel: Path | str, *, limit: int | None = None, max_bytes: int = MAX_STATE_BYTES
) -> bytes | None:
    """The content of ``root/rel`` (its last ``limit`` bytes when given), or None when it
    does not exist. Opened like ``append`` opens it (no link followed, a FIFO never waited
    on): anything but a regular file reached without a link is refused (UnsafeLinkError);
    without ``limit``, a file of more than ``max_bytes`` is refused (StateFileTooLarge)
    after reading no more than that."""
    rel = Path(rel)
    path = Path(root) / rel
    try:
        with opened_dir(root, rel.parent) as dir_fd:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(rel.name, flags, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise unsafe_path_error(path, want="a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise unsafe_path_error(path, want="a regular file")
        if limit is not None and st.st_size > limit:
            os.lseek(fd, st.st_size - limit, os.SEEK_SET)
        chunks = []
        remaining = max_bytes + 1 if limit is None else limit
        while remaining > 0:
            chunk = os.read(fd, min(1 << 20, remaining))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        if limit is None and remaining == 0:
            raise StateFileTooLarge(
                errno.EFBIG, f"larger than {max_bytes:,} bytes: not parqctl's own", str(path)
            )
        return b"".join(chunks)
    finally:
        os.close(fd)
