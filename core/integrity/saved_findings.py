"""The last full check's findings, saved under ``.parqctl`` so the console lists them on
open without checking again; grouping them for display; quarantining their errors.

The summary (``findings.LAST_REPORT``) keeps 200 findings per code for ``health``; this
file keeps every one, as Parquet: a workspace where each of 740k files has the same extra
column writes a few MB, not the hundreds a JSON list would take. With each finding's file
it keeps the (size, mtime_ns) it had when checked, so a quarantine from the saved list
moves a file only if it is still the one that was checked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import MetadataError
from core.integrity import quarantine
from core.integrity.findings import LAST_REPORT, Finding, Scope, Severity
from core.safety import atomic
from core.safety.atomic import confined, write_json
from core.safety.run_lock import RunLock
from core.store.metadata import load_json
from core.store.workspace import STATE_DIR

LAST_FINDINGS = Path(STATE_DIR) / "integrity" / "last_findings.parquet"
_CHECKED_AT = b"parqctl.checked_at"
_TEXT = ("severity", "code", "path", "message", "advice", "scope", "ticker", "interval")
_REPEATED = ["severity", "code", "message", "advice", "scope", "ticker", "interval"]
_SCHEMA = pa.schema(
    [
        *(pa.field(name, pa.string()) for name in _TEXT),
        pa.field("size", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        pa.field("quarantined", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class SavedFindings:
    """What the last full check found, and which of its files were quarantined since."""

    checked_at: float
    findings: list[Finding]
    checked_stats: dict[str, tuple[int, int]] = field(repr=False)
    quarantined: frozenset[str] = frozenset()

    def is_quarantined(self, finding: Finding) -> bool:
        return finding.path is not None and finding.path in self.quarantined

    @property
    def open_errors(self) -> int:
        return sum(
            f.severity is Severity.ERROR and not self.is_quarantined(f) for f in self.findings
        )

    def quarantinable(self) -> dict[str, list[Finding]]:
        """File-scoped error findings by path, not yet quarantined: what quarantine moves."""
        by_path: dict[str, list[Finding]] = {}
        for finding in self.findings:
            if (
                finding.severity is Severity.ERROR
                and finding.scope is Scope.FILE
                and finding.path
                and not self.is_quarantined(finding)
            ):
                by_path.setdefault(finding.path, []).append(finding)
        return by_path


@dataclass(frozen=True)
class FindingGroup:
    """Findings with the same code about the same ticker and interval (one a partition
    file, say), shown as one row with a count."""

    code: str
    ticker: str | None
    interval: str | None
    findings: tuple[Finding, ...]

    @property
    def severity(self) -> Severity:
        return max(f.severity for f in self.findings)

    @property
    def first(self) -> Finding:
        return self.findings[0]

    @property
    def key(self) -> str:
        return "\x1f".join((self.code, self.ticker or "", self.interval or ""))


def group_findings(findings: Iterable[Finding]) -> list[FindingGroup]:
    """Findings grouped by (code, ticker, interval), worst severity first, then by code,
    ticker and interval; within a group, by path."""
    groups: dict[tuple[str, str | None, str | None], list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.code, finding.ticker, finding.interval), []).append(finding)
    grouped = [
        FindingGroup(code, ticker, interval, tuple(sorted(items, key=lambda f: f.path or "")))
        for (code, ticker, interval), items in groups.items()
    ]
    grouped.sort(key=lambda g: (-g.severity, g.code, g.ticker or "", g.interval or ""))
    return grouped


def save(
    root: Path,
    findings: list[Finding],
    checked_at: float,
    checked_stats: dict[str, tuple[int, int]],
    quarantined: Iterable[str] = (),
) -> None:
    """Replace the saved findings atomically."""
    moved = set(quarantined)
    no_stat = (None, None)
    checked = [checked_stats.get(f.path or "", no_stat) for f in findings]
    columns: dict[str, list[Any]] = {
        "severity": [f.severity.label for f in findings],
        "code": [f.code for f in findings],
        "path": [f.path for f in findings],
        "message": [f.message for f in findings],
        "advice": [f.advice for f in findings],
        "scope": [f.scope.value for f in findings],
        "ticker": [f.ticker for f in findings],
        "interval": [f.interval for f in findings],
        "size": [size for size, _ in checked],
        "mtime_ns": [mtime_ns for _, mtime_ns in checked],
        "quarantined": [f.path in moved for f in findings],
    }
    table = pa.table(columns, schema=_SCHEMA).replace_schema_metadata(
        {_CHECKED_AT: repr(checked_at).encode()}
    )
    target = confined(root, LAST_FINDINGS)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def load(root: Path) -> SavedFindings | None:
    """The saved findings, or None when there are none or the file cannot be trusted (a
    link, not Parquet, the wrong columns): the console then offers to check again."""
    try:
        content = atomic.read_state_file(root, LAST_FINDINGS)
        if content is None:
            return None
        # Repeated text (codes, messages, advice, tickers) read as dictionaries and
        # decoded once per distinct value: 740k findings share a few hundred strings.
        table = pq.read_table(pa.BufferReader(content), read_dictionary=_REPEATED)
        checked_at = float((table.schema.metadata or {})[_CHECKED_AT])
        column = {name: _values(table.column(name)) for name in _SCHEMA.names}
        severities = {s.label: s for s in Severity}
        scopes = {s.value: s for s in Scope}
        findings = [
            Finding(
                severities[sev],
                str(code),
                path,
                str(message),
                str(advice),
                scopes[scope],
                ticker,
                interval,
            )
            for sev, code, path, message, advice, scope, ticker, interval in zip(
                *(column[name] for name in _TEXT), strict=True
            )
        ]
        stats, moved = {}, set()
        for path, size, mtime_ns, quarantined in zip(
            column["path"], column["size"], column["mtime_ns"], column["quarantined"], strict=True
        ):
            if path and size is not None and mtime_ns is not None:
                stats[path] = (int(size), int(mtime_ns))
            if path and quarantined:
                moved.add(path)
    except (OSError, pa.ArrowException, KeyError, TypeError, ValueError):
        return None
    return SavedFindings(checked_at, findings, stats, frozenset(moved))


def _values(column: pa.ChunkedArray) -> list[Any]:
    """A column as Python values; a dictionary column's repeated values are one object."""
    values: list[Any] = []
    for chunk in column.chunks:
        if pa.types.is_dictionary(chunk.type):
            decoded = chunk.dictionary.to_pylist()
            values += [None if i is None else decoded[i] for i in chunk.indices.to_pylist()]
        else:
            values += chunk.to_pylist()
    return values


def quarantine_checked(
    root: Path,
    by_path: dict[str, list[Finding]],
    checked_stats: dict[str, tuple[int, int]],
    *,
    lock: RunLock,
) -> list[dict[str, Any]]:
    """Move each file of ``by_path`` (its error findings) into quarantine (caller holds the
    lock). A file that changed or vanished since it was checked is left where it is and
    reported as skipped. Returns one record per file: path, codes, and id or skipped."""
    quarantine.reconcile(root, lock=lock)
    outcomes = []
    for path, findings in sorted(by_path.items()):
        outcome: dict[str, Any] = {"path": path, "codes": sorted({f.code for f in findings})}
        try:
            st = os.stat(root / path)
        except FileNotFoundError:
            outcomes.append({**outcome, "skipped": "it is gone"})
            continue
        if (st.st_size, st.st_mtime_ns) != checked_stats.get(path):
            outcomes.append({**outcome, "skipped": "it changed since it was checked"})
            continue
        reason = "integrity: " + "; ".join(f"{f.code}: {f.message}" for f in findings)
        entry = quarantine.add(root, root / path, reason, lock=lock, finding=findings[0].as_dict())
        outcomes.append({**outcome, "id": entry.id})
    return outcomes


def quarantine_errors(
    root: Path, saved: SavedFindings, *, lock: RunLock, paths: Iterable[str] | None = None
) -> tuple[SavedFindings, list[dict[str, Any]]]:
    """Quarantine the file of every open file-scoped error of the saved findings, or of
    those among ``paths`` (caller holds the lock); the saved findings and the summary
    ``health`` reads record the moves. Returns the findings as they now stand and one
    record per file."""
    by_path = saved.quarantinable()
    if paths is not None:
        wanted = set(paths)
        by_path = {path: found for path, found in by_path.items() if path in wanted}
    outcomes = quarantine_checked(root, by_path, saved.checked_stats, lock=lock)
    moved = [o for o in outcomes if "id" in o]
    if not moved:
        return saved, outcomes
    updated = replace(saved, quarantined=saved.quarantined | {o["path"] for o in moved})
    save(root, updated.findings, updated.checked_at, updated.checked_stats, updated.quarantined)
    _record_in_summary(root, updated, moved)
    return updated, outcomes


def _record_in_summary(root: Path, saved: SavedFindings, moved: list[dict[str, Any]]) -> None:
    """Add the moves to the summary of the same check, so ``health`` counts open errors
    without them; a summary of another check (or none) is left alone."""
    path = confined(root, LAST_REPORT)
    try:
        report = load_json(path)
        if float(report["checked_at_ts"]) != saved.checked_at:
            return
    except (MetadataError, KeyError, TypeError, ValueError):
        return
    report["quarantined"] = [*report.get("quarantined", []), *moved]
    report["open_errors"] = saved.open_errors
    write_json(path, report)
