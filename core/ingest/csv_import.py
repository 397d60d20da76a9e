"""``parqctl import-csv``: bars from a CSV file, validated in full before anything is written.

Two shapes are read, header names matched case-insensitively and in any order: Yahoo's
download (``Date,Open,High,Low,Close,Adj Close,Volume``; ``Datetime`` for intraday) and
plain ``date,open,high,low,close,volume``. Other columns are ignored (and named). With an
``Adj Close`` column, prices are adjusted as yfinance's ``auto_adjust`` adjusts the bars the
collector stores (open, high, low scaled by adj close / close; close = adj close), unless
``adjust`` is off.

A date may come with or without a time and with or without an offset (``2025-01-02``,
``2025-01-02 09:30:00``, ``2025-01-02T09:30:00-05:00``, ``...Z``). Times with an offset are
converted to the exchange's zone; naive times are taken to be in ``tz`` (default: the
exchange's zone); bars are stored as exchange-local naive times, like everything else. A
date without a time is that day's (daily) bar.

Every row is checked before anything is written: the date parses and is not repeated,
the bar is on a session of the venue's calendar (and, intraday, inside its hours), prices
are numbers > 0 with low <= open, close <= high, volume is a whole number >= 0. Each
problem is ``FILE:LINE: column: what is wrong`` (the header is line 1).
"""

from __future__ import annotations

import csv
import functools
import math
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from core.availability.calendars import INTRADAY_MINUTES, calendar_for_market, sessions
from core.errors import ParqctlError
from core.ingest.registry import record_bars
from core.ingest.runner import refuse_past_critical
from core.ingest.store import MergePlan, merge_summary, plan_merge, write_merge
from core.safety import audit, run_lock
from core.store.layout import validate_interval, validate_ticker
from core.store.routing import locate
from core.store.workspace import Workspace

ON_CONFLICT = ("refuse", "skip", "merge", "overwrite")
REQUIRED = ("date", "open", "high", "low", "close", "volume")
_DATE_NAMES = ("date", "datetime", "timestamp", "time")
_DAILY_CHECKED = ("1d",)  # longer bars are dated by their period, not always a session
_MAX_PROBLEMS_KEPT = 10_000


@dataclass(frozen=True)
class CsvProblem:
    line: int
    column: str
    what: str

    def text(self, file: str) -> str:
        return f"{file}:{self.line}: {self.column}: {self.what}"


@dataclass
class ParsedCsv:
    shape: str  # "yahoo" or "plain"
    table: pa.Table | None
    rows: int
    adjusted: bool
    ignored_columns: list[str]
    problems: list[CsvProblem] = field(default_factory=list)
    more_problems: int = 0  # beyond those kept

    @property
    def problem_count(self) -> int:
        return len(self.problems) + self.more_problems


@dataclass
class ImportResult:
    file: str
    ticker: str
    interval: str
    on_conflict: str
    parsed: ParsedCsv
    merge: MergePlan | None = None
    refused: str | None = None  # why nothing was written (the conflict policy)
    written: bool = False
    dry_run: bool = False
    registered: bool = False
    quarantined: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.parsed.problems and self.refused is None

    def as_dict(self, problems_shown: int | None = None) -> dict[str, Any]:
        shown = self.parsed.problems[:problems_shown]
        merge = self.merge
        return {
            "file": self.file,
            "ticker": self.ticker,
            "interval": self.interval,
            "shape": self.parsed.shape,
            "rows": self.parsed.rows,
            "adjusted": self.parsed.adjusted,
            "ignored_columns": self.parsed.ignored_columns,
            "problems": [p.text(self.file) for p in shown],
            "problem_count": self.parsed.problem_count,
            "on_conflict": self.on_conflict,
            **merge_summary(merge),
            "refused": self.refused,
            "written": self.written,
            "dry_run": self.dry_run,
            "registered": self.registered,
            "quarantined": self.quarantined,
        }


class _Problems:
    def __init__(self) -> None:
        self.kept: list[CsvProblem] = []
        self.more = 0

    def add(self, line: int, column: str, what: str) -> None:
        if len(self.kept) < _MAX_PROBLEMS_KEPT:
            self.kept.append(CsvProblem(line, column, what))
        else:
            self.more += 1


def parse_csv(
    path: Path,
    ticker: str,
    interval: str,
    *,
    calendar: str,
    zone: ZoneInfo,
    naive_zone: ZoneInfo | None = None,
    adjust: bool = True,
) -> ParsedCsv:
    """Read and check every row; the table only when no row has a problem."""
    problems = _Problems()
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115
    except OSError as exc:
        raise ParqctlError(f"cannot read {path}: {exc.strerror}", "check the path") from None
    with handle:
        try:
            return _parse(handle, ticker, interval, calendar, zone, naive_zone, adjust, problems)
        except UnicodeDecodeError as exc:
            raise ParqctlError(
                f"{path} is not UTF-8 text (byte {exc.start})", "save it as UTF-8 CSV"
            ) from None


def _parse(
    handle, ticker, interval, calendar, zone, naive_zone, adjust, problems: _Problems
) -> ParsedCsv:
    reader = csv.reader(handle)
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        problems.add(
            1,
            "header",
            "the file is empty: expected a header such as date,open,high,low,close,volume",
        )
        return ParsedCsv("plain", None, 0, False, [], problems.kept, problems.more)
    names = [h.strip().lower().replace("_", " ") for h in header]
    columns: dict[str, int] = {}
    ignored = []
    for i, name in enumerate(names):
        key = "date" if name in _DATE_NAMES else name
        if key in columns:
            problems.add(1, "header", f"column {header[i].strip()!r} appears twice")
        elif key in (*REQUIRED, "adj close"):
            columns[key] = i
        else:
            ignored.append(header[i].strip())
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        problems.add(
            1,
            "header",
            f"missing column {', '.join(missing)} (found: {', '.join(h.strip() for h in header)})",
        )
        return ParsedCsv("plain", None, 0, False, ignored, problems.kept, problems.more)
    shape = "yahoo" if "adj close" in columns else "plain"
    intraday = interval in INTRADAY_MINUTES
    records: list[tuple[int, datetime, list[float | None], float | None, int | None]] = []
    data_lines = 0
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        data_lines += 1
        if len(row) != len(header):
            problems.add(line, "row", f"{len(row)} fields, the header has {len(header)}")
            continue
        when = _timestamp(
            row[columns["date"]], line, interval, intraday, zone, naive_zone, problems
        )
        prices = [
            _price(row[columns[c]], line, c, problems) for c in ("open", "high", "low", "close")
        ]
        adj = (
            _price(row[columns["adj close"]], line, "adj close", problems)
            if shape == "yahoo"
            else None
        )
        volume = _volume(row[columns["volume"]], line, problems)
        if all(p is not None for p in prices):
            _check_range(prices, line, problems)
        records.append((line, when, prices, adj, volume))
    if not records and not problems.kept:
        problems.add(1, "header", "no rows after the header")
    _check_duplicates(records, problems)
    _check_sessions(records, interval, intraday, calendar, problems)
    problems.kept.sort(key=lambda p: p.line)  # stable: a line's problems in column order
    parsed = ParsedCsv(shape, None, data_lines, False, ignored, problems.kept, problems.more)
    if problems.kept or problems.more:
        return parsed
    parsed.table, parsed.adjusted = _table(records, ticker, adjust and shape == "yahoo")
    return parsed


def _timestamp(text, line, interval, intraday, zone, naive_zone, problems) -> datetime | None:
    raw = text.strip()
    value: datetime | None = None
    has_time = len(raw) > 10
    try:
        value = (
            datetime.fromisoformat(raw)
            if has_time
            else datetime.combine(date.fromisoformat(raw), time())
        )
    except ValueError:
        problems.add(
            line, "date", f"{raw!r} is not a date like 2025-01-02 or 2025-01-02 09:30:00-05:00"
        )
        return None
    if value.tzinfo is not None:
        value = value.astimezone(zone).replace(tzinfo=None)
    elif has_time and naive_zone is not None and naive_zone != zone:
        value = value.replace(tzinfo=naive_zone).astimezone(zone).replace(tzinfo=None)
    if intraday and not has_time:
        problems.add(line, "date", f"{raw!r} has no time: a {interval} bar needs one")
        return None
    if not intraday and value.time() != time():
        problems.add(
            line,
            "date",
            f"{raw!r} is at {value:%H:%M} exchange time: a {interval} bar starts at midnight",
        )
        return None
    return value


def _price(text: str, line: int, column: str, problems: _Problems) -> float | None:
    raw = text.strip()
    try:
        value = float(raw)
    except ValueError:
        problems.add(line, column, f"{raw!r} is not a number")
        return None
    if not math.isfinite(value) or value <= 0:
        problems.add(line, column, f"{raw} is not a price > 0")
        return None
    return value


def _volume(text: str, line: int, problems: _Problems) -> int | None:
    raw = text.strip()
    try:
        value = float(raw)
    except ValueError:
        problems.add(line, "volume", f"{raw!r} is not a number")
        return None
    if not math.isfinite(value) or value < 0 or value != int(value):
        problems.add(line, "volume", f"{raw} is not a whole number >= 0")
        return None
    return int(value)


def _check_range(prices: list[float], line: int, problems: _Problems) -> None:
    open_, high, low, close = prices
    for name, value in (("open", open_), ("close", close)):
        if low > value:
            problems.add(line, "low", f"low {low:g} is above {name} {value:g}")
        if value > high:
            problems.add(line, "high", f"high {high:g} is below {name} {value:g}")


def _check_duplicates(records, problems: _Problems) -> None:
    seen: dict[datetime, int] = {}
    for line, when, *_ in records:
        if when is None:
            continue
        first = seen.setdefault(when, line)
        if first != line:
            problems.add(line, "date", f"{when:%Y-%m-%d %H:%M} is a duplicate of line {first}")


def _check_sessions(records, interval, intraday, calendar, problems: _Problems) -> None:
    times = [r[1] for r in records if r[1] is not None]
    if not times or not (intraday or interval in _DAILY_CHECKED):
        return
    table = sessions(calendar, min(times).date(), max(times).date())
    hours = {
        d.astype("datetime64[D]").item(): (
            o.astype("datetime64[us]").item(),
            c.astype("datetime64[us]").item(),
        )
        for d, o, c in zip(table.dates, table.opens, table.closes, strict=True)
    }
    for line, when, *_ in records:
        if when is None:
            continue
        span = hours.get(when.date())
        if span is None:
            problems.add(
                line, "date", f"{when:%Y-%m-%d} ({when:%A}) is not a trading session of {calendar}"
            )
        elif intraday and not span[0] <= when < span[1]:
            problems.add(
                line,
                "date",
                f"{when:%H:%M} is outside the session of {when:%Y-%m-%d} "
                f"({span[0]:%H:%M}-{span[1]:%H:%M} exchange time)",
            )


def _table(records, ticker: str, adjust: bool) -> tuple[pa.Table, bool]:
    import pandas as pd

    from core.ingest.normalize import collector_table

    rows = []
    for _line, when, (open_, high, low, close), adj, volume in records:
        if adjust and adj is not None:
            ratio = adj / close
            open_, high, low, close = open_ * ratio, high * ratio, low * ratio, adj
        rows.append((ticker, when, open_, high, low, close, volume))
    frame = pd.DataFrame(rows, columns=["stock", "date", "open", "high", "low", "close", "volume"])
    return collector_table(frame), adjust


def import_csv(
    ws: Workspace,
    path: Path,
    ticker: str,
    interval: str,
    *,
    on_conflict: str = "refuse",
    tz: str | None = None,
    adjust: bool = True,
    dry_run: bool = False,
    today: date | None = None,
) -> ImportResult:
    """Validate the file, then (unless a row is bad, the conflict policy refuses, or it is
    a dry run) merge it in under the run lock and register the ticker if it is new."""
    validate_ticker(ticker)
    validate_interval(interval)
    if on_conflict not in ON_CONFLICT:
        raise ParqctlError(
            f"unknown --on-conflict {on_conflict!r}", f"use one of {', '.join(ON_CONFLICT)}"
        )
    today = today or date.today()
    location = locate(ws, ticker, interval)
    market = _market(ws, ticker, interval, location.mode)
    calendar = calendar_for_market(market, ws.config.calendars)
    zone = _zone(calendar)
    naive_zone = _named_zone(tz) if tz else None
    parsed = parse_csv(
        path, ticker, interval, calendar=calendar, zone=zone, naive_zone=naive_zone, adjust=adjust
    )
    result = ImportResult(str(path), ticker, interval, on_conflict, parsed, dry_run=dry_run)
    if parsed.table is None:
        return result
    if dry_run:
        result.merge = plan_merge(
            ws, ticker, interval, parsed.table, overwrite=on_conflict == "overwrite"
        )
        result.refused = _refusal(result.merge, on_conflict)
        return result
    refuse_past_critical(ws)
    command = "parqctl import-csv"
    outcome = "failed"
    try:
        with run_lock.hold(ws.root, command) as lock:
            fresh = Workspace(ws.root)
            merge = plan_merge(
                fresh, ticker, interval, parsed.table, overwrite=on_conflict == "overwrite"
            )
            result.merge = merge
            result.refused = _refusal(merge, on_conflict)
            if result.refused is not None:
                outcome = f"refused: {result.refused}"
                return result
            if merge.changes:
                result.quarantined = write_merge(
                    fresh,
                    merge,
                    lock=lock,
                    reason=f"replaced by `{command} {path.name} --on-conflict overwrite`",
                )
                result.written = True
            if merge.changes or ticker not in fresh.tickers:
                result.registered = record_bars(
                    fresh, ticker, interval, merge.last_written, merge.location, today
                )
                fresh.save_tickers()
            outcome = "ok"
    except ParqctlError as exc:
        outcome = f"failed: {exc.message}"
        raise
    finally:
        if result.merge is not None or outcome != "failed":
            audit.append(
                ws.root,
                "ingest.import_csv",
                outcome,
                file=str(path),
                ticker=ticker,
                interval=interval,
                on_conflict=on_conflict,
                rows=parsed.rows,
                added=result.merge.added if result.merge else 0,
                differing=result.merge.differing if result.merge else 0,
                overwritten=result.merge.overwritten if result.merge and result.written else 0,
                quarantined=result.quarantined,
                registered=result.registered,
            )
    if result.written:
        from core.availability.index import refresh_index

        refresh_index(ws.root)
    return result


def _refusal(merge: MergePlan, on_conflict: str) -> str | None:
    if on_conflict == "refuse" and merge.overlapping:
        return (
            f"{merge.overlapping:,} rows overlap stored bars ({merge.differing:,} of them differ); "
            "nothing was written: --on-conflict skip keeps the stored rows, merge adds only new "
            "rows, overwrite replaces differing rows"
        )
    if on_conflict == "merge" and merge.differing:
        return (
            f"{merge.differing:,} rows differ from stored bars; nothing was written: "
            "--on-conflict skip keeps the stored rows, overwrite replaces them"
        )
    return None


def _market(ws: Workspace, ticker: str, interval: str, mode: str) -> str:
    from core.store.routing import DEFAULT_VENUE, storage_block

    block = storage_block(ws, ticker, interval)
    if mode == "partitioned" and block is not None and isinstance(block.get("market"), str):
        return block["market"].lower()
    return DEFAULT_VENUE.market


@functools.lru_cache(maxsize=8)
def _zone(calendar: str) -> ZoneInfo:
    """The exchange's time zone (America/New_York for XNYS)."""
    import exchange_calendars as xcals

    return ZoneInfo(str(xcals.get_calendar(calendar).tz))


def _named_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ParqctlError(
            f"unknown time zone {name!r}", "give an IANA zone such as America/New_York or UTC"
        ) from None
