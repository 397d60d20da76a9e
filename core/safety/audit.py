"""The append-only audit log, ``.parqctl/audit.jsonl``: who did what to the workspace."""

from __future__ import annotations

import getpass
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.safety import atomic

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
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
