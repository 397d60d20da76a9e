"""The append-only audit log, ``.parqctl/audit.jsonl``: who did what to the workspace;
appending a record, and reading the newest ones back from the end of the file."""

from __future__ import annotations

import errno
import getpass
import json
import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.safety import atomic, untrusted_json

AUDIT_FILE = Path(".parqctl") / "audit.jsonl"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def append(workspace_root: Path, action: str, result: str, **details: Any) -> dict[str, Any]:
    """Append one record and fsync it; returns the record written.

    One ``write`` of a single line with O_APPEND, so concurrent writers never interleave
    within a record. ``.parqctl`` and the log are opened without following links: a
    symbolic link (or a FIFO) in their place is refused with ``atomic.UnsafeLinkError``
    and nothing is written, not even the record of that refusal.
    """
    record = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "user": _user(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "action": action,
        "result": result,
        **details,
    }
    line = (json.dumps(record, default=str, ensure_ascii=False) + "\n").encode("utf-8")
    atomic.append(Path(workspace_root), AUDIT_FILE, line)
    return record


def read(workspace_root: Path) -> list[dict[str, Any]]:
    """All records, oldest first; a torn last line (crash mid-append) is skipped. A link or
    FIFO in place of the log is refused (``atomic.UnsafeLinkError``), never read through."""
    content = atomic.read_state_file(Path(workspace_root), AUDIT_FILE)
    if content is None:
        return []
    records = []
    for line in content.decode("utf-8", errors="replace").splitlines():
        try:
            records.append(untrusted_json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


# Reading from the end: a record is a few hundred bytes; a line longer than this is not
# one (a hostile or corrupt file) and is reported without being held in memory.
MAX_LINE_BYTES = 64 * 1024
_CHUNK = 64 * 1024
_COMMON = ("ts", "user", "host", "pid", "action", "result")


@dataclass(frozen=True)
class AuditRecord:
    """One line of the log: a record, or why the line is not one (``problem``)."""

    offset: int  # where the line starts in the file
    raw: dict[str, Any] | None
    problem: str | None = None
    text: str = ""  # a malformed line's beginning, as read

    def field(self, name: str) -> str:
        value = (self.raw or {}).get(name)
        return "" if value is None else str(value)

    @property
    def action(self) -> str:
        return self.field("action")

    @property
    def result(self) -> str:
        return self.field("result")

    @property
    def when(self) -> datetime | None:
        """The record's time (aware, UTC), or None when it has none that parses."""
        try:
            moment = datetime.fromisoformat(self.field("ts").replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    @property
    def details(self) -> dict[str, Any]:
        """Everything the record says beyond who, when, what and the result."""
        return {k: v for k, v in (self.raw or {}).items() if k not in _COMMON}

    def as_dict(self) -> dict[str, Any]:
        if self.raw is None:
            return {"offset": self.offset, "malformed": self.problem, "text": self.text}
        return self.raw


@dataclass(frozen=True)
class AuditPage:
    """The newest records, newest first; ``complete`` when the read reached the start of
    the log (nothing older was left unread)."""

    records: list[AuditRecord]
    complete: bool
    size: int  # the log's size in bytes, 0 when there is none


def read_newest(
    workspace_root: Path, *, limit: int = 1000, since: datetime | None = None
) -> AuditPage:
    """Up to ``limit`` records, newest first, read backwards from the end of the log in
    fixed chunks, so memory stays bounded by ``limit`` whatever the log's size; with
    ``since``, reading stops at the first record older than it. A line that is not a JSON
    object (a torn append, garbage, one longer than MAX_LINE_BYTES) is returned as a
    malformed record. A link or FIFO in place of the log is refused
    (``atomic.UnsafeLinkError``), never read through."""
    fd = _open_log(Path(workspace_root))
    if fd is None:
        return AuditPage([], True, 0)
    try:
        size = os.fstat(fd).st_size
        records: list[AuditRecord] = []
        for offset, line, length in _lines_backwards(fd, size):
            record = _parse(offset, line, length)
            if since is not None and record.when is not None and record.when < since:
                return AuditPage(records, False, size)
            if len(records) == limit:
                return AuditPage(records, False, size)
            records.append(record)
        return AuditPage(records, True, size)
    finally:
        os.close(fd)


def _open_log(root: Path) -> int | None:
    path = root / AUDIT_FILE
    try:
        with atomic.opened_dir(root, AUDIT_FILE.parent) as dir_fd:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(AUDIT_FILE.name, flags, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise atomic.unsafe_path_error(path, want="a regular file") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise atomic.unsafe_path_error(path, want="a regular file")
    return fd


def _lines_backwards(fd: int, size: int) -> Iterator[tuple[int, bytes, int]]:
    """(offset, first MAX_LINE_BYTES bytes, length) of each non-empty line, last first."""
    position = size
    tail = b""  # the end of a line whose start is not read yet, at most MAX_LINE_BYTES
    tail_length = 0  # its whole length
    while position > 0:
        start = max(0, position - _CHUNK)
        block = os.pread(fd, position - start, start)
        if len(block) < position - start:
            return  # the file shrank under us (an append-only log does not): stop here
        position = start
        pieces = block.split(b"\n")
        # The last piece ends where the pending tail begins: together they are a line,
        # complete once a newline before them has been seen.
        tail_length += len(pieces[-1])
        tail = (pieces[-1] + tail)[:MAX_LINE_BYTES]
        if len(pieces) == 1:
            continue
        line_start = start + sum(len(p) + 1 for p in pieces[:-1])
        if tail_length:
            yield line_start, tail, tail_length
        for piece in reversed(pieces[1:-1]):
            line_start -= len(piece) + 1
            if piece:
                yield line_start, piece[:MAX_LINE_BYTES], len(piece)
        tail, tail_length = pieces[0][:MAX_LINE_BYTES], len(pieces[0])
    if tail_length:
        yield 0, tail, tail_length


def _parse(offset: int, line: bytes, length: int) -> AuditRecord:
    shown = line[:200].decode("utf-8", errors="replace")
    if length > MAX_LINE_BYTES:
        return AuditRecord(offset, None, f"a line of {length:,} bytes: not a record", shown)
    try:
        raw = untrusted_json.loads(line.decode("utf-8", errors="replace"))
    except (json.JSONDecodeError, RecursionError):
        return AuditRecord(offset, None, "not JSON (a torn or foreign line)", shown)
    if not isinstance(raw, dict):
        return AuditRecord(offset, None, f"JSON {type(raw).__name__}, not a record", shown)
    return AuditRecord(offset, raw)
