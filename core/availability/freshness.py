"""Is the collector still writing? Per interval, the newest bar against the last session
that should have one.

The newest bar of an interval is the latest bar time of its readable files in the file
index (core.availability.index: ``load_index(root, sessions=False)``, its ``interval``,
``venue``, ``max_date``, ``mtime_ns`` and ``error`` columns only). A session should have
bars once it has closed (exchange_calendars, through core.availability.session_cache);
the interval is as many sessions behind as there are closed sessions after its newest
bar's. At ``stalled_after_sessions`` (``[freshness]`` in .parqctl/config.toml) it is
stalled, and health says WARNING.

Sessions are whole: an intraday interval whose newest bar is at noon of the last session
is up to date here (the afternoon's missing bars are a gap, which core.availability.gaps
reports).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from core.availability.calendars import calendar_for_market, interval_minutes, time_zone
from core.availability.session_cache import cached_sessions
from core.store.routing import DEFAULT_VENUE

if TYPE_CHECKING:
    from pathlib import Path

    from core.config import Config
    from core.store.workspace import Workspace

# The last closed session is looked for this far back, so that one is found across any
# run of holidays.
LOOK_BACK_DAYS = 14
# The time zones of the default calendars: telling the time at the exchange then needs no
# exchange_calendars import (seconds); another calendar asks the library, once.
EXCHANGE_TIMEZONES = {"XNYS": "America/New_York", "XETR": "Europe/Berlin"}


@dataclass(frozen=True)
class IntervalFreshness:
    interval: str
    calendar: str
    newest_bar: datetime | None  # exchange-local wall time; None: no readable bars
    last_written: float | None  # the newest modification of its bar files (Unix time)
    last_session: date | None  # the last session closed at the time of the check
    sessions_behind: int  # closed sessions after the newest bar's session
    stalled: bool  # sessions_behind reached the threshold

    @property
    def daily(self) -> bool:
        return interval_minutes(self.interval) is None

    def newest_text(self) -> str:
        """The newest bar's day, and its time for an intraday interval."""
        if self.newest_bar is None:
            return "no bars"
        return self.newest_bar.strftime("%Y-%m-%d" if self.daily else "%Y-%m-%d %H:%M")

    def last_written_text(self) -> str:
        if self.last_written is None:
            return "never"
        return datetime.fromtimestamp(self.last_written).strftime("%Y-%m-%d %H:%M")

    def summary(self) -> str:
        """ "data as of 2026-12-04, up to date", or how far behind and since when."""
        if self.newest_bar is None:
            return "no readable bars yet"
        if not self.sessions_behind:
            return f"data as of {self.newest_text()}, up to date"
        plural = "s" if self.sessions_behind > 1 else ""
        return (
            f"{self.sessions_behind:,} session{plural} behind (newest bar {self.newest_text()}, "
            f"last closed session {self.last_session}): the collector has not written since "
            f"{self.last_written_text()}"
        )


@dataclass(frozen=True)
class Freshness:
    checked_at: float  # Unix time the sessions were counted to
    stalled_after_sessions: int
    intervals: list[IntervalFreshness]

    @property
    def stalled(self) -> list[IntervalFreshness]:
        return [iv for iv in self.intervals if iv.stalled]


@functools.cache
def exchange_timezone(calendar: str) -> ZoneInfo:
    name = EXCHANGE_TIMEZONES.get(calendar)
    if name is None:
        name = time_zone(calendar)
    return ZoneInfo(name)


def freshness(ws: Workspace, *, now: float) -> Freshness:
    """Per interval (and calendar, if its tickers trade on several), from the persisted
    index as it is: refresh it first (health's gap summary does)."""
    config = ws.config
    found: dict[tuple[str, str], tuple[datetime, int]] = {}
    for interval, market, bar, written_ns in _newest_per_market(ws.root):
        key = (interval, calendar_for_market(market, config.calendars))
        then = found.get(key)  # two markets on one calendar: the newest of both
        found[key] = (
            (bar, written_ns) if then is None else (max(bar, then[0]), max(written_ns, then[1]))
        )
    default_calendar = calendar_for_market(DEFAULT_VENUE.market, config.calendars)
    for interval in ws.intervals:
        if not any(iv == interval for iv, _ in found):
            found[(interval, default_calendar)] = (None, None)
    order = {interval: i for i, interval in enumerate(ws.intervals)}
    keys = sorted(found, key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))
    intervals = [
        _interval(ws, interval, calendar, *found[(interval, calendar)], now, config)
        for interval, calendar in keys
    ]
    return Freshness(now, config.stalled_after_sessions, intervals)


def _newest_per_market(root: Path) -> list[tuple[str, str, datetime, int]]:
    """(interval, market, newest bar, newest write in ns) of the files read without
    error: from the index's per-ticker summary (milliseconds), else from its records."""
    import polars as pl

    from core.availability.index import load_index, load_summary

    columns = ("interval", "venue", "max_date", "written_ns")
    summary = load_summary(root, columns)
    if summary is not None:
        frame = pl.DataFrame(
            {name: summary[name] for name in columns},
            schema={
                "interval": pl.String,
                "venue": pl.String,
                "max_date": pl.Int64,
                "written_ns": pl.Int64,
            },
        ).with_columns(pl.col("max_date").cast(pl.Datetime("ns")), mtime_ns="written_ns")
    else:
        frame = load_index(root, sessions=False).readable
    newest = (
        frame.filter(pl.col("max_date").is_not_null())
        .with_columns(
            market=pl.col("venue").str.split(":").list.first().fill_null(DEFAULT_VENUE.market)
        )
        .group_by("interval", "market")
        .agg(pl.col("max_date").max(), pl.col("mtime_ns").max())
    )
    return list(newest.iter_rows())


def _interval(
    ws: Workspace,
    interval: str,
    calendar: str,
    newest: datetime | None,
    mtime_ns: int | None,
    now: float,
    config: Config,
) -> IntervalFreshness:
    last_written = mtime_ns / 1e9 if mtime_ns is not None else None
    if newest is None:
        return IntervalFreshness(interval, calendar, None, last_written, None, 0, False)
    at_exchange = datetime.fromtimestamp(now, exchange_timezone(calendar)).replace(tzinfo=None)
    today = at_exchange.date()
    start = min(newest.date(), today - timedelta(days=LOOK_BACK_DAYS))
    table = cached_sessions(ws.root, calendar, start, today)
    closed = table.dates[table.closes <= np.datetime64(at_exchange, "ns")]
    last_session = closed[-1].astype(date) if len(closed) else None
    behind = int(np.count_nonzero(closed > np.datetime64(newest.date(), "D")))
    return IntervalFreshness(
        interval,
        calendar,
        newest,
        last_written,
        last_session,
        behind,
        behind >= config.stalled_after_sessions,
    )
