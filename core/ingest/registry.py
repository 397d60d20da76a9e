"""tickers.json updated the way the collector updates it after writing bars.

The collector (``TickerRegistry.update_ticker_interval_status`` with data found) creates a
missing ticker as ``{ticker, added_date, status: active, last_checked, intervals: {}}``,
then sets the interval's ``status`` active, ``last_found_date``, ``last_checked`` and
``last_data_date`` (the day of the latest bar fetched), the ticker's ``status`` and
``last_checked``, and, when it wrote partitions for a ticker without a storage block, the
block ``{mode: partitioned, market, source, dataset}``. Dates are ``YYYY-MM-DD``.

Two differences, both so that parqctl never makes the collector skip or re-fetch
anything: ``last_data_date`` only moves forward (a backfill of an old gap does not pull
it back, which would make the collector's next update re-fetch everything since), and
``status`` / ``last_found_date`` change only with it: older bars say nothing about
whether a delisted ticker trades today. A window with no bars changes nothing here (the
collector would mark the interval ``not_found`` and stop asking for 30 days); parqctl
records it as confirmed empty instead. Every other key and value is kept as it is.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from core.store.routing import DEFAULT_VENUE, BarLocation, storage_block
from core.store.workspace import Workspace

DATE_FORMAT = "%Y-%m-%d"


def new_entry(ticker: str, today: date) -> dict[str, Any]:
    """The entry the collector makes for a ticker it has not seen."""
    day = today.strftime(DATE_FORMAT)
    return {
        "ticker": ticker,
        "added_date": day,
        "status": "active",
        "last_checked": day,
        "intervals": {},
    }


def record_bars(
    ws: Workspace,
    ticker: str,
    interval: str,
    last_written: datetime | None,
    location: BarLocation,
    today: date,
) -> bool:
    """Update ``ws.tickers`` in memory after bars were written (the caller saves it);
    True if the ticker was not registered before."""
    raw = ws.tickers.raw
    day = today.strftime(DATE_FORMAT)
    created = ticker not in raw
    if created:
        raw[ticker] = new_entry(ticker, today)
    entry = raw[ticker]
    intervals = entry.setdefault("intervals", {})
    block = intervals.setdefault(interval, {})
    previous = _day(block.get("last_data_date"))
    written = last_written.date() if last_written is not None else None
    if written is not None and (previous is None or written > previous):
        block["status"] = "active"
        block["last_found_date"] = day
        block["last_checked"] = day
        block["last_data_date"] = written.strftime(DATE_FORMAT)
        entry["status"] = "active"
    else:
        block["last_checked"] = day
    entry["last_checked"] = day
    if location.mode == "partitioned" and storage_block(ws, ticker, interval) is None:
        block["storage"] = {
            "mode": "partitioned",
            "market": DEFAULT_VENUE.market,
            "source": DEFAULT_VENUE.source,
            "dataset": "stocks",
        }
    return created


def _day(text: Any) -> date | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, DATE_FORMAT).date()
    except ValueError:
        return None
