"""``parqctl backfill``: fetch the gaps Yahoo can still serve, most urgent first.

The gaps come from the availability engine (``core.availability.gaps``): maximal runs of missing
sessions between a ticker's first and last bar, each with the day it stops being
fetchable. A gap is asked for from the first session Yahoo still serves (the interval's
retention, and Yahoo's reach for one request, whichever is shorter); gaps already lost
are listed, not asked for; gaps inside a window Yahoo answered empty before are skipped
unless ``recheck``. The gaps of a ticker and interval are packed into as few requests as
the interval's window allows (``core.ingest.limits``), and the requests are ordered by
the soonest expiry among their gaps (gaps that never expire last). Only the bars on the
missing days are kept from an answer: the bars around them are stored already.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from core.availability.calendars import sessions
from core.availability.gaps import AvailabilityReport, availability
from core.availability.index import refresh_index
from core.ingest import confirmed_empty
from core.ingest.limits import limit_for
from core.ingest.pacing import Pacer
from core.ingest.runner import Options, Request, RunResult, Target, Unit, run
from core.ingest.yahoo import YahooSource
from core.jobs import ProgressCallback
from core.store.workspace import Workspace


@dataclass(frozen=True)
class SkippedGap:
    ticker: str
    interval: str
    start: date
    end: date
    sessions: int
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "ticker": self.ticker,
            "interval": self.interval,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "sessions": self.sessions,
            "why": self.why,
        }


@dataclass
class BackfillPlan:
    today: date
    requests: list[Request] = field(default_factory=list)  # to be made, in order
    left_out: list[Request] = field(default_factory=list)  # beyond --max-requests
    skipped: list[SkippedGap] = field(default_factory=list)
    missing_before: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def sessions(self) -> int:
        return sum(t.sessions for r in self.requests for t in r.targets or ())

    def as_dict(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "requests": [r.as_dict() for r in self.requests],
            "sessions": self.sessions,
            "left_out": [r.as_dict() for r in self.left_out],
            "skipped": [s.as_dict() for s in self.skipped],
        }


@dataclass
class TickerSummary:
    ticker: str
    interval: str
    requests: int
    asked_sessions: int
    rows_added: int
    confirmed_empty_sessions: int
    missing_before: int
    missing_after: int | None  # None when not measured (dry run)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class BackfillResult:
    plan: BackfillPlan
    run: RunResult
    summaries: list[TickerSummary]

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.run.as_dict(),
            "plan": self.plan.as_dict(),
            "tickers": [s.as_dict() for s in self.summaries],
        }


def plan_backfill(
    ws: Workspace,
    *,
    intervals: list[str] | None = None,
    tickers: list[str] | None = None,
    today: date | None = None,
    recheck: bool = False,
    max_requests: int | None = None,
) -> BackfillPlan:
    """The requests a backfill makes, from the availability of the workspace now."""
    today = today or date.today()
    index = refresh_index(ws.root)
    report = availability(ws, index, intervals=intervals, tickers=tickers, today=today)
    empty = [] if recheck else confirmed_empty.load(ws.root)
    plan = BackfillPlan(today)
    requests: list[Request] = []
    for interval, iv in report.intervals.items():
        limit = limit_for(interval)
        retention = ws.config.retention_days.get(interval)
        earliest = [d for d in (limit.earliest(today),) if d is not None]
        if retention is not None:
            earliest.append(today - timedelta(days=retention))
        first_day = max(earliest) if earliest else None
        for ticker in iv.tickers:
            if not ticker.gaps:
                continue
            plan.missing_before[(ticker.ticker, interval)] = ticker.missing_sessions
            targets = []
            for gap in ticker.gaps:
                start = gap.start if first_day is None else max(gap.start, first_day)
                if start > gap.end:
                    plan.skipped.append(
                        SkippedGap(
                            ticker.ticker, interval, gap.start, gap.end, gap.sessions, "lost"
                        )
                    )
                    continue
                count = gap.sessions
                if start != gap.start:
                    count = len(sessions(ticker.calendar or "XNYS", start, gap.end))
                    lost = gap.sessions - count
                    plan.skipped.append(
                        SkippedGap(
                            ticker.ticker,
                            interval,
                            gap.start,
                            start - timedelta(days=1),
                            lost,
                            "lost",
                        )
                    )
                known = confirmed_empty.covering(empty, ticker.ticker, interval, start, gap.end)
                if known is not None:
                    plan.skipped.append(
                        SkippedGap(
                            ticker.ticker,
                            interval,
                            start,
                            gap.end,
                            count,
                            f"confirmed empty (asked {known.asked}; --recheck asks again)",
                        )
                    )
                    continue
                targets.append(Target(start, gap.end, count, gap.recoverable_until))
            requests += _pack(ticker.ticker, interval, targets, ticker.calendar or "XNYS")
    requests.sort(key=lambda r: (r.urgency or date.max, r.interval, r.ticker, r.start))
    if max_requests is not None:
        requests, plan.left_out = requests[:max_requests], requests[max_requests:]
    plan.requests = requests
    return plan


def _pack(ticker: str, interval: str, targets: list[Target], calendar: str) -> list[Request]:
    """Targets (in date order) packed into as few request windows as the interval allows."""
    size = limit_for(interval).window_days
    packed: list[list[Target]] = []
    for target in sorted(targets, key=lambda t: t.start):
        current = packed[-1] if packed else None
        if current is not None and (
            size is None or (target.end + timedelta(days=1) - current[0].start).days <= size
        ):
            current.append(target)
        elif size is not None and (target.end - target.start).days + 1 > size:
            packed += _split(target, size, calendar)
        else:
            packed.append([target])
    return [
        Request(ticker, interval, group[0].start, group[-1].end + timedelta(days=1), tuple(group))
        for group in packed
    ]


def _split(target: Target, size: int, calendar: str) -> list[list[Target]]:
    """A gap longer than one request window, cut into windows (sessions counted again)."""
    parts = []
    start = target.start
    while start <= target.end:
        end = min(target.end, start + timedelta(days=size - 1))
        count = len(sessions(calendar, start, end))
        parts.append([Target(start, end, count, target.recoverable_until)])
        start = end + timedelta(days=1)
    return parts


def units_of(plan: BackfillPlan) -> list[Unit]:
    """One unit per request: each window is written as soon as it is answered."""
    return [Unit(r.ticker, r.interval, [r]) for r in plan.requests]


def backfill(
    ws: Workspace,
    plan: BackfillPlan,
    source: YahooSource,
    pacer: Pacer,
    *,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> BackfillResult:
    """Make the plan's requests, write what they bring, refresh the index and measure the
    gaps again (not in a dry run)."""
    options = Options(
        "parqctl backfill",
        action="ingest.backfill",
        dry_run=dry_run,
        record_empty=not dry_run,
        today=plan.today,
    )
    result = run(ws, units_of(plan), source, pacer, options, progress=progress)
    after: AvailabilityReport | None = None
    touched = sorted({(u.ticker, u.interval) for u in result.units})
    if not dry_run and touched:
        index = refresh_index(ws.root)
        after = availability(
            Workspace(ws.root),
            index,
            intervals=sorted({iv for _, iv in touched}),
            tickers=sorted({t for t, _ in touched}),
            today=plan.today,
        )
    return BackfillResult(plan, result, _summaries(plan, result, after))


def _summaries(
    plan: BackfillPlan, result: RunResult, after: AvailabilityReport | None
) -> list[TickerSummary]:
    rows: dict[tuple[str, str], TickerSummary] = {}
    asked = {id(u): r for u, r in zip(result.units, plan.requests, strict=False)}
    for unit in result.units:
        key = (unit.ticker, unit.interval)
        summary = rows.get(key)
        if summary is None:
            summary = rows[key] = TickerSummary(
                unit.ticker, unit.interval, 0, 0, 0, 0, plan.missing_before.get(key, 0), None
            )
        request = asked.get(id(unit))
        summary.requests += unit.requests
        if unit.requests and request is not None:
            summary.asked_sessions += sum(t.sessions for t in request.targets or ())
        summary.rows_added += unit.added if not result.dry_run else 0
        summary.confirmed_empty_sessions += sum(t.sessions for t in unit.empty)
    if after is not None:
        for (ticker, interval), summary in rows.items():
            iv = after.intervals.get(interval)
            found = [t for t in iv.tickers if t.ticker == ticker] if iv else []
            summary.missing_after = found[0].missing_sessions if found else 0
    return list(rows.values())  # in the order the requests went out: most urgent first
