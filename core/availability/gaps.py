"""Gaps: expected sessions without bars, as maximal runs, with their recoverability.

For each (ticker, interval) the expected sessions are the calendar's sessions from the
first bar to the last (or from the window's start, when counting before the first bar),
inside the ``since``/``until`` window. A session with no bar is missing; an intraday
session with fewer bars than the session's length allows (early closes counted) is
partial. Weekends, holidays and the hours after an early close are never gaps.

A gap can still be fetched while its sessions are inside the interval's retention window
(``retention_days`` in the config, Yahoo's limits by default): ``recoverable_until`` is
the last day its newest session can be fetched, ``lost_sessions`` those already gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np

from core.availability.coverage import (
    CalendarBlock,
    CoverageGrid,
    UnreadableFile,
    coverage_grid,
    missing_cells,
    present_in,
)
from core.availability.index import FileIndex, RefreshStats
from core.errors import ParqctlError
from core.store.layout import validate_interval, validate_ticker
from core.store.workspace import Workspace


@dataclass(frozen=True, slots=True)
class Gap:
    start: date
    end: date
    sessions: int
    lost_sessions: int  # sessions older than the retention window: never fetchable again
    recoverable_until: date | None  # None when lost, or when the interval never expires

    @property
    def status(self) -> str:
        if self.lost_sessions == 0:
            return "recoverable"
        return "lost" if self.lost_sessions == self.sessions else "partly lost"

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "sessions": self.sessions,
            "recoverable_until": _iso(self.recoverable_until),
            "lost_sessions": self.lost_sessions,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class PartialSession:
    session: date
    bars: int
    expected: int


@dataclass(slots=True)  # thousands are made per report
class TickerAvailability:
    ticker: str
    calendar: str | None
    source: str | None
    first: date | None  # day of the first bar
    last: date | None  # day of the last bar
    expected_sessions: int = 0
    present_sessions: int = 0
    gaps: list[Gap] = field(default_factory=list)
    partial: list[PartialSession] = field(default_factory=list)
    off_session_days: list[date] = field(default_factory=list)  # bars on non-session days
    unreadable: list[UnreadableFile] = field(default_factory=list)

    @property
    def missing_sessions(self) -> int:
        return sum(g.sessions for g in self.gaps)

    @property
    def complete(self) -> bool:
        return self.first is not None and not (self.gaps or self.partial or self.unreadable)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ticker": self.ticker,
            "calendar": self.calendar,
            "source": self.source,
            "first": _iso(self.first),
            "last": _iso(self.last),
            "expected_sessions": self.expected_sessions,
            "present_sessions": self.present_sessions,
            "partial_sessions": len(self.partial),
            "missing_sessions": self.missing_sessions,
            "gaps": [g.as_dict() for g in self.gaps],
            "partial": [
                {"session": p.session.isoformat(), "bars": p.bars, "expected": p.expected}
                for p in self.partial
            ],
            "off_session_days": [d.isoformat() for d in self.off_session_days],
            "unreadable_files": [{"path": u.path, "error": u.error} for u in self.unreadable],
        }


@dataclass
class IntervalAvailability:
    interval: str
    retention_days: int | None
    tickers: list[TickerAvailability]
    without_bars: list[str]  # named or registered for the interval, but no bars on disk

    @property
    def calendars(self) -> list[str]:
        return sorted({t.calendar for t in self.tickers if t.calendar})

    @property
    def complete(self) -> int:
        return sum(t.complete for t in self.tickers)

    @property
    def with_gaps(self) -> int:
        return sum(bool(t.gaps) for t in self.tickers)

    @property
    def missing_sessions(self) -> int:
        return sum(t.missing_sessions for t in self.tickers)

    @property
    def lost_sessions(self) -> int:
        return sum(g.lost_sessions for t in self.tickers for g in t.gaps)

    @property
    def partial_sessions(self) -> int:
        return sum(len(t.partial) for t in self.tickers)

    @property
    def unreadable_files(self) -> int:
        return sum(len(t.unreadable) for t in self.tickers)

    def as_dict(self) -> dict[str, Any]:
        calendars = self.calendars
        return {
            "calendar": calendars[0] if len(calendars) == 1 else None,
            "calendars": calendars,
            "retention_days": self.retention_days,
            "summary": {
                "tickers": len(self.tickers),
                "complete": self.complete,
                "with_gaps": self.with_gaps,
                "missing_sessions": self.missing_sessions,
                "recoverable_sessions": self.missing_sessions - self.lost_sessions,
                "lost_sessions": self.lost_sessions,
                "partial_sessions": self.partial_sessions,
                "unreadable_files": self.unreadable_files,
                "without_bars": len(self.without_bars),
            },
            "tickers": [t.as_dict() for t in self.tickers],
            "without_bars": self.without_bars,
        }


@dataclass
class AvailabilityReport:
    root: str
    today: date
    since: date | None
    until: date | None
    before_first: bool
    intervals: dict[str, IntervalAvailability]
    index: RefreshStats

    @property
    def clean(self) -> bool:
        return all(
            iv.complete == len(iv.tickers) and not iv.without_bars for iv in self.intervals.values()
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "workspace": self.root,
            "today": self.today.isoformat(),
            "since": _iso(self.since),
            "until": _iso(self.until),
            "before_first": self.before_first,
            "intervals": {name: iv.as_dict() for name, iv in self.intervals.items()},
        }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _dates(values: np.ndarray) -> list[date]:
    return values.astype("datetime64[D]").astype(date).tolist()


@dataclass(frozen=True)
class Window:
    """Which sessions count: ``since``/``until`` bound them; ``before_first`` counts the
    sessions from the window's start (default: the interval's earliest bar) before a
    ticker's first bar as missing."""

    since: date | None = None
    until: date | None = None
    before_first: bool = False


def expected_range(block: CalendarBlock, window: Window) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Per ticker the first and last expected session (lo > hi: none), and the window's
    sessions [first, stop) shared by all."""
    n = len(block.dates)
    first = 0 if window.since is None else int(np.searchsorted(block.dates, _d(window.since)))
    stop = (
        n
        if window.until is None
        else int(np.searchsorted(block.dates, _d(window.until), side="right"))
    )
    lo = np.full(len(block.lo), first) if window.before_first else np.maximum(block.lo, first)
    return lo, np.minimum(block.hi, stop - 1), first, stop


def _d(day: date) -> np.datetime64:
    return np.datetime64(day, "D")


def runs(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of consecutive columns in row-major (row, column) cells:
    (row, first column, last column) per run."""
    if not len(rows):
        return rows, cols, cols
    new = np.concatenate(([True], (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1] + 1)))
    begins = np.flatnonzero(new)
    last = np.append(begins[1:], len(rows)) - 1
    return rows[begins], cols[begins], cols[last]


def _block_availability(
    block: CalendarBlock,
    window: Window,
    today: date,
    retention_days: int | None,
) -> list[TickerAvailability]:
    lo, hi, first, stop = expected_range(block, window)
    present = present_in(block, first, stop)
    rows, starts, ends = runs(*missing_cells(block, lo, hi, present))

    if retention_days is None:
        cutoff = None
        lost = np.zeros(len(rows), dtype=np.int64)
    else:
        cutoff = today - timedelta(days=retention_days)
        first_kept = int(np.searchsorted(block.dates, _d(cutoff)))
        lost = np.clip(first_kept - starts, 0, ends - starts + 1)
    gap_starts, gap_ends = _dates(block.dates[starts]), _dates(block.dates[ends])
    gaps: list[list[Gap]] = [[] for _ in block.tickers]
    for i, row in enumerate(rows.tolist()):
        end = gap_ends[i]
        until = None if cutoff is None or end < cutoff else end + timedelta(days=retention_days)
        gaps[row].append(Gap(gap_starts[i], end, int(ends[i] - starts[i] + 1), int(lost[i]), until))

    partials: list[list[PartialSession]] = [[] for _ in block.tickers]
    if block.expected[first:stop].max(initial=0) > 1:  # intraday: sessions can be partial
        counts, expected = block.counts[:, first:stop], block.expected[first:stop]
        p_rows, p_cols = np.nonzero((counts > 0) & (counts < expected))
        p_days = _dates(block.dates[first + p_cols])
        for row, col, day in zip(p_rows.tolist(), p_cols.tolist(), p_days, strict=True):
            partials[row].append(PartialSession(day, int(counts[row, col]), int(expected[col])))
    off: list[list[date]] = [[] for _ in block.tickers]
    in_window = np.ones(len(block.off_days), dtype=bool)
    if window.since is not None:
        in_window &= block.off_days >= _d(window.since)
    if window.until is not None:
        in_window &= block.off_days <= _d(window.until)
    off_rows, off_days = block.off_rows[in_window], block.off_days[in_window]
    for row, day in zip(off_rows.tolist(), _dates(off_days), strict=True):
        off[row].append(day)

    expected_sessions = np.maximum(hi - lo + 1, 0).tolist()
    present_sessions = present.tolist()
    firsts, lasts = _dates(block.first), _dates(block.last)
    return [
        TickerAvailability(
            ticker=ticker,
            calendar=block.calendar,
            source=block.sources[i],
            first=firsts[i],
            last=lasts[i],
            expected_sessions=expected_sessions[i],
            present_sessions=present_sessions[i],
            gaps=gaps[i],
            partial=partials[i],
            off_session_days=off[i],
        )
        for i, ticker in enumerate(block.tickers)
    ]


def interval_availability(
    grid: CoverageGrid,
    window: Window,
    today: date,
    retention_days: int | None,
    registered: Iterable[str] = (),
) -> IntervalAvailability:
    """Gaps of every ticker in the grid; ``registered`` names tickers expected to have bars."""
    tickers = [
        t
        for block in grid.blocks
        for t in _block_availability(block, window, today, retention_days)
    ]
    by_name = {t.ticker: t for t in tickers}
    for name, files in grid.unreadable.items():
        entry = by_name.get(name)
        if entry is None:
            calendar, source = grid.calendars.get(name), grid.sources.get(name)
            entry = by_name[name] = TickerAvailability(name, calendar, source, None, None)
            tickers.append(entry)
        entry.unreadable = files
    # Registered but absent, or with files that hold no bars; unreadable ones are listed above.
    without = (set(registered) | set(grid.without_bars)) - by_name.keys()
    tickers.sort(key=lambda t: t.ticker)
    return IntervalAvailability(grid.interval, retention_days, tickers, sorted(without))


def _select(grid: CoverageGrid, names: set[str]) -> CoverageGrid:
    """The grid restricted to the named tickers."""
    blocks = []
    for block in grid.blocks:
        rows = np.array([i for i, t in enumerate(block.tickers) if t in names], dtype=np.int64)
        if not len(rows):
            continue
        keep_off = np.isin(block.off_rows, rows)
        renumber = np.full(len(block.tickers), -1, dtype=np.int64)
        renumber[rows] = np.arange(len(rows))
        blocks.append(
            CalendarBlock(
                calendar=block.calendar,
                dates=block.dates,
                expected=block.expected,
                tickers=[block.tickers[i] for i in rows],
                sources=[block.sources[i] for i in rows],
                counts=block.counts[rows],
                first=block.first[rows],
                last=block.last[rows],
                lo=block.lo[rows],
                hi=block.hi[rows],
                off_rows=renumber[block.off_rows[keep_off]],
                off_days=block.off_days[keep_off],
            )
        )
    return CoverageGrid(
        grid.interval,
        blocks,
        {t: f for t, f in grid.unreadable.items() if t in names},
        [t for t in grid.without_bars if t in names],
        {t: s for t, s in grid.sources.items() if t in names},
        {t: c for t, c in grid.calendars.items() if t in names},
    )


def availability(
    ws: Workspace,
    index: FileIndex,
    *,
    intervals: list[str] | None = None,
    tickers: list[str] | None = None,
    window: Window = Window(),
    today: date | None = None,
) -> AvailabilityReport:
    """Gaps per interval for every ticker (or the named ones) from a file index.

    Intervals default to those with bar files and those in ``intervals.json``.
    A named ticker found nowhere (no files, not in tickers.json) is an error.
    """
    today = today or date.today()
    if window.since and window.until and window.since > window.until:
        raise ParqctlError(
            f"--since {window.since} is after --until {window.until}", "swap the dates"
        )
    names = {validate_ticker(t) for t in tickers} if tickers else None
    chosen = (
        [validate_interval(iv) for iv in intervals]
        if intervals
        else sorted(set(index.intervals()) | set(ws.intervals), key=_interval_order)
    )
    if names:
        known = set(index.files["ticker"].to_list()) | set(ws.tickers.names())
        unknown = sorted(names - known)
        if unknown:
            raise ParqctlError(
                f"no bar files and no tickers.json entry for {', '.join(unknown)}",
                "check the spelling; tickers are Yahoo symbols such as BRK-B",
            )
    result = {}
    for interval in chosen:
        grid = coverage_grid(
            ws, index, interval, start=window.since if window.before_first else None
        )
        registered = registered_for(ws, interval)
        if names is not None:
            grid = _select(grid, names)
            registered = sorted(names.intersection(registered))
        retention = ws.config.retention_days.get(interval)
        result[interval] = interval_availability(grid, window, today, retention, registered)
    return AvailabilityReport(
        str(ws.root),
        today,
        window.since,
        window.until,
        window.before_first,
        result,
        index.stats,
    )


def registered_for(ws: Workspace, interval: str) -> list[str]:
    """Tickers whose tickers.json entry lists the interval (read raw: 5,000 entries)."""
    return [
        name for name, entry in ws.tickers.raw.items() if interval in (entry.get("intervals") or {})
    ]


_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440, "wk": 10080, "mo": 43200}


def _interval_order(interval: str) -> int:
    """Daily before hourly before minutes: longest first."""
    number = int("".join(c for c in interval if c.isdigit()) or 1)
    unit = interval.lstrip("0123456789")
    return -number * _UNIT_MINUTES.get(unit, 1)
