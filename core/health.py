"""The one-screen summary an operator asks for first, with a monitoring-style verdict."""

from __future__ import annotations

import dataclasses
import enum
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import run_lock
from core.disk import DiskStatus, Level, disk_status
from core.workspace import DatasetInventory, Workspace, inventory


class Verdict(enum.IntEnum):
    """Exit codes of the monitoring plugin convention."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Problem:
    verdict: Verdict
    text: str


@dataclass
class HealthReport:
    root: Path
    tickers: int
    intervals: list[str]
    datasets: list[DatasetInventory]
    storage_modes: dict[str, dict[str, int]]  # interval -> {"legacy": n, "partitioned": n}
    lock: run_lock.LockStatus
    disk: DiskStatus
    problems: list[Problem] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return max((p.verdict for p in self.problems), default=Verdict.OK)

    def as_dict(self) -> dict[str, Any]:
        return {
            "workspace": str(self.root),
            "verdict": self.verdict.name,
            "problems": [{"verdict": p.verdict.name, "text": p.text} for p in self.problems],
            "tickers": self.tickers,
            "intervals": self.intervals,
            "datasets": [
                {
                    "label": inv.dataset.label,
                    "kind": inv.dataset.kind,
                    "interval": inv.dataset.interval,
                    "venue": inv.dataset.venue.id if inv.dataset.venue else None,
                    "path": str(inv.dataset.path.relative_to(self.root)),
                    "tickers": len(inv.groups),
                    "files": inv.files,
                    "bytes": inv.bytes,
                    "stray_files": [str(p.relative_to(self.root)) for p in inv.stray_files],
                }
                for inv in self.datasets
            ],
            "storage_modes": self.storage_modes,
            "lock": lock_as_dict(self.lock),
            "disk": {
                "path": str(self.disk.path),
                "total": self.disk.total,
                "used": self.disk.used,
                "free": self.disk.free,
                "percent_used": round(self.disk.percent_used, 2),
                "level": self.disk.level.name,
                "watermarks": vars(self.disk.watermarks),
            },
        }


def lock_as_dict(status: run_lock.LockStatus) -> dict[str, Any]:
    fields = dataclasses.asdict(status)
    return {k: (v.name if isinstance(v, enum.Enum) else v) for k, v in fields.items()}


def storage_modes(ws: Workspace) -> dict[str, dict[str, int]]:
    """Per interval, how many tickers the collector routes to each layout."""
    modes: dict[str, Counter[str]] = {iv: Counter() for iv in ws.intervals}
    for entry in ws.tickers.entries():
        for interval in entry.interval_names():
            block = entry.storage(interval)
            mode = block.mode if block else "legacy"
            modes.setdefault(interval, Counter())[mode] += 1
    return {iv: dict(counts) for iv, counts in modes.items()}


_LOCK_PROBLEMS = {
    run_lock.LockState.STALE: Verdict.WARNING,
    run_lock.LockState.UNKNOWN: Verdict.WARNING,
}
_DISK_PROBLEMS = {Level.WARN: Verdict.WARNING, Level.CRITICAL: Verdict.CRITICAL}


def health_report(ws: Workspace) -> HealthReport:
    """Gather the summary; metadata errors propagate (the caller reports UNKNOWN)."""
    ws.load_all_metadata()
    datasets = [inventory(d) for d in ws.datasets()]
    report = HealthReport(
        root=ws.root,
        tickers=len(ws.tickers),
        intervals=list(ws.intervals),
        datasets=datasets,
        storage_modes=storage_modes(ws),
        lock=run_lock.inspect(ws.root),
        disk=disk_status(ws.root, ws.config.watermarks),
    )
    if report.lock.state in _LOCK_PROBLEMS:
        report.problems.append(
            Problem(_LOCK_PROBLEMS[report.lock.state], f"run lock: {report.lock.reason}")
        )
    level = report.disk.level
    if level != Level.OK:
        verdict = _DISK_PROBLEMS.get(level, Verdict.CRITICAL)
        report.problems.append(
            Problem(
                verdict,
                f"disk {report.disk.percent_used:.1f}% used: {level.name} watermark reached",
            )
        )
    stray = sum(len(inv.stray_files) for inv in datasets)
    if stray:
        report.problems.append(
            Problem(Verdict.WARNING, f"{stray} stray temp or partial file(s) in the data tree")
        )
    if not datasets:
        report.problems.append(Problem(Verdict.WARNING, "no bar datasets found under data/"))
    return report
