"""What an integrity check reports: findings (severity, file, what to do), and the summary
of the last full check that ``health`` and monitoring read without running one."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import MetadataError
from core.store.metadata import load_json
from core.store.workspace import STATE_DIR

LAST_REPORT = Path(STATE_DIR) / "integrity" / "last_report.json"


class Severity(enum.IntEnum):
    """``error``: the file (or routing) breaks the format, readers get it wrong or fail;
    ``warning``: worth a look, nothing is read wrong yet; ``info``: for the record."""

    INFO = 0
    WARNING = 1
    ERROR = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class Scope(enum.StrEnum):
    """What a finding is about. Only ``file`` findings can be fixed by quarantining."""

    FILE = "file"
    TICKER = "ticker"
    WORKSPACE = "workspace"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str  # stable, dotted: file.unreadable, rows.duplicate, metadata.no_data, ...
    path: str | None  # relative to the workspace root, /-separated
    message: str
    advice: str
    scope: Scope = Scope.FILE
    ticker: str | None = None
    interval: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.label,
            "code": self.code,
            "path": self.path,
            "message": self.message,
            "advice": self.advice,
            "scope": self.scope.value,
            "ticker": self.ticker,
            "interval": self.interval,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Finding:
        return cls(
            severity=Severity[str(raw["severity"]).upper()],
            code=str(raw["code"]),
            path=raw.get("path"),
            message=str(raw["message"]),
            advice=str(raw["advice"]),
            scope=Scope(raw.get("scope", Scope.FILE.value)),
            ticker=raw.get("ticker"),
            interval=raw.get("interval"),
        )


@dataclass(frozen=True)
class IntegritySummary:
    """The last full run, as saved for ``health`` and monitoring."""

    checked_at: float
    errors: int
    warnings: int
    infos: int
    open_errors: int
    deep: bool


def last_summary(root: Path) -> IntegritySummary | None:
    """The last full run's counts, or None if there was none (or its file is unreadable)."""
    path = root / LAST_REPORT
    if not path.exists():
        return None
    try:
        raw = load_json(path)
        counts = raw["counts"]
        return IntegritySummary(
            checked_at=float(raw["checked_at_ts"]),
            errors=int(counts["error"]),
            warnings=int(counts["warning"]),
            infos=int(counts["info"]),
            open_errors=int(raw["open_errors"]),
            deep=bool(raw["scope"]["deep"]),
        )
    except (MetadataError, KeyError, TypeError, ValueError):
        return None
