"""What health and monitoring need from availability: per interval, the tickers with gaps,
the sessions missing, and the recoverable sessions that expire within a few days.

It works from the file index (core.index) only when one exists: the index is refreshed
incrementally (unchanged files are not opened), so a health check every few minutes
stays cheap, and a workspace never indexed does not pay for a full build inside
``health`` (``parqctl availability`` or ``parqctl integrity`` builds it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.gaps import Gap
    from core.workspace import Workspace

EXPIRY_HORIZON_DAYS = 2


@dataclass(frozen=True)
class IntervalGaps:
    interval: str
    tickers: int
    tickers_with_gaps: int
    missing_sessions: int
    lost_sessions: int  # past the retention window: never fetchable again
    expiring_sessions: int  # fetchable today, not any more within the horizon


@dataclass(frozen=True)
class GapWatch:
    today: date
    horizon_days: int
    intervals: list[IntervalGaps]

    @property
    def expiring_sessions(self) -> int:
        return sum(iv.expiring_sessions for iv in self.intervals)


def gap_watch(
    ws: Workspace, *, today: date | None = None, horizon_days: int = EXPIRY_HORIZON_DAYS
) -> GapWatch | None:
    """Gaps per interval from the refreshed index; None when there is no index yet."""
    from core.gaps import availability
    from core.index import index_path, refresh_index

    root = ws.root
    if not index_path(root).exists():
        return None
    today = today or date.today()
    report = availability(ws, refresh_index(root), today=today)
    intervals = []
    for name, iv in report.intervals.items():
        expiring = sum(
            _expiring(root, ticker.calendar, gap, today, iv.retention_days, horizon_days)
            for ticker in iv.tickers
            for gap in ticker.gaps
        )
        intervals.append(
            IntervalGaps(
                interval=name,
                tickers=len(iv.tickers),
                tickers_with_gaps=iv.with_gaps,
                missing_sessions=iv.missing_sessions,
                lost_sessions=iv.lost_sessions,
                expiring_sessions=expiring,
            )
        )
    return GapWatch(today, horizon_days, intervals)


def _expiring(
    root: Path, calendar: str | None, gap: Gap, today: date, retention: int | None, horizon: int
) -> int:
    """Sessions of ``gap`` fetchable today (on or after today - retention) that fall out of
    the window within ``horizon`` days (before today + horizon - retention)."""
    from core.session_cache import cached_sessions

    recoverable = gap.sessions - gap.lost_sessions
    if retention is None or recoverable == 0 or calendar is None:
        return 0
    kept_from = today - timedelta(days=retention)
    kept_later_from = kept_from + timedelta(days=horizon)
    if gap.start >= kept_later_from:
        return 0
    if gap.end < kept_later_from:
        return recoverable
    first = max(gap.start, kept_from)
    return len(cached_sessions(root, calendar, first, kept_later_from - timedelta(days=1)).dates)
