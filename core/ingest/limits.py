"""What one request to Yahoo may ask for, per interval.

Yahoo serves 1m bars in windows of at most 7 days and only within the last 30 days;
2m to 90m within the last 60 days; 60m and 1h within the last 730; daily and longer
bars without limit. A request window is ``[start, end)`` in days, exchange-local.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class RequestLimit:
    window_days: int | None  # the longest window one request may cover; None: no limit
    reach_days: int | None  # how many days back Yahoo serves the interval; None: no limit

    def earliest(self, today: date) -> date | None:
        """The first day a request may start on."""
        return None if self.reach_days is None else today - timedelta(days=self.reach_days)


_MINUTES_60 = RequestLimit(60, 60)
LIMITS: dict[str, RequestLimit] = {
    "1m": RequestLimit(7, 30),
    "2m": _MINUTES_60,
    "5m": _MINUTES_60,
    "15m": _MINUTES_60,
    "30m": _MINUTES_60,
    "90m": _MINUTES_60,
    "60m": RequestLimit(730, 730),
    "1h": RequestLimit(730, 730),
}
UNLIMITED = RequestLimit(None, None)


def limit_for(interval: str) -> RequestLimit:
    return LIMITS.get(interval, UNLIMITED)


def split_window(start: date, end: date, interval: str) -> list[tuple[date, date]]:
    """``[start, end)`` cut into as few request windows as the interval allows."""
    if end <= start:
        return []
    size = limit_for(interval).window_days
    if size is None:
        return [(start, end)]
    windows = []
    lo = start
    while lo < end:
        hi = min(end, lo + timedelta(days=size))
        windows.append((lo, hi))
        lo = hi
    return windows
