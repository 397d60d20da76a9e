"""``parqctl fetch``: a date range of bars for named tickers, merged into the workspace.

Without ``start`` a ticker is fetched from its ``last_data_date`` in tickers.json (where
the collector would start), else from the first day Yahoo serves the interval (1970 for
daily bars); without ``end``, up to today. Windows beyond Yahoo's reach are cut off and
said so; the rest is cut into request windows (``core.ingest.limits``). Every bar that
comes back is merged: new ones added, identical ones kept, differing ones reported and
kept unless ``overwrite``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from core.availability.index import refresh_index
from core.errors import ParqctlError
from core.ingest.limits import limit_for, split_window
from core.ingest.pacing import Pacer
from core.ingest.runner import Options, Request, RunResult, Unit, run
from core.ingest.yahoo import YahooSource
from core.jobs import ProgressCallback
from core.store.layout import validate_interval, validate_ticker
from core.store.workspace import Workspace

FIRST_DAILY_DAY = date(1970, 1, 2)


@dataclass
class FetchPlan:
    interval: str
    units: list[Unit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "requests": [r.as_dict() for u in self.units for r in u.requests],
            "notes": self.notes,
        }


@dataclass
class FetchResult:
    plan: FetchPlan
    run: RunResult

    def as_dict(self) -> dict[str, Any]:
        return {**self.run.as_dict(), "plan": self.plan.as_dict()}


def plan_fetch(
    ws: Workspace,
    tickers: list[str],
    interval: str,
    *,
    start: date | None = None,
    end: date | None = None,
    today: date | None = None,
) -> FetchPlan:
    today = today or date.today()
    validate_interval(interval)
    names = list(dict.fromkeys(validate_ticker(t) for t in tickers))
    if start is not None and end is not None and start > end:
        raise ParqctlError(f"--start {start} is after --end {end}", "swap the dates")
    plan = FetchPlan(interval)
    limit = limit_for(interval)
    earliest = limit.earliest(today)
    last_day = end or today
    for ticker in names:
        first = start or _last_data_date(ws, ticker, interval) or earliest or FIRST_DAILY_DAY
        if earliest is not None and first < earliest:
            plan.notes.append(
                f"{ticker}: {interval} bars before {earliest} are beyond what Yahoo serves "
                f"({limit.reach_days} days); asking from {earliest}"
            )
            first = earliest
        if first > last_day:
            plan.notes.append(f"{ticker}: nothing to ask for ({first} is after {last_day})")
            continue
        windows = split_window(first, last_day + timedelta(days=1), interval)
        plan.units.append(
            Unit(ticker, interval, [Request(ticker, interval, lo, hi) for lo, hi in windows])
        )
    return plan


def _last_data_date(ws: Workspace, ticker: str, interval: str) -> date | None:
    entry = ws.tickers.raw.get(ticker)
    block = (entry.get("intervals") or {}).get(interval) if isinstance(entry, dict) else None
    text = block.get("last_data_date") if isinstance(block, dict) else None
    try:
        return datetime.strptime(text, "%Y-%m-%d").date() if isinstance(text, str) else None
    except ValueError:
        return None


def fetch(
    ws: Workspace,
    plan: FetchPlan,
    source: YahooSource,
    pacer: Pacer,
    *,
    dry_run: bool = False,
    overwrite: bool = False,
    today: date | None = None,
    progress: ProgressCallback | None = None,
) -> FetchResult:
    options = Options(
        "parqctl fetch",
        action="ingest.fetch",
        dry_run=dry_run,
        overwrite=overwrite,
        today=today or date.today(),
        reason="replaced by `parqctl fetch --overwrite`",
    )
    result = run(ws, plan.units, source, pacer, options, progress=progress)
    if not dry_run and any(u.written for u in result.units):
        refresh_index(ws.root)
    return FetchResult(plan, result)
