"""Hand-built workspaces with bars on real exchange sessions, for the availability tests.

November and December 2025 on XNYS: Thanksgiving 2025-11-27 is closed, 2025-11-28 closes
at 13:00 (4 hourly bars instead of 7), Christmas Eve 2025-12-24 closes at 13:00, and
Christmas 2025-12-25 is closed.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
from conftest import ticker_entry, write_bars, write_tickers

from core.availability.calendars import sessions
from core.safety.atomic import write_json
from core.store.layout import Venue, partition_dataset_dir, partition_file

THANKSGIVING = date(2025, 11, 27)
EARLY_CLOSE = date(2025, 11, 28)
CHRISTMAS_EVE = date(2025, 12, 24)
CHRISTMAS = date(2025, 12, 25)


def session_days(start: date, end: date, calendar: str = "XNYS", skip=()) -> list[date]:
    """The calendar's sessions from start to end, without those in ``skip``."""
    days = sessions(calendar, start, end).dates.astype(date).tolist()
    skipped = set(skip)
    return [d for d in days if d not in skipped]


def daily(days: list[date]) -> list[datetime]:
    return [datetime(d.year, d.month, d.day) for d in days]


def hourly(days: list[date], calendar: str = "XNYS", cut: dict[date, int] | None = None):
    """Hourly bar times from each session's open; ``cut`` keeps fewer bars on some days."""
    if not days:
        return []
    table = sessions(calendar, min(days), max(days))
    per_session = dict(
        zip(table.dates.astype(date).tolist(), table.bars_per_session("1h"), strict=True)
    )
    opens = dict(zip(table.dates.astype(date).tolist(), table.opens, strict=True))
    times = []
    for day in days:
        count = (cut or {}).get(day, int(per_session.get(day, 7)))
        start = opens.get(day, np.datetime64(datetime(day.year, day.month, day.day, 9, 30)))
        start = start.astype("datetime64[us]").astype(datetime)
        times += [start + timedelta(hours=k) for k in range(count)]
    return times


def legacy_path(root: Path, interval: str, ticker: str) -> Path:
    return root / f"stocks_{interval}" / f"{ticker}.parquet"


def write_legacy(root: Path, interval: str, ticker: str, times: list[datetime]) -> Path:
    path = legacy_path(root, interval, ticker)
    write_bars(path, ticker, times)
    return path


def write_partitioned(
    root: Path, venue: Venue, interval: str, ticker: str, times: list[datetime]
) -> list[Path]:
    """One file per month, as the collector partitions them."""
    months: dict[tuple[int, int], list[datetime]] = defaultdict(list)
    for t in times:
        months[(t.year, t.month)].append(t)
    dataset = partition_dataset_dir(root, venue, interval)
    paths = []
    for (year, month), month_times in sorted(months.items()):
        path = partition_file(dataset, ticker, year, month)
        write_bars(path, ticker, month_times)
        paths.append(path)
    return paths


def write_metadata(root: Path, tickers: dict[str, list[str]], storage: dict | None = None) -> None:
    """tickers.json (ticker -> its intervals; ``storage``: ticker -> interval -> block)."""
    entries = {}
    for name, intervals in tickers.items():
        blocks = (storage or {}).get(name, {})
        entries[name] = ticker_entry(
            name,
            {
                iv: {"status": "active", **({"storage": blocks[iv]} if iv in blocks else {})}
                for iv in intervals
            },
        )
    write_tickers(root, entries)
    all_intervals = sorted({iv for ivs in tickers.values() for iv in ivs})
    write_json(root / "intervals.json", all_intervals)
    write_json(root / "storage_config.json", {"partitioned": False, "markets": {}, "sources": {}})
