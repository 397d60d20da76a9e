"""Files in a bar dataset that are not bar files: temp and partial files of interrupted
writers (with whether they are complete Parquet), files the collector moved aside as
damaged, and anything else. A temp file is never promoted to its real name here."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from core.availability.index_scan import Stray, is_temp_file
from core.integrity.findings import Finding, Severity
from core.safety import run_lock
from core.safety.atomic import TEMP_MARKER
from core.store.workspace import Workspace

# The collector's temp files, which its start-up clean-up renames onto the real name.
_COLLECTOR_TEMP = re.compile(r"\.parquet\.tmp-")
_DAMAGED_MARKER = ".damaged-"
_PARQCTL_TEMP_PID = re.compile(re.escape(TEMP_MARKER) + r"(\d+)-")


def being_written(lock: run_lock.LockStatus, mtime_ns: int) -> bool:
    """A live writer holds the lock and the file changed since it took it."""
    return (
        lock.state is run_lock.LockState.LIVE
        and lock.ts is not None
        and mtime_ns / 1e9 >= lock.ts - 1.0
    )


def stray_findings(
    ws: Workspace, strays: Iterable[Stray], interval: str | None, lock: run_lock.LockStatus
) -> tuple[list[Finding], dict[str, tuple[int, int]]]:
    """Every file in a bar dataset that is not a bar file: temp, damaged, unexpected.

    ``strays`` are those the file index saw (core.availability.index_scan: the hot months
    at every refresh, the whole tree at a full scan); one gone since is left out.
    """
    findings, stats = [], {}
    for stray in strays:
        if interval is not None and stray.interval != interval:
            continue
        try:
            st = os.stat(ws.root / stray.path, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            continue
        stats[stray.path] = (st.st_size, st.st_mtime_ns)
        findings.append(_stray_finding(ws.root, stray.path, stray.interval, st, lock))
    return findings, stats


def _stray_finding(
    root: Path, rel: str, interval: str | None, st: os.stat_result, lock: run_lock.LockStatus
) -> Finding:
    name = os.path.basename(rel)

    def finding(severity: Severity, code: str, message: str, advice: str) -> Finding:
        return Finding(severity, code, rel, message, advice, interval=interval)

    if _DAMAGED_MARKER in name:
        return finding(
            Severity.WARNING,
            "stray.damaged",
            f"the collector moved this unreadable file aside ({st.st_size:,} bytes)",
            "quarantine it with a record (`parqctl quarantine add PATH --reason ...`); its "
            "bars may still be recoverable by hand",
        )
    if not is_temp_file(name):
        invisible = name.endswith(".parquet")
        return finding(
            Severity.WARNING if invisible else Severity.INFO,
            "stray.unexpected",
            f"not a bar file of the layout ({st.st_size:,} bytes)"
            + ("; no reader of the format looks at it" if invisible else ""),
            "check what wrote it; parqctl and the collector ignore it",
        )
    target = _temp_target(name)
    contents = _parquet_contents(root / rel)
    beside = _target_contents(root / os.path.dirname(rel) / target) if target else ""
    message = f"leftover temp file: {contents}" + (f"; {target} {beside}" if target else "")
    pid = _PARQCTL_TEMP_PID.search(name)
    in_progress = being_written(lock, st.st_mtime_ns) or (
        pid is not None and _pid_alive(int(pid.group(1)))
    )
    if in_progress:
        return finding(
            Severity.INFO,
            "stray.temp",
            message + " (a writer holding the lock may still be writing it)",
            "nothing to do while the writer runs; check again after it finished",
        )
    if _COLLECTOR_TEMP.search(name):
        return finding(
            Severity.ERROR,
            "stray.temp",
            message,
            "never rename it onto the real file: the collector's start-up clean-up does exactly "
            "that, even for a partial file, and the real file would be lost. Quarantine it "
            "(`parqctl integrity --quarantine`) and compare its rows with the real file",
        )
    return finding(
        Severity.WARNING,
        "stray.temp",
        message,
        "never rename a temp file onto the real name; quarantine it "
        "(`parqctl quarantine add PATH --reason ...`) and compare its rows with the real file",
    )


def _temp_target(name: str) -> str | None:
    """The file a temp file was meant to become."""
    if TEMP_MARKER in name:
        return name.split(TEMP_MARKER, 1)[0].removeprefix(".")
    for marker in (".tmp-", ".tmp", ".partial"):
        if marker in name:
            return name.split(marker, 1)[0] or None
    return None


def _parquet_contents(path: Path) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_metadata(path).num_rows
    except (pa.ArrowException, OSError):
        return f"partial, not a complete Parquet file ({path.stat().st_size:,} bytes)"
    return f"a complete Parquet file with {rows:,} rows"


def _target_contents(path: Path) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.exists():
        return "does not exist"
    try:
        return f"holds {pq.read_metadata(path).num_rows:,} rows"
    except (pa.ArrowException, OSError):
        return "is unreadable"


def _pid_alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid)
