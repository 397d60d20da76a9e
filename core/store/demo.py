"""A demo workspace in the collector's legacy layout, with the problems operators meet.

By default the legacy files are where the collector keeps them (``stocks_<iv>/`` at the
workspace root); layout ``data-legacy`` puts them under ``data/legacy/`` instead, where
the collector's own migration tool wants them moved (and where the collector no longer
reads them).

Deterministic for (seed, end, sizes): it is the demo anyone can open and the fixture
factory for tests and benchmarks. Every injected problem is reported as an Injection,
so a test can find it again on disk.

All symbols trade on the XNYS calendar here, even 7203.T or SAP.DE: a legacy workspace
names no venue, and parqctl reads legacy data as us:yahoo.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from core.availability.calendars import INTRADAY_MINUTES, SessionTable, sessions
from core.errors import DiskSpaceError, ParqctlError
from core.safety.atomic import write_json
from core.store.bars import BAR_SCHEMA, write_bar_file
from core.store.layout import COLLECTOR_LEGACY_HOME, legacy_dataset_dir, legacy_file

CALENDAR = "XNYS"
INTERVALS = ["1d", "1h", "1m"]
MINUTE_TICKERS = 5
MINUTE_SESSIONS = 5
PROTECTED_TICKERS = 5  # the top of the demo stays healthy: no injection into these
PRICE_DECIMALS = 4
# Where each demo layout keeps its legacy files (a home of core.store.layout.LEGACY_HOMES).
LAYOUTS = {"collector": COLLECTOR_LEGACY_HOME, "data-legacy": "data/legacy"}
SINGLE_GAPS = 3
RUN_GAP_SESSIONS = 15  # three weeks
LISTED_DAYS_BEFORE_END = 365
DELISTED_DAYS_BEFORE_END = 182
DUPLICATED_ROWS = 3
# pyarrow's default gzip level is 9, several times slower on int64 columns for files a few
# percent smaller; the codec, and so what the collector reads, is the same.
GZIP_LEVEL = 1
# The space a build needs, estimated before it writes anything: bars take about 38 bytes a
# row at GZIP_LEVEL 1 (measured on builds of 20 to 300 tickers); each file costs its
# footer and its last block; the metadata files a little more. Rounded up generously: a
# refusal costs a smaller --tickers, a disk filled half-way costs a rebuild.
ESTIMATE_BYTES_PER_ROW = 48
ESTIMATE_BYTES_PER_FILE = 8192
ESTIMATE_FIXED_BYTES = 1 << 20
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)

FAMOUS_SYMBOLS = (
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "BRK-B", "BF.B", "JPM", "V",
    "TSLA", "AVGO", "LLY", "UNH", "XOM", "JNJ", "WMT", "MA", "PG", "HD",
    "COST", "ORCL", "ABBV", "MRK", "CVX", "KO", "PEP", "BAC", "NFLX", "ADBE",
    "CRM", "AMD", "TMO", "MCD", "CSCO", "ACN", "LIN", "DIS", "WFC", "INTC",
    "QCOM", "TXN", "IBM", "CAT", "GS", "BA", "NKE", "SBUX", "PFE", "T",
    "^GSPC", "^DJI", "^IXIC", "^VIX", "EURUSD=X", "GBPUSD=X", "JPY=X", "BTC-USD",
    "GC=F", "7203.T", "SAP.DE", "ASML.AS", "SHEL.L", "NESN.SW",
)  # fmt: skip
# Levels for the symbols whose price would look wrong drawn at random.
START_PRICES = {
    "^GSPC": 4500.0, "^DJI": 35000.0, "^IXIC": 14000.0, "^VIX": 18.0,
    "EURUSD=X": 1.08, "GBPUSD=X": 1.26, "JPY=X": 145.0, "BTC-USD": 30000.0,
    "GC=F": 1900.0, "7203.T": 2500.0,
}  # fmt: skip

# Roles of the injected problems, one ticker each, in the order tickers are drawn.
GAP_ROLES = {"gap_1d": "1d", "gap_1h": "1h"}
LISTING_ROLES = ("late_listing", "delisted")
FILE_FAULTS = {
    "truncated": "1d",
    "zero_byte": "1h",
    "duplicates": "1h",
    "extra_column": "1d",
    "temp_file": "1d",
}
ROLES = (*GAP_ROLES, *LISTING_ROLES, *FILE_FAULTS)
MIN_TICKERS = PROTECTED_TICKERS + len(ROLES)


@dataclass(frozen=True)
class Injection:
    """One problem put into the demo on purpose, and where to find it."""

    kind: str
    ticker: str | None
    interval: str | None
    path: Path | None
    detail: str
    # Sessions involved (gaps, first/last bar), or bar times (datetime) for duplicates.
    dates: tuple[date, ...] = ()


class Span(NamedTuple):
    """The sessions an interval covers: first and last session, and how many."""

    first: date
    last: date
    sessions: int


@dataclass(frozen=True)
class DemoReport:
    """What build_demo wrote: its tickers, spans, injected problems and totals."""

    root: Path
    tickers: list[str]
    intervals: list[str]
    spans: dict[str, Span]
    injections: list[Injection]
    files: int
    bytes: int
    rows: int  # rows in the bar files that are still readable
    elapsed_s: float

    def lines(self) -> list[str]:
        spans = ", ".join(
            f"{iv} {s.first}..{s.last} ({s.sessions} sessions)" for iv, s in self.spans.items()
        )
        out = [
            f"Demo workspace {self.root}: {len(self.tickers)} tickers; {spans}",
            f"{self.files} files, {self.bytes / 1e6:.1f} MB, {self.rows:,} rows "
            f"in {self.elapsed_s:.1f} s",
            f"Injected problems ({len(self.injections)}):",
        ]
        out += [
            f"  {i.kind:<13} {i.ticker or '-':<9} {i.interval or '-':<3} {i.detail}"
            for i in self.injections
        ]
        return out


@dataclass(frozen=True)
class BarGrid:
    """Where one interval's bars fall: each row's time and the base session it belongs to."""

    times: np.ndarray  # datetime64[ns], exchange-local naive
    session: np.ndarray  # index into the base sessions
    position: np.ndarray  # bar number within its session
    per_session: np.ndarray  # bars in the row's session


@dataclass(frozen=True)
class Bars:
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def take(self, rows: np.ndarray) -> Bars:
        return Bars(*(a[rows] for a in (self.open, self.high, self.low, self.close, self.volume)))


@dataclass
class TickerPlan:
    """What one ticker gets: its intervals, its listing window, its gaps and file fault."""

    ticker: str
    index: int
    intervals: list[str]
    first_session: int = 0
    last_session: int | None = None
    missing: dict[str, np.ndarray] = field(default_factory=dict)  # interval -> base sessions
    fault: str | None = None


@dataclass(frozen=True)
class FaultResult:
    path: Path
    detail: str
    readable_rows: int
    dates: tuple[date, ...] = ()


@dataclass(frozen=True)
class DemoCalendar:
    """The base sessions (the longest span) and where each interval's span starts in them."""

    base: SessionTable
    starts: dict[str, int]
    end: date

    def span(self, interval: str) -> Span:
        first = self.starts[interval]
        return Span(self.day(first), self.day(len(self.base) - 1), len(self.base) - first)

    def day(self, index: int) -> date:
        return self.base.dates[index].astype(date)

    def first_on_or_after(self, day: date) -> int:
        return int(np.searchsorted(self.base.dates, np.datetime64(day, "D"), side="left"))

    def last_on_or_before(self, day: date) -> int:
        return int(np.searchsorted(self.base.dates, np.datetime64(day, "D"), side="right")) - 1


def build_demo(
    root: Path,
    *,
    tickers: int = 300,
    seed: int = 7,
    end: date | None = None,
    years_1d: int = 5,
    years_1h: int = 2,
    stale_lock: bool = False,
    layout: str = "collector",
    progress: Callable[[int, int], None] | None = None,
) -> DemoReport:
    """Write a demo workspace at ``root`` (absent or empty) and report what is in it."""
    started = time.perf_counter()
    root = Path(root)
    _check_arguments(root, tickers, years_1d, years_1h)
    legacy_root = root / LAYOUTS[layout]
    calendar = _demo_calendar(end, years_1d, years_1h)
    symbols = demo_symbols(tickers, seed)
    plans, injections = _plan(symbols, seed, calendar, legacy_root)
    grids = {iv: _make_grid(calendar, iv) for iv in INTERVALS}
    ensure_demo_room(root, estimated_bytes(plans, grids))
    build = _Build(root, legacy_root, seed, calendar, grids, dead_pid())
    with _removed_on_failure(root):
        rows, faults = _write_all(build, plans, progress)
        injections += faults
        if stale_lock:
            injections.append(_write_stale_lock(root, build.dead_pid))
        write_json(root / "intervals.json", INTERVALS)
        write_json(
            root / "storage_config.json", {"partitioned": False, "markets": {}, "sources": {}}
        )
        # Last, so that a build cut short is not mistaken for a workspace (`make demo`
        # checks it).
        write_json(root / "tickers.json", _registry(plans, calendar))
    files, size = _disk_usage(root)
    return DemoReport(
        root=root,
        tickers=symbols,
        intervals=list(INTERVALS),
        spans={iv: calendar.span(iv) for iv in INTERVALS},
        injections=injections,
        files=files,
        bytes=size,
        rows=rows,
        elapsed_s=time.perf_counter() - started,
    )


def _check_arguments(root: Path, tickers: int, years_1d: int, years_1h: int) -> None:
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ParqctlError(
            f"{root} exists and is not empty", "give a new directory for the demo workspace"
        )
    if tickers < MIN_TICKERS:
        raise ParqctlError(
            f"a demo needs at least {MIN_TICKERS} tickers, not {tickers}",
            "each injected problem gets a ticker of its own",
        )
    if years_1d < 2 or years_1h < 1:
        raise ParqctlError(
            f"too little history (years_1d={years_1d}, years_1h={years_1h})",
            "give at least 2 years of daily and 1 year of hourly bars",
        )


def estimated_bytes(plans: list[TickerPlan], grids: dict[str, BarGrid]) -> int:
    """What a build of these plans will take on disk, rounded up (see ESTIMATE_*)."""
    rows = sum(len(grids[iv].times) for plan in plans for iv in plan.intervals)
    files = sum(len(plan.intervals) for plan in plans)
    return rows * ESTIMATE_BYTES_PER_ROW + files * ESTIMATE_BYTES_PER_FILE + ESTIMATE_FIXED_BYTES


def _existing_ancestor(path: Path) -> Path:
    current = path
    while not current.exists() and current.parent != current:
        current = current.parent
    return current


def ensure_demo_room(root: Path, needed: int) -> None:
    """Refuse, before anything is written, a build the filesystem has no room for."""
    where = _existing_ancestor(root)
    try:
        st = os.statvfs(where)
    except OSError:
        return  # nothing to measure with: the build finds out, and cleans up
    free = st.f_bavail * st.f_frsize
    if needed > free:
        raise DiskSpaceError(
            f"not enough disk space for the demo at {root}: it needs about "
            f"{_mib(needed)}, {_mib(free)} free on {where}",
            "give fewer --tickers or --years-1d/--years-1h, or another directory",
        )


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


@contextlib.contextmanager
def _removed_on_failure(root: Path) -> Iterator[None]:
    """On any failure, remove what the build created (and only that): ``root`` with the
    directories above it that did not exist, or, when ``root`` was an empty directory,
    what is in it. A full disk becomes DiskSpaceError, saying so."""
    created = root if not root.exists() else None
    while created is not None and not created.parent.exists():
        created = created.parent
    try:
        yield
    except BaseException as exc:
        removed = _remove_created(root, created)
        full = _disk_full(exc)
        if full is None:
            raise
        where = f" ({full.filename})" if full.filename else ""
        raise DiskSpaceError(
            f"the disk filled up while building the demo at {root}{where}: "
            f"{full.strerror or full}; {removed}",
            "free some space, or give fewer --tickers or --years-1d/--years-1h",
        ) from exc


def _remove_created(root: Path, created: Path | None) -> str:
    """Remove what the build wrote; says what was removed (or what is left)."""
    try:
        if created is not None:
            shutil.rmtree(created)
            return f"removed {created}, which it had created"
        for entry in os.scandir(root):  # root was empty: everything in it is the build's
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        return f"removed what it had written in {root}"
    except OSError as exc:
        return f"could not remove all it wrote ({exc.strerror or exc}): delete {root} by hand"


def _disk_full(exc: BaseException) -> OSError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and (
            current.errno in DISK_FULL_ERRNOS
            or (current.errno is None and "No space left on device" in str(current))
        ):
            return current
        current = current.__cause__ or current.__context__
    return None


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _demo_calendar(end: date | None, years_1d: int, years_1h: int) -> DemoCalendar:
    if end is None:
        yesterday = date.today() - timedelta(days=1)
        # The same span as below, so that one cached calendar build serves both.
        recent = sessions(CALENDAR, _years_before(yesterday, max(years_1d, years_1h)), yesterday)
        end = recent.dates[-1].astype(date)
    starts = {"1d": _years_before(end, years_1d), "1h": _years_before(end, years_1h)}
    base = sessions(CALENDAR, min(starts.values()), end)
    if len(base) < MINUTE_SESSIONS:
        raise ParqctlError(f"no {CALENDAR} sessions up to {end}", "give a later end date")
    first = {
        iv: int(np.searchsorted(base.dates, np.datetime64(d, "D"))) for iv, d in starts.items()
    }
    first["1m"] = len(base) - MINUTE_SESSIONS
    return DemoCalendar(base, first, base.dates[-1].astype(date))


def demo_symbols(count: int, seed: int) -> list[str]:
    """The famous symbols first, then unique synthetic 3-4 letter ones up to ``count``."""
    symbols = list(FAMOUS_SYMBOLS[:count])
    taken = set(symbols)
    rng = np.random.default_rng([seed, 0])
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    while len(symbols) < count:
        symbol = "".join(letters[rng.integers(0, 26, size=3 + int(rng.integers(0, 2)))])
        if symbol not in taken:
            taken.add(symbol)
            symbols.append(symbol)
    return symbols


def _plan(
    symbols: list[str], seed: int, calendar: DemoCalendar, legacy_root: Path
) -> tuple[list[TickerPlan], list[Injection]]:
    """Each ticker's plan; the listing and gap injections are known before any write."""
    plans = [
        TickerPlan(s, i, ["1d", "1h", "1m"] if i < MINUTE_TICKERS else ["1d", "1h"])
        for i, s in enumerate(symbols)
    ]
    rng = np.random.default_rng([seed, 1])
    chosen = rng.choice(np.arange(PROTECTED_TICKERS, len(symbols)), size=len(ROLES), replace=False)
    injections: list[Injection] = []
    for role, index in zip(ROLES, chosen, strict=True):
        plan = plans[int(index)]
        if role in FILE_FAULTS:
            plan.fault = role  # reported once its file is written
        elif role in GAP_ROLES:
            injections += _plan_gaps(plan, GAP_ROLES[role], rng, calendar, legacy_root)
        elif role == "late_listing":
            injections.append(_plan_late_listing(plan, calendar))
        else:
            injections.append(_plan_delisting(plan, calendar))
    return plans, injections


def _plan_late_listing(plan: TickerPlan, calendar: DemoCalendar) -> Injection:
    listed = calendar.end - timedelta(days=LISTED_DAYS_BEFORE_END)
    plan.first_session = calendar.first_on_or_after(listed)
    first = calendar.day(plan.first_session)
    return Injection(
        "late_listing", plan.ticker, None, None, f"listed {first}: no bars before", (first,)
    )


def _plan_delisting(plan: TickerPlan, calendar: DemoCalendar) -> Injection:
    delisted = calendar.end - timedelta(days=DELISTED_DAYS_BEFORE_END)
    plan.last_session = calendar.last_on_or_before(delisted)
    last = calendar.day(plan.last_session)
    detail = f"stopped trading: last bar {last}, status not_found"
    return Injection("delisted", plan.ticker, None, None, detail, (last,))


def _plan_gaps(
    plan: TickerPlan,
    interval: str,
    rng: np.random.Generator,
    calendar: DemoCalendar,
    legacy_root: Path,
) -> list[Injection]:
    """Isolated missing sessions late in the span, and a multi-week run early in it."""
    first, stop = calendar.starts[interval], len(calendar.base)
    length = stop - first
    run_start = first + int(rng.integers(length // 10, 4 * length // 10 - RUN_GAP_SESSIONS))
    run = np.arange(run_start, run_start + RUN_GAP_SESSIONS)
    # One per bucket, never on a bucket's edge: no two singles are neighbours.
    edges = np.linspace(first + length // 2, stop - 2, SINGLE_GAPS + 1).astype(int)
    singles = rng.integers(edges[:-1] + 1, edges[1:])
    plan.missing[interval] = np.concatenate([run, singles])
    path = legacy_file(legacy_dataset_dir(legacy_root, interval), plan.ticker)
    single_days = tuple(calendar.day(int(i)) for i in singles)
    run_days = tuple(calendar.day(int(i)) for i in run)
    singles_detail = f"{SINGLE_GAPS} missing sessions: {', '.join(map(str, single_days))}"
    run_detail = f"run of {RUN_GAP_SESSIONS} missing sessions {run_days[0]}..{run_days[-1]}"
    return [
        Injection("gap", plan.ticker, interval, path, singles_detail, single_days),
        Injection("gap", plan.ticker, interval, path, run_detail, run_days),
    ]


@dataclass(frozen=True)
class _Build:
    """What every ticker's writer shares within one build."""

    root: Path
    legacy_root: Path  # the directory holding the stocks_<iv> folders
    seed: int
    calendar: DemoCalendar
    grids: dict[str, BarGrid]
    dead_pid: int


def _write_all(
    build: _Build, plans: list[TickerPlan], progress: Callable[[int, int], None] | None
) -> tuple[int, list[Injection]]:
    """Write every ticker's files; returns the readable rows and the file injections.

    pyarrow releases the GIL while it encodes and compresses, so threads keep every core
    busy without a process pool's start-up and pickling. Results come back in ticker
    order, and each ticker has its own random stream, so the output stays deterministic.
    """
    rows, injections = 0, []
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    try:
        results = pool.map(functools.partial(_write_ticker, build), plans)
        for done, (written, faults) in enumerate(results, start=1):
            rows += written
            injections += faults
            if progress is not None:
                progress(done, len(plans))
    finally:
        # Drops the tickers not started yet when a write or the progress callback raised.
        pool.shutdown(cancel_futures=True)
    return rows, injections


def _make_grid(calendar: DemoCalendar, interval: str) -> BarGrid:
    base, first = calendar.base, calendar.starts[interval]
    if interval == "1d":
        session = np.arange(first, len(base))
        ones = np.ones(len(session), dtype=np.int64)
        return BarGrid(base.dates[first:].astype("M8[ns]"), session, ones - 1, ones)
    span = SessionTable(base.calendar, base.dates[first:], base.opens[first:], base.closes[first:])
    counts = span.bars_per_session(interval)
    session = np.repeat(np.arange(first, len(base)), counts)
    per_session = np.repeat(counts, counts)
    position = np.arange(len(session)) - np.repeat(np.cumsum(counts) - counts, counts)
    times = base.opens[session] + position * np.timedelta64(INTRADAY_MINUTES[interval], "m")
    return BarGrid(times, session, position, per_session)


def _write_ticker(build: _Build, plan: TickerPlan) -> tuple[int, list[Injection]]:
    """Write every bar file of one ticker; returns its readable rows and file injections."""
    calendar = build.calendar
    rng = np.random.default_rng([build.seed, 2, plan.index])
    daily, sigma = _daily_bars(rng, len(calendar.base), _start_price(rng, plan.ticker))
    listed = np.zeros(len(calendar.base), dtype=bool)
    listed[plan.first_session : None if plan.last_session is None else plan.last_session + 1] = True
    rows, injections = 0, []
    for interval in plan.intervals:
        grid = build.grids[interval]
        bars = (
            daily.take(grid.session)
            if interval == "1d"
            else _intraday_bars(rng, grid, daily, sigma)
        )
        keep = listed.copy()
        keep[plan.missing.get(interval, np.array([], dtype=np.int64))] = False
        table = _bar_table(plan.ticker, grid.times, bars).filter(pa.array(keep[grid.session]))
        path = legacy_file(legacy_dataset_dir(build.legacy_root, interval), plan.ticker)
        if plan.fault is None or FILE_FAULTS[plan.fault] != interval:
            _write(path, table)
            rows += table.num_rows
            continue
        result = FAULT_WRITERS[plan.fault](path, table, rng, build.dead_pid)
        rows += result.readable_rows
        injections.append(
            Injection(plan.fault, plan.ticker, interval, result.path, result.detail, result.dates)
        )
    return rows, injections


def _start_price(rng: np.random.Generator, ticker: str) -> float:
    if ticker in START_PRICES:
        return START_PRICES[ticker]
    return float(np.clip(rng.lognormal(np.log(60.0), 1.0), 5.0, 800.0))


def _daily_bars(rng: np.random.Generator, n: int, start_price: float) -> tuple[Bars, float]:
    """A geometric random walk with overnight gaps; returns the bars and the daily volatility."""
    sigma = float(rng.uniform(0.008, 0.022))
    drift = float(rng.normal(0.0002, 0.0003))
    close = start_price * np.exp(np.cumsum(rng.normal(drift, sigma, n)))
    previous = np.concatenate(([start_price], close[:-1]))
    open_ = previous * np.exp(rng.normal(0.0, 0.3 * sigma, n))
    # A floor under each wick keeps room for intraday bars between low and high.
    high = np.maximum(open_, close) * np.exp(sigma * (0.2 + 0.5 * np.abs(rng.standard_normal(n))))
    low = np.minimum(open_, close) * np.exp(-sigma * (0.2 + 0.5 * np.abs(rng.standard_normal(n))))
    base_volume = rng.lognormal(np.log(2e6), 1.2)
    volume = (base_volume * rng.lognormal(0.0, 0.4, n)).astype(np.int64)
    return Bars(open_, high, low, close, volume), sigma


def _intraday_bars(rng: np.random.Generator, grid: BarGrid, daily: Bars, sigma: float) -> Bars:
    """Per session a Brownian bridge from the day's open to its close, inside its range.

    So an intraday chart meets the daily one: same open and close, never outside the
    day's high and low.
    """
    n = len(grid.session)
    step_sigma = sigma / np.sqrt(grid.per_session)
    steps = rng.standard_normal(n) * step_sigma
    first_row = np.arange(n) - grid.position
    last_row = first_row + grid.per_session - 1
    walk = np.cumsum(steps)
    walk -= walk[first_row] - steps[first_row]
    done = (grid.position + 1) / grid.per_session
    day_open, day_close = daily.open[grid.session], daily.close[grid.session]
    drift = np.log(day_open) + done * (np.log(day_close) - np.log(day_open))
    close = np.exp(drift + walk - done * walk[last_row])
    open_ = np.where(grid.position == 0, day_open, np.roll(close, 1))
    wick = np.exp(0.3 * step_sigma * np.abs(rng.standard_normal((2, n))))
    day_low, day_high = daily.low[grid.session], daily.high[grid.session]
    bars = (
        np.clip(open_, day_low, day_high),
        np.clip(np.maximum(open_, close) * wick[0], day_low, day_high),
        np.clip(np.minimum(open_, close) / wick[1], day_low, day_high),
        np.clip(close, day_low, day_high),
    )
    share = daily.volume[grid.session] / grid.per_session
    volume = (share * rng.lognormal(0.0, 0.5, n)).astype(np.int64)
    return Bars(*bars, volume)


def _bar_table(ticker: str, times: np.ndarray, bars: Bars) -> pa.Table:
    prices = (bars.open, bars.high, bars.low, bars.close)
    n = len(times)
    return pa.Table.from_arrays(
        [
            pa.repeat(ticker, n),
            pa.array(times),
            *(pa.array(np.round(p, PRICE_DECIMALS)) for p in prices),
            pa.array(bars.volume),
            pa.nulls(n, pa.int64()),
        ],
        schema=BAR_SCHEMA,
    )


def _write(path: Path, table: pa.Table) -> None:
    # A fresh throwaway workspace: after a crash it is rebuilt, not recovered, so the
    # fsyncs that durability costs per file would only slow the build.
    write_bar_file(path, table, durable=False, compression_level=GZIP_LEVEL)


def _truncated(path: Path, table: pa.Table, rng: np.random.Generator, dead: int) -> FaultResult:
    _write(path, table)
    size = path.stat().st_size
    os.truncate(path, size // 2)
    return FaultResult(path, f"truncated Parquet: cut to {size // 2} of {size} bytes", 0)


def _zero_byte(path: Path, table: pa.Table, rng: np.random.Generator, dead: int) -> FaultResult:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return FaultResult(path, "zero-byte file", 0)


def _duplicates(path: Path, table: pa.Table, rng: np.random.Generator, dead: int) -> FaultResult:
    repeated = np.sort(rng.choice(table.num_rows, size=DUPLICATED_ROWS, replace=False))
    order = np.sort(np.concatenate([np.arange(table.num_rows), repeated]))
    _write(path, table.take(order))
    times = tuple(table["date"].take(repeated).to_pylist())
    detail = f"{DUPLICATED_ROWS} rows repeated: " + ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in times)
    return FaultResult(path, detail, len(order), times)


def _extra_column(path: Path, table: pa.Table, rng: np.random.Generator, dead: int) -> FaultResult:
    dividends = rng.uniform(0.90, 0.99)
    close = table["close"].to_numpy()
    adjclose = pa.array(np.round(close * dividends, PRICE_DECIMALS))
    _write(path, table.append_column(pa.field("adjclose", pa.float64()), adjclose))
    return FaultResult(path, "unknown extra column adjclose (double)", table.num_rows)


def _temp_file(path: Path, table: pa.Table, rng: np.random.Generator, dead: int) -> FaultResult:
    """A crashed writer's temp file, named the way the collector names its temp files."""
    _write(path, table)
    data = path.read_bytes()
    millis = int((time.time() - 3600) * 1000)
    temp = path.with_name(f"{path.name}.tmp-{dead}-{millis}-{rng.bytes(16).hex()}")
    temp.write_bytes(data[: len(data) // 2])
    detail = f"leftover temp file ({len(data) // 2} partial bytes) beside {path.name}"
    return FaultResult(temp, detail, table.num_rows)


FAULT_WRITERS: dict[str, Callable[[Path, pa.Table, np.random.Generator, int], FaultResult]] = {
    "truncated": _truncated,
    "zero_byte": _zero_byte,
    "duplicates": _duplicates,
    "extra_column": _extra_column,
    "temp_file": _temp_file,
}


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped, so nothing runs under it."""
    child = subprocess.Popen([sys.executable, "-I", "-S", "-c", ""])
    child.wait()
    return child.pid


def _write_stale_lock(root: Path, pid: int) -> Injection:
    """The lock a crashed collector run leaves behind: its holder died an hour ago."""
    taken = time.time() - 3600
    host = socket.gethostname()
    path = root / ".run_lock" / "owner.json"
    path.parent.mkdir()
    write_json(path, {"pid": pid, "host": host, "ts": taken, "cwd": str(root.absolute())})
    since = datetime.fromtimestamp(taken).strftime("%Y-%m-%d %H:%M")
    detail = f"run lock of pid {pid} on {host} (not running) since {since}"
    return Injection("stale_lock", None, None, path, detail)


def _registry(plans: list[TickerPlan], calendar: DemoCalendar) -> dict[str, dict]:
    """tickers.json as the collector leaves it after its last run on the end session."""
    checked = calendar.end.isoformat()
    registry = {}
    for plan in plans:
        active = plan.last_session is None
        status = "active" if active else "not_found"
        last_data = checked if active else calendar.day(plan.last_session).isoformat()
        state = {
            "status": status,
            "last_found_date": checked if active else last_data,
            "last_checked": checked,
            "last_data_date": last_data,
        }
        registry[plan.ticker] = {
            "ticker": plan.ticker,
            "added_date": calendar.day(plan.first_session).isoformat(),
            "status": status,
            "last_checked": checked,
            "intervals": {iv: dict(state) for iv in plan.intervals},
        }
    return registry


def _disk_usage(root: Path) -> tuple[int, int]:
    files = size = 0
    for directory, _dirs, names in os.walk(root):
        for name in names:
            files += 1
            size += os.stat(os.path.join(directory, name)).st_size
    return files, size
