"""The append-only audit log, ``.parqctl/audit.jsonl``: who did what to the workspace."""

from __future__ import annotations

import getpass
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

AUDIT_FILE = Path(".parqctl") / "audit.jsonl"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def append(workspace_root: Path, action: str, result: str, **details: Any) -> dict[str, Any]:
    """Append one record and fsync it; returns the record written.

    One ``write`` of a single line with O_APPEND, so concurrent writers never interleave
    within a record.
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
    path = workspace_root / AUDIT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, default=str, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return record


def read(workspace_root: Path) -> list[dict[str, Any]]:
    """All records, oldest first; a torn last line (crash mid-append) is skipped."""
    path = workspace_root / AUDIT_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
