"""Bar counts per ticker and session for one interval, on each ticker's trading calendar.

Built once per index load from the file index (no bar file is opened); the gap report
and the heatmap are computed from it. Each (ticker, interval) is read from one source,
chosen as the collector reads it: where ``tickers.json`` / ``storage_config.json`` route
it when that layout has files, else the layout that has them (see ``core.store.routing``).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

import numpy as np

from core.availability.calendars import calendar_for_market
from core.availability.index import FileIndex, SessionArrays
from core.availability.session_cache import cached_sessions
from core.errors import ParqctlError
from core.store.bars import FIRST_BAR_DAY, LAST_BAR_DAY
from core.store.layout import COLLECTOR_LEGACY_HOME, LEGACY_HOMES, validate_ticker
from core.store.metadata import StorageBlock
from core.store.routing import DEFAULT_VENUE, locate, storage_block
from core.store.workspace import Workspace

if TYPE_CHECKING:
    import polars as pl

# The source name of legacy files in the collector's own home; ``legacy <home>`` in the
# other homes (which it does not read); partitioned sources are venue ids.
LEGACY = "legacy"
# Intervals longer than a day: their "session" is the period holding trading sessions.
PERIODS = {"5d": "week", "1wk": "week", "1mo": "month", "3mo": "quarter"}
_A_MONDAY = 4  # 1970-01-05, in days since the epoch


def period_start(days: np.ndarray, period: str) -> np.ndarray:
    """The first day (days since the epoch) of the week, month or quarter of each day."""
    if period == "week":
        return days - (days - _A_MONDAY) % 7
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    if period == "quarter":
        months -= months % 3
    return months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


@dataclass(frozen=True)
class UnreadableFile:
    path: str
    error: str


@dataclass(frozen=True)
class CalendarBlock:
    """The tickers of one interval that trade on one calendar, against its sessions.

    ``counts[i, j]`` is the number of distinct bar times of ticker ``i`` on session ``j``.
    A ticker's listed range runs from session ``lo[i]`` (the first on or after its first
    bar) to ``hi[i]`` (the last on or before its last bar); ``lo > hi`` when it has none.
    """

    calendar: str
    dates: np.ndarray  # datetime64[D], the sessions, ascending
    expected: np.ndarray  # int64, bars per session at this interval (early closes counted)
    tickers: list[str]
    sources: list[str]
    counts: np.ndarray  # uint16 [tickers, sessions]
    first: np.ndarray  # datetime64[D] per ticker: the day of its first bar
    last: np.ndarray  # datetime64[D] per ticker: the day of its last bar
    lo: np.ndarray  # int64 per ticker
    hi: np.ndarray  # int64 per ticker
    off_rows: np.ndarray  # ticker row of each day with bars that is not a session
    off_days: np.ndarray  # datetime64[D]


@dataclass(frozen=True)
class CoverageGrid:
    interval: str
    blocks: list[CalendarBlock]
    # Tickers whose chosen source has unreadable files (they may have readable ones too).
    unreadable: dict[str, list[UnreadableFile]]
    # Tickers whose chosen source has files but no bars (empty or all unreadable).
    without_bars: list[str]
    sources: dict[str, str]  # every ticker with files -> the source its bars are read from
    calendars: dict[str, str]  # every ticker with files -> its calendar


def _source_column() -> pl.Expr:
    import polars as pl

    home = pl.col("path").str.extract(r"^(.*)/stocks_[^/]+/[^/]+$")
    return (
        pl.when(pl.col("kind") != LEGACY)
        .then(pl.col("venue"))
        .when(home.is_null())
        .then(pl.lit(LEGACY))
        .otherwise(pl.lit(LEGACY + " ") + home)
        .alias("source")
    )


def _legacy_source(home: str) -> str:
    return LEGACY if home == COLLECTOR_LEGACY_HOME else f"{LEGACY} {home}"


def _routed_order(ws: Workspace, ticker: str, interval: str) -> list[str]:
    """Sources in the order the collector's reader tries them (core.store.routing)."""
    try:
        location = locate(ws, ticker, interval)
    except ParqctlError:  # a file name no collector would route to: no preference
        return []
    dataset_dir = location.partition_dir.parent  # .../<market>/<source>/stocks_<iv>
    venue = f"{dataset_dir.parent.parent.name}:{dataset_dir.parent.name}"
    try:
        read = location.legacy_path.parent.parent.relative_to(ws.root).as_posix()
    except ValueError:  # a storage block rooted outside the workspace
        read = None
    legacy = [_legacy_source(read)] + [_legacy_source(h) for h in LEGACY_HOMES if h != read]
    return [venue, *legacy] if location.mode == "partitioned" else [*legacy, venue]


def _routable(ticker: str) -> bool:
    try:
        validate_ticker(ticker)
    except ParqctlError:
        return False
    return True


def choose_sources(ws: Workspace, interval: str, files: pl.DataFrame) -> dict[str, str]:
    """Ticker -> the source its bars are read from; routing decides only where it matters."""
    import polars as pl

    per_ticker = files.group_by("ticker").agg(pl.col("source").unique().sort())
    chosen = {}
    # The order depends on the ticker's storage block, not on its name: after a migration
    # thousands of tickers share one block, so routing is asked once per distinct block.
    by_block: dict[str, list[str]] = {}
    for ticker, sources in per_ticker.iter_rows():
        if len(sources) == 1:
            chosen[ticker] = sources[0]
            continue
        if not _routable(ticker):
            routed = []
        else:
            block = json.dumps(storage_block(ws, ticker, interval), sort_keys=True, default=str)
            if block not in by_block:
                by_block[block] = _routed_order(ws, ticker, interval)
            routed = by_block[block]
        order = [s for s in routed if s in sources]
        chosen[ticker] = order[0] if order else sources[0]
    return chosen


def _market(ws: Workspace, ticker: str, interval: str, source: str) -> str:
    """A venue's market; legacy data is us unless the ticker's storage block names one."""
    if not source.startswith(LEGACY):
        return source.split(":", 1)[0]
    # The raw entry (its shape is checked on load): a TickerEntry per ticker costs more
    # than all the rest of this for 5,000 tickers.
    entry = ws.tickers.raw.get(ticker) or {}
    storage = entry.get("intervals", {}).get(interval, {}).get("storage")
    venue = StorageBlock.from_raw(storage).venue if storage is not None else None
    return (venue or DEFAULT_VENUE).market


def coverage_grid(
    ws: Workspace, index: FileIndex, interval: str, *, start: date | None = None
) -> CoverageGrid:
    """The grid of one interval; ``start`` extends the sessions before the earliest bar."""
    import polars as pl

    # Relational work on the scalar columns only: the session lists are read in place.
    arrays = _within_calendars(index)
    files = (
        index.files.select("path", "kind", "interval", "venue", "ticker", "error")
        .with_columns(day_count=pl.Series(np.diff(arrays.offsets)))
        .with_row_index("position")
        .filter(pl.col("interval") == interval)
        .with_columns(_source_column())
        .drop("interval", "kind", "venue")
    )
    chosen = choose_sources(ws, interval, files)
    by_market = functools.cache(lambda market: calendar_for_market(market, ws.config.calendars))
    calendars = {
        ticker: by_market(_market(ws, ticker, interval, source))
        for ticker, source in chosen.items()
    }
    choice = pl.DataFrame(
        {
            "ticker": list(chosen),
            "source": list(chosen.values()),
            "calendar": [calendars[t] for t in chosen],
        },
        schema={"ticker": pl.String, "source": pl.String, "calendar": pl.String},
    )
    files = files.join(choice, on=["ticker", "source"], how="inner")
    unreadable: dict[str, list[UnreadableFile]] = {}
    for ticker, path, error in (
        files.filter(pl.col("error").is_not_null()).select("ticker", "path", "error").iter_rows()
    ):
        unreadable.setdefault(ticker, []).append(UnreadableFile(path, error))
    files = files.filter(pl.col("error").is_null() & (pl.col("day_count") > 0))
    blocks = [
        _block(ws, interval, calendar, files.filter(pl.col("calendar") == calendar), arrays, start)
        for calendar in sorted(set(files["calendar"].to_list()))
    ]
    present = set(files["ticker"].to_list())
    without_bars = sorted(t for t in chosen if t not in present)
    return CoverageGrid(interval, blocks, unreadable, without_bars, chosen, calendars)


def _within_calendars(index: FileIndex) -> SessionArrays:
    """The index's session lists without the days no calendar has (before FIRST_BAR_DAY,
    after LAST_BAR_DAY: a corrupted time, which integrity reports), so that one such bar
    neither stretches its ticker's span to the year 2262 nor stops the whole grid. The
    lists are copied only when some file has such a day."""
    import polars as pl

    arrays = index.sessions
    first, last = (datetime.combine(d, time()) for d in (FIRST_BAR_DAY, LAST_BAR_DAY))
    outside = index.files.select(
        ((pl.col("min_date") < first) | (pl.col("max_date") >= last + timedelta(days=1))).any()
    ).item()
    if not outside:
        return arrays
    days = arrays.days
    keep = (days >= _day(FIRST_BAR_DAY)) & (days <= _day(LAST_BAR_DAY))
    kept_before = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
    return SessionArrays(kept_before[arrays.offsets], days[keep], arrays.bars[keep])


def _block(
    ws: Workspace,
    interval: str,
    calendar: str,
    files: pl.DataFrame,
    arrays: SessionArrays,
    start: date | None,
) -> CalendarBlock:
    import polars as pl

    files = files.sort("position")  # path order: a ticker's files are neighbours, by month
    positions = files["position"].to_numpy().astype(np.int64)
    # Each file's row: its ticker's rank of first appearance (an Enum's codes, in one pass
    # over hundreds of thousands of files).
    tickers = files["ticker"].unique(maintain_order=True).to_list()
    file_rows = files["ticker"].cast(pl.Enum(tickers)).to_physical().to_numpy().astype(np.int64)
    order = np.argsort(file_rows, kind="stable")  # groups the files of a ticker in two roots
    positions, file_rows = positions[order], file_rows[order]
    first_file = np.flatnonzero(np.concatenate(([True], file_rows[1:] != file_rows[:-1])))
    source_of_file = files["source"].to_list()
    sources = [source_of_file[i] for i in order[first_file]]

    begins, ends = arrays.offsets[positions], arrays.offsets[positions + 1]
    lengths = ends - begins
    if np.all(begins[1:] == ends[:-1]):  # one run of files: a view, no copy
        days = arrays.days[begins[0] : ends[-1]]
        bars = arrays.bars[begins[0] : ends[-1]]
    else:  # runs of neighbouring files (a ticker's cold months, then its hot ones): copied
        cuts = np.flatnonzero(begins[1:] != ends[:-1]) + 1
        firsts, lasts = begins[np.append(0, cuts)], ends[np.append(cuts, len(ends)) - 1]
        spans = list(zip(firsts.tolist(), lasts.tolist(), strict=True))
        days = np.concatenate([arrays.days[b:e] for b, e in spans])
        bars = np.concatenate([arrays.bars[b:e] for b, e in spans])
    # Each file's days ascend; a ticker's files follow each other in time unless two
    # overlap (a misfiled month, a ticker in both legacy roots): checked per file.
    same_ticker = file_rows[1:] == file_rows[:-1]
    in_order = bool(np.all(~same_ticker | (arrays.days[begins[1:]] > arrays.days[ends[:-1] - 1])))
    ticker_begins = (np.cumsum(lengths) - lengths)[first_file]
    if in_order:
        first = days[ticker_begins]
        last = days[np.append(ticker_begins[1:], len(days)) - 1]
    else:
        first = np.minimum.reduceat(days, ticker_begins)
        last = np.maximum.reduceat(days, ticker_begins)

    span_start = int(first.min()) if start is None else min(int(first.min()), _day(start))
    span_end = int(last.max())
    table = cached_sessions(ws.root, calendar, _date(span_start), _date(span_end))
    session_days = table.dates.astype(np.int64)
    expected = table.bars_per_session(interval)
    period = PERIODS.get(interval)
    if period is not None:  # one bar per week, month or quarter that holds a session
        session_days = np.unique(period_start(session_days, period))
        expected = np.ones(len(session_days), dtype=np.int64)
        days, first, last = (period_start(d, period) for d in (days, first, last))
        span_start = min(span_start, int(first.min()), int(session_days.min(initial=span_start)))
        in_order = False  # several bars may fall into one period: add them up
    n = len(session_days)

    lo = np.searchsorted(session_days, first, side="left")
    counts = np.zeros((len(tickers), n), dtype=np.uint16)
    ticker_ends = np.append(ticker_begins[1:], len(days))
    # Most tickers have a bar on every session from their first to their last: then their
    # days are that run of sessions, checked as two contiguous slices, and their counts
    # are one slice copy. Only the others are mapped day by day.
    runs = session_days.astype(days.dtype)
    irregular = []
    for row, (begin, end, start_session) in enumerate(
        zip(ticker_begins.tolist(), ticker_ends.tolist(), lo.tolist(), strict=True)
    ):
        stop = start_session + end - begin
        # (bytes compare: a memcmp, several times cheaper per call than array_equal)
        if (
            in_order
            and stop <= n
            and days[begin:end].tobytes() == runs[start_session:stop].tobytes()
        ):
            counts[row, start_session:stop] = bars[begin:end]
        else:
            irregular.append(row)
    off_rows: list[np.ndarray] = []
    off_days: list[np.ndarray] = []
    if irregular:
        lookup = np.full(span_end - span_start + 1, -1, dtype=np.int64)  # day -> session
        lookup[session_days - span_start] = np.arange(n)
    for row in irregular:
        day_run = days[ticker_begins[row] : ticker_ends[row]]
        bar_run = bars[ticker_begins[row] : ticker_ends[row]]
        session = lookup[np.subtract(day_run, span_start, dtype=np.int64)]
        off = session < 0
        if off.any():  # bars on days that are not sessions: reported, not counted
            off_rows.append(np.full(int(off.sum()), row))
            off_days.append(day_run[off])
            session, bar_run = session[~off], bar_run[~off]
        if in_order:  # each session once
            counts[row, session] = bar_run
        else:  # overlapping files, or several bars in one period: add them up
            np.add.at(counts[row], session, bar_run)
    return CalendarBlock(
        calendar=calendar,
        dates=session_days.astype("datetime64[D]"),
        expected=expected,
        tickers=tickers,
        sources=sources,
        counts=counts,
        first=first.astype("datetime64[D]"),
        last=last.astype("datetime64[D]"),
        lo=lo,
        hi=np.searchsorted(session_days, last, side="right") - 1,
        off_rows=np.concatenate(off_rows) if off_rows else np.zeros(0, dtype=np.int64),
        off_days=(np.concatenate(off_days) if off_days else np.zeros(0, np.int64)).astype(
            "datetime64[D]"
        ),
    )


def _day(day: date) -> int:
    return int(np.datetime64(day, "D").astype(np.int64))


def _date(day: int) -> date:
    return np.datetime64(day, "D").astype(date)


def present_in(block: CalendarBlock, first: int, stop: int) -> np.ndarray:
    """Per ticker, sessions with a bar among sessions [first, stop)."""
    return np.count_nonzero(block.counts[:, first:stop], axis=1)


def missing_cells(
    block: CalendarBlock, lo: np.ndarray, hi: np.ndarray, present: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(ticker row, session) of every session in [lo, hi] of its row without a bar, in
    row-major order. ``present`` counts each row's sessions with bars in [lo, hi]; only
    rows with fewer than expected are looked at, so a healthy grid costs nothing more."""
    rows = np.flatnonzero(np.maximum(hi - lo + 1, 0) > present)
    if not len(rows):
        return rows, rows.copy()
    columns = np.arange(len(block.dates))
    sub_lo, sub_hi = lo[rows][:, None], hi[rows][:, None]
    mask = (block.counts[rows] == 0) & (columns >= sub_lo) & (columns <= sub_hi)
    sub_rows, cols = np.nonzero(mask)
    return rows[sub_rows], cols
