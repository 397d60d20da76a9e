"""What health and monitoring need from availability: per interval, the tickers with gaps,
the sessions missing, and the recoverable sessions that expire within a few days; and the
few worst tickers, for an operator to start with.

It works from the file index (core.availability.index) only when one exists: the index's
hot months are refreshed (unchanged files are not opened), and when nothing changed the
summary saved from the same index today (core.availability.saved_gaps) is returned, so a
health check every few minutes stays cheap, and a workspace never indexed does not pay for a full build inside
``health`` (``parqctl availability`` or ``parqctl integrity`` builds it).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.availability.gaps import Gap, TickerAvailability
    from core.store.workspace import Workspace

EXPIRY_HORIZON_DAYS = 2
WORST_TICKERS = 10


@dataclass(frozen=True)
class IntervalGaps:
    interval: str
    tickers: int
    tickers_with_gaps: int
    missing_sessions: int
    lost_sessions: int  # past the retention window: never fetchable again
    expiring_sessions: int  # fetchable today, not any more within the horizon


@dataclass(frozen=True)
class WorstTicker:
    """One ticker's gaps in one interval, summed."""

    ticker: str
    interval: str
    missing_sessions: int
    recoverable_sessions: int  # still fetchable (never expiring, or within retention)
    expiring_sessions: int  # of those, the ones that leave the retention window soon
    recoverable_until: date | None  # the soonest-expiring gap's; None if none expires

    def rank(self) -> tuple:
        """Sessions about to expire first (soonest deadline first), then the most sessions
        still recoverable, then the most sessions missing."""
        urgent = self.expiring_sessions > 0
        until = self.recoverable_until or date.max
        return (
            not urgent,
            until if urgent else date.max,
            -self.recoverable_sessions,
            until,
            -self.missing_sessions,
            self.ticker,
            self.interval,
        )


@dataclass(frozen=True)
class GapWatch:
    today: date
    horizon_days: int
    intervals: list[IntervalGaps]
    worst: list[WorstTicker] = field(default_factory=list)  # the WORST_TICKERS first

    @property
    def expiring_sessions(self) -> int:
        return sum(iv.expiring_sessions for iv in self.intervals)


def gap_watch(
    ws: Workspace,
    *,
    today: date | None = None,
    horizon_days: int = EXPIRY_HORIZON_DAYS,
    reuse_saved: bool = True,
) -> GapWatch | None:
    """Gaps per interval from the refreshed index; None when there is no index yet.

    ``reuse_saved=False`` computes them even when nothing changed (the console's refresh
    in its child process, which replaces the summary it painted first)."""
    from core.availability import saved_gaps
    from core.availability.index_state import hot_unchanged, index_path

    root = ws.root
    if not index_path(root).exists():
        return None
    today = today or date.today()
    # The hot scan only, without loading the index: when it changed nothing, the summary
    # saved from this same index today is the answer.
    if reuse_saved and hot_unchanged(root):
        saved = saved_gaps.load(root, today)
        if saved is not None and saved.horizon_days == horizon_days:
            return saved
    from core.availability.gaps import availability  # (numpy, pyarrow: only when needed)
    from core.availability.index import refresh_index

    report = availability(ws, refresh_index(root), today=today)
    intervals, worst = [], []
    for name, iv in report.intervals.items():
        expiring = 0
        for ticker in iv.tickers:
            if not ticker.gaps:
                continue
            soon = sum(
                _expiring(root, ticker.calendar, gap, today, iv.retention_days, horizon_days)
                for gap in ticker.gaps
            )
            expiring += soon
            worst.append(_worst(name, ticker, soon))
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
    watch = GapWatch(
        today, horizon_days, intervals, heapq.nsmallest(WORST_TICKERS, worst, WorstTicker.rank)
    )
    saved_gaps.save(root, watch)
    return watch


def _worst(interval: str, ticker: TickerAvailability, expiring: int) -> WorstTicker:
    missing = ticker.missing_sessions
    deadlines = [g.recoverable_until for g in ticker.gaps if g.recoverable_until is not None]
    return WorstTicker(
        ticker=ticker.ticker,
        interval=interval,
        missing_sessions=missing,
        recoverable_sessions=missing - sum(g.lost_sessions for g in ticker.gaps),
        expiring_sessions=expiring,
        recoverable_until=min(deadlines, default=None),
    )


def _expiring(
    root: Path, calendar: str | None, gap: Gap, today: date, retention: int | None, horizon: int
) -> int:
    """Sessions of ``gap`` fetchable today (on or after today - retention) that fall out of
    the window within ``horizon`` days (before today + horizon - retention)."""
    from core.availability.session_cache import cached_sessions

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
