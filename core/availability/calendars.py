"""Trading sessions per venue from exchange_calendars, as exchange-local naive times.

The collector stores bar times as naive exchange-local wall time, so sessions are given
the same way: a session's calendar date, its open and its close (early closes included).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date

import numpy as np

from core.config import DEFAULT_VENUE_CALENDARS
from core.errors import ParqctlError

INTRADAY_MINUTES = {"1m": 1, "2m": 2, "5m": 5, "15m": 15, "30m": 30, "60m": 60, "90m": 90, "1h": 60}


@dataclass(frozen=True)
class SessionTable:
    """Sessions of one calendar between two dates, as parallel numpy arrays."""

    calendar: str
    dates: np.ndarray  # datetime64[D]
    opens: np.ndarray  # datetime64[ns], exchange-local naive
    closes: np.ndarray  # datetime64[ns], exchange-local naive

    def __len__(self) -> int:
        return len(self.dates)

    def bars_per_session(self, interval: str) -> np.ndarray:
        """Bars Yahoo gives for each session at ``interval`` (1 for daily and longer)."""
        minutes = INTRADAY_MINUTES.get(interval)
        if minutes is None:
            return np.ones(len(self.dates), dtype=np.int64)
        length = (self.closes - self.opens).astype("timedelta64[m]").astype(np.int64)
        return np.ceil(length / minutes).astype(np.int64)


def calendar_for_market(market: str, overrides: dict[str, str] | None = None) -> str:
    mapping = {**DEFAULT_VENUE_CALENDARS, **(overrides or {})}
    try:
        return mapping[market.lower()]
    except KeyError:
        raise ParqctlError(
            f"no trading calendar known for market {market!r}",
            "name one in .parqctl/config.toml under [calendars]",
        ) from None


@functools.lru_cache(maxsize=16)
def _calendar(name: str, start_year: int, end_year: int):
    import exchange_calendars as xcals

    try:
        return xcals.get_calendar(name, start=f"{start_year}-01-01", end=f"{end_year}-12-31")
    except xcals.errors.InvalidCalendarName:
        raise ParqctlError(
            f"unknown exchange calendar {name!r}", "use an exchange_calendars code such as XNYS"
        ) from None


def sessions(calendar: str, start: date, end: date) -> SessionTable:
    """Sessions with ``start <= date <= end``; explicit bounds, so old history works.

    Calendars are built for whole years and cached, so nearby queries share one build.
    """
    if end < start:
        return SessionTable(
            calendar, *(np.array([], dtype=t) for t in ("M8[D]", "M8[ns]", "M8[ns]"))
        )
    cal = _calendar(calendar, start.year, max(end.year, start.year))
    schedule = cal.schedule.loc[start.isoformat() : end.isoformat()]
    tz = cal.tz
    opens = schedule["open"].dt.tz_convert(tz).dt.tz_localize(None)
    closes = schedule["close"].dt.tz_convert(tz).dt.tz_localize(None)
    return SessionTable(
        calendar=calendar,
        dates=schedule.index.to_numpy().astype("datetime64[D]"),
        opens=opens.to_numpy().astype("datetime64[ns]"),
        closes=closes.to_numpy().astype("datetime64[ns]"),
    )


def interval_minutes(interval: str) -> int | None:
    """Minutes per bar of an intraday interval; None for daily and longer."""
    return INTRADAY_MINUTES.get(interval)


def time_zone(calendar: str) -> str:
    """The IANA time zone of a calendar's exchange (builds the calendar: seconds, once)."""
    year = date.today().year
    return str(_calendar(calendar, year, year).tz)
