"""The availability heatmap as data: tickers x time buckets, a state and a coverage per cell.

``HeatmapSource(grid)`` does the per-session work once per index load: bars present
(capped at each session's length) as running sums per ticker, and where sessions are
missing. ``source.matrix(zoom, ...)`` then buckets by day, week or month, filters and
sorts with a few numpy gathers, cheap enough for every zoom or filter change.

Every ticker with files and every ticker registered for the interval is a row: one
without bars (its files unreadable or empty, quarantined, or none at all) is a row of its
own state, and ``issues`` marks the rows that need a look beyond their gaps.

    source = HeatmapSource(coverage_grid(ws, index, "1d"), registered=["AAPL", "^IXIC"])
    heat = source.matrix("week", sort="attention", pattern="AAP", only_gaps=True)
    heat.tickers[i], heat.bucket_starts[j], heat.states[i, j], heat.coverage[i, j]
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from core.availability.coverage import (
    LEGACY,
    CalendarBlock,
    CoverageGrid,
    missing_cells,
    present_in,
)
from core.availability.index import FileIndex
from core.errors import ParqctlError
from core.integrity import quarantine
from core.integrity.quarantine import QuarantineEntry
from core.patterns import matcher
from core.store.layout import interval_of_dataset_dir


class CellState(enum.IntEnum):
    NOT_EXPECTED = 0  # no session in the bucket: weekend, holiday
    OUTSIDE = 1  # sessions, but all before the ticker's first bar or after its last
    MISSING = 2  # sessions in the listed range, no bar at all
    PARTIAL = 3  # some of the expected bars
    COMPLETE = 4  # every expected bar
    CONFIRMED_EMPTY = 5  # missing, and Yahoo answered a backfill of it with no bars
    # A ticker without bars fills its row with why: the first that applies.
    UNREADABLE = 6  # its files cannot be read
    QUARANTINED = 7  # its files were moved to the quarantine
    NO_BARS = 8  # registered, or files that hold no rows


# ``Heatmap.issues`` of a row: why it has no bars (UNREADABLE, QUARANTINED, NO_BARS), or
# what else is wrong with one that has bars (an unreadable or quarantined file beside
# readable ones), or nothing.
NO_ISSUE = 0

LEGEND: dict[int, str] = {
    CellState.NOT_EXPECTED: "not expected",
    CellState.OUTSIDE: "outside listed range",
    CellState.MISSING: "missing",
    CellState.PARTIAL: "partial",
    CellState.COMPLETE: "complete",
    CellState.CONFIRMED_EMPTY: "confirmed empty (Yahoo has no bars)",
    CellState.UNREADABLE: "unreadable files",
    CellState.QUARANTINED: "quarantined files",
    CellState.NO_BARS: "no bars",
}
ZOOMS = ("day", "week", "month")
# ``attention``: rows with issues, then rows with gaps (worst coverage first), then rows
# with partial sessions, then the complete ones; by name within each.
SORTS = ("attention", "name", "coverage", "recent_gap")
_ROWS_PER_CHUNK = 256  # bounds the temporaries of a day zoom over decades
_NAT = np.datetime64("NaT", "D")


@dataclass(frozen=True)
class Heatmap:
    interval: str
    zoom: str
    start: date  # the window shown; the first bucket may begin before it
    end: date
    tickers: list[str]  # row labels, in display order
    calendars: list[str]  # per row; "" for a ticker without files
    bucket_starts: np.ndarray  # datetime64[D], ascending
    states: np.ndarray  # uint8 [rows, buckets], CellState values
    coverage: np.ndarray  # float32 [rows, buckets]: bars present / expected; NaN: none expected
    row_coverage: np.ndarray  # float32 [rows], over the window
    last_gap: np.ndarray  # datetime64[D] [rows]: newest missing session in the window, or NaT
    issues: np.ndarray  # uint8 [rows]: a CellState of a row without bars, or NO_ISSUE
    total_tickers: int  # rows before filtering
    legend: dict[int, str]


def quarantined_files(root: Path, interval: str) -> dict[str, list[QuarantineEntry]]:
    """Ticker -> its files of ``interval`` now in the quarantine (valid entries whose file
    is still there), read from each entry's original path: ``stocks_<iv>/<T>.parquet`` or
    ``.../stocks_<iv>/ticker=<T>/...``."""
    found: dict[str, list[QuarantineEntry]] = {}
    for entry in quarantine.entries(root):
        if entry.condition != "ok":
            continue
        parts = entry.original_path.split("/")
        at = [i for i, part in enumerate(parts[:-1]) if interval_of_dataset_dir(part) == interval]
        if not at:
            continue
        name = parts[at[-1] + 1]
        if name.startswith("ticker="):
            ticker = name.removeprefix("ticker=")
        elif name.endswith(".parquet") and at[-1] + 2 == len(parts):
            ticker = name.removesuffix(".parquet")
        else:
            continue
        found.setdefault(ticker, []).append(entry)
    return found


def ticker_paths(index: FileIndex, grid: CoverageGrid) -> dict[str, str]:
    """Ticker -> where the grid reads its bars, relative to the root: its file (legacy
    layout) or its ``ticker=<T>`` directory (partitioned), in the source the grid chose."""
    import polars as pl

    files = index.files.lazy().filter(pl.col("interval") == grid.interval)
    partitioned = pl.col("kind") != LEGACY
    # One file per ticker and venue first (cheap), so the paths parsed are a few per ticker.
    candidates = pl.concat(
        [
            files.filter(partitioned).unique(["ticker", "venue"], keep="first"),
            files.filter(~partitioned),
        ]
    )
    legacy_home = pl.col("path").str.extract(r"^(.*)/stocks_[^/]+/[^/]+$")
    located = candidates.select(
        "ticker",
        pl.when(partitioned)
        .then(pl.col("venue"))
        .when(legacy_home.is_null())
        .then(pl.lit(LEGACY))
        .otherwise(pl.lit(LEGACY + " ") + legacy_home)
        .alias("source"),
        pl.when(partitioned)
        .then(pl.col("path").str.extract(r"^(.*/ticker=[^/]+)/"))
        .otherwise(pl.col("path"))
        .alias("located"),
    ).collect()
    return {
        ticker: path
        for ticker, source, path in located.iter_rows()
        if grid.sources.get(ticker) == source
    }


@dataclass(frozen=True)
class _Prepared:
    block: CalendarBlock
    upper_names: list[str]
    present_sums: np.ndarray  # int32 [tickers, sessions + 1]: running sum of capped bars
    expected_sums: np.ndarray  # int64 [sessions + 1]: running sum of the session lengths
    gap_rows: np.ndarray  # missing sessions in the listed ranges, row-major: row ...
    gap_cols: np.ndarray  # ... and session


def _prepare(block: CalendarBlock) -> _Prepared:
    n = len(block.dates)
    capped = np.minimum(block.counts, block.expected.astype(np.uint16))
    present_sums = np.zeros((len(block.tickers), n + 1), dtype=np.int32)
    np.cumsum(capped, axis=1, dtype=np.int32, out=present_sums[:, 1:])
    gap_rows, gap_cols = missing_cells(block, block.lo, block.hi, present_in(block, 0, n))
    return _Prepared(
        block,
        [t.upper() for t in block.tickers],
        present_sums,
        np.concatenate(([0], np.cumsum(block.expected))),
        gap_rows,
        gap_cols,
    )


def bucket_starts(zoom: str, start: date, end: date) -> np.ndarray:
    """The first day of each day, week (Monday) or month bucket covering start..end."""
    first, last = np.datetime64(start, "D"), np.datetime64(end, "D")
    if zoom == "day":
        return np.arange(first, last + 1)
    if zoom == "week":
        monday = first - (first.astype(date).weekday())
        return np.arange(monday, last + 1, 7)
    if zoom == "month":
        months = np.arange(first.astype("datetime64[M]"), last.astype("datetime64[M]") + 1)
        return months.astype("datetime64[D]")
    raise ParqctlError(f"unknown zoom {zoom!r}", f"use one of {', '.join(ZOOMS)}")


class HeatmapSource:
    """One interval's coverage prepared for heatmaps; build once per index load."""

    def __init__(
        self,
        grid: CoverageGrid,
        confirmed_empty: Mapping[str, list[tuple[date, date]]] = {},
        *,
        registered: Iterable[str] = (),
        quarantined: Iterable[str] = (),
    ) -> None:
        """``confirmed_empty``: ticker -> the (first, last) days of its gaps Yahoo answered
        with no bars; a missing bucket wholly inside one is shown as such. ``registered``:
        the tickers tickers.json lists for the interval; ``quarantined``: those with a
        file of the interval in the quarantine (``quarantined_files``)."""
        self.interval = grid.interval
        self._blocks = [_prepare(b) for b in grid.blocks]
        self._confirmed = confirmed_empty
        with_bars = {t for b in grid.blocks for t in b.tickers}
        quarantined = set(quarantined)
        # A row with bars has an issue when some of its files are unreadable or quarantined.
        self._issues = {t: CellState.QUARANTINED for t in quarantined & with_bars}
        self._issues.update({t: CellState.UNREADABLE for t in grid.unreadable if t in with_bars})
        # The rows without bars, each filled with why.
        without = (set(registered) | set(grid.sources) | quarantined) - with_bars
        why = {t: CellState.NO_BARS for t in without}
        why.update({t: CellState.QUARANTINED for t in quarantined & without})
        why.update({t: CellState.UNREADABLE for t in grid.unreadable if t in without})
        self._without_bars = sorted(why.items())
        self._calendars = grid.calendars
        self._with_issue = [
            np.array([t in self._issues for t in p.block.tickers], dtype=bool) for p in self._blocks
        ]

    @property
    def span(self) -> tuple[date, date] | None:
        """First and last session with bars of any ticker; None without bars."""
        blocks = [p.block for p in self._blocks if len(p.block.tickers)]
        if not blocks:
            return None
        first = min(b.dates[max(int(b.lo.min()), 0)] for b in blocks)
        last = max(b.dates[min(int(b.hi.max()), len(b.dates) - 1)] for b in blocks)
        return first.astype(date), last.astype(date)

    def matrix(
        self,
        zoom: str = "week",
        *,
        start: date | None = None,
        end: date | None = None,
        sort: str = "name",
        pattern: str | None = None,
        only_gaps: bool = False,
    ) -> Heatmap:
        """The matrix for a window (default: the whole span) at a zoom.

        ``pattern`` is a part of the ticker or a shell glob, case-insensitive;
        ``only_gaps`` keeps tickers with a missing session in the window or an issue;
        ``sort`` is ``attention`` (see SORTS), ``name``, ``coverage`` (worst first) or
        ``recent_gap`` (newest gap first; tickers without gaps last).
        """
        if sort not in SORTS:
            raise ParqctlError(f"unknown sort {sort!r}", f"use one of {', '.join(SORTS)}")
        span = self.span
        if span is None:
            start = start or date.today()
            end = end or start
        else:
            start, end = start or span[0], end or span[1]
        if end < start:
            raise ParqctlError(f"window end {end} is before its start {start}", "swap them")
        starts = bucket_starts(zoom, start, end)
        lower = np.maximum(starts, np.datetime64(start, "D"))
        upper = np.append(starts[1:], np.datetime64(end, "D") + 1)

        # Rows first (filters, sort keys), then the cells straight into their sorted place.
        matches = matcher(pattern) if pattern else None
        parts = [
            _rows(p, lower, upper, matches, only_gaps, issue)
            for p, issue in zip(self._blocks, self._with_issue, strict=True)
        ]
        parts = [p for p in parts if len(p.rows)]
        bare = [(t, why) for t, why in self._without_bars if matches is None or matches(t.upper())]
        tickers = [p.prepared.block.tickers[i] for p in parts for i in p.rows]
        tickers += [t for t, _ in bare]
        row_coverage = _joined([p.row_coverage for p in parts], np.float32)
        row_coverage = np.concatenate([row_coverage, np.full(len(bare), np.nan, np.float32)])
        last_gap = _joined([p.last_gap for p in parts], "datetime64[D]")
        last_gap = np.concatenate([last_gap, np.full(len(bare), _NAT)])
        issues = np.array(
            [self._issues.get(t, NO_ISSUE) for t in tickers[: len(tickers) - len(bare)]]
            + [why for _, why in bare],
            dtype=np.uint8,
        )
        order = _order(sort, tickers, row_coverage, last_gap, issues)
        place = np.empty(len(order), dtype=np.int64)
        place[order] = np.arange(len(order))
        states = np.empty((len(order), len(starts)), dtype=np.uint8)
        coverage = np.empty((len(order), len(starts)), dtype=np.float32)
        offset = 0
        for part in parts:
            _cells(part, lower, upper, place[offset : offset + len(part.rows)], states, coverage)
            offset += len(part.rows)
        for row, (_, why) in zip(place[offset:].tolist(), bare, strict=True):
            states[row], coverage[row] = why, np.nan
        calendars = [p.prepared.block.calendar for p in parts for _ in p.rows]
        calendars += [self._calendars.get(t, "") for t, _ in bare]
        shown = [tickers[i] for i in order]
        if self._confirmed:
            dates = [p.prepared.block.dates for p in parts for _ in p.rows] + [None] * len(bare)
            _mark_confirmed(states, shown, [dates[i] for i in order], self._confirmed, lower, upper)
        return Heatmap(
            interval=self.interval,
            zoom=zoom,
            start=start,
            end=end,
            tickers=shown,
            calendars=[calendars[i] for i in order],
            bucket_starts=starts,
            states=states,
            coverage=coverage,
            row_coverage=row_coverage[order],
            last_gap=last_gap[order],
            issues=issues[order],
            total_tickers=sum(len(p.block.tickers) for p in self._blocks) + len(self._without_bars),
            legend=dict(LEGEND),
        )


@dataclass(frozen=True)
class _Rows:
    """The rows of one calendar block that a heatmap shows, with their sort keys."""

    prepared: _Prepared
    rows: np.ndarray  # into the block
    row_coverage: np.ndarray
    last_gap: np.ndarray


def _joined(arrays: list[np.ndarray], dtype: str | type) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)


def _rows(
    prepared: _Prepared,
    lower: np.ndarray,
    upper: np.ndarray,
    matches: Callable[[str], bool] | None,
    only_gaps: bool,
    with_issue: np.ndarray,
) -> _Rows:
    block = prepared.block
    rows = np.arange(len(block.tickers))
    if matches is not None:
        rows = rows[[matches(name) for name in prepared.upper_names]]
    window = np.searchsorted(block.dates, [lower[0], upper[-1]])
    last_gap = _last_gaps(prepared, window, len(block.tickers))[rows]
    if only_gaps:
        keep = ~np.isnat(last_gap) | with_issue[rows]
        rows, last_gap = rows[keep], last_gap[keep]
    sums = prepared.present_sums
    present = sums[rows, window[1]] - sums[rows, window[0]]
    expected = _expected_in(
        prepared.expected_sums, window[0], window[1], block.lo[rows], block.hi[rows] + 1
    )
    row_coverage = np.empty(len(rows), dtype=np.float32)
    _ratio(present, expected, out=row_coverage)
    return _Rows(prepared, rows, row_coverage, last_gap)


def _cells(
    part: _Rows,
    lower: np.ndarray,
    upper: np.ndarray,
    place: np.ndarray,
    states: np.ndarray,
    coverage: np.ndarray,
) -> None:
    """States and coverage of the part's rows, written to rows ``place`` of the outputs."""
    prepared = part.prepared
    block, dates = prepared.block, prepared.block.dates
    s_idx, e_idx = np.searchsorted(dates, lower), np.searchsorted(dates, upper)
    full = (prepared.expected_sums[e_idx] - prepared.expected_sums[s_idx]).astype(np.int32)
    no_sessions = s_idx == e_idx
    chunk_states = np.empty((_ROWS_PER_CHUNK, len(lower)), dtype=np.uint8)
    chunk_coverage = np.empty((_ROWS_PER_CHUNK, len(lower)), dtype=np.float32)
    for begin in range(0, len(part.rows), _ROWS_PER_CHUNK):
        chunk = part.rows[begin : begin + _ROWS_PER_CHUNK]
        size = len(chunk)
        lo, stop = block.lo[chunk], block.hi[chunk] + 1
        sums = prepared.present_sums[chunk]
        present = sums[:, e_idx]
        present -= sums[:, s_idx]
        expected = _expected_cells(prepared.expected_sums, s_idx, e_idx, full, lo, stop)
        _ratio(present, expected, out=chunk_coverage[:size])
        _states(no_sessions, present, expected, out=chunk_states[:size])
        states[place[begin : begin + size]] = chunk_states[:size]
        coverage[place[begin : begin + size]] = chunk_coverage[:size]


def _last_gaps(prepared: _Prepared, window: np.ndarray, n_rows: int) -> np.ndarray:
    """Per ticker, its newest missing session within sessions [first, stop); NaT if none."""
    cols = prepared.gap_cols
    inside = (cols >= window[0]) & (cols < window[1])
    newest = np.full(n_rows, -1, dtype=np.int64)
    np.maximum.at(newest, prepared.gap_rows[inside], cols[inside])
    last_gap = np.full(n_rows, _NAT)
    found = newest >= 0
    last_gap[found] = prepared.block.dates[newest[found]]
    return last_gap


def _expected_cells(
    expected_sums: np.ndarray,
    s_idx: np.ndarray,
    e_idx: np.ndarray,
    full: np.ndarray,
    lo: np.ndarray,
    stop: np.ndarray,
) -> np.ndarray:
    """Bars expected per row and bucket: the bucket's sessions [s, e) within the row's
    listed range [lo, stop). Buckets wholly inside take ``full`` (computed per bucket),
    so only the two buckets at a range's ends are computed per row."""
    buckets = len(s_idx)
    first = np.searchsorted(e_idx, lo, side="right")  # the bucket holding session lo
    last = np.searchsorted(s_idx, stop, side="left") - 1  # the bucket holding stop - 1
    expected = np.tile(full, (len(lo), 1))
    # Zero the buckets outside each row's range: two slices a row beat 2-D masks.
    for row, (a, b) in enumerate(zip(first.tolist(), last.tolist(), strict=True)):
        expected[row, : max(a, 0)] = 0
        expected[row, max(b + 1, 0) :] = 0
    for edge in (first, last):
        rows = np.flatnonzero((edge >= first) & (edge <= last) & (edge >= 0) & (edge < buckets))
        bucket = edge[rows]
        expected[rows, bucket] = _expected_in(
            expected_sums, s_idx[bucket], e_idx[bucket], lo[rows], stop[rows]
        )
    return expected


def _expected_in(
    expected_sums: np.ndarray, s: np.ndarray, e: np.ndarray, lo: np.ndarray, stop: np.ndarray
) -> np.ndarray:
    """Bars expected in sessions [s, e) that are also in [lo, stop), elementwise."""
    a, b = np.maximum(s, lo), np.minimum(e, stop)
    return np.where(b > a, expected_sums[np.maximum(a, b)] - expected_sums[a], 0)


def _ratio(present: np.ndarray, expected: np.ndarray, out: np.ndarray) -> None:
    """present / expected into ``out`` (float32). Bars are only ever present where they
    are expected, so nothing expected is 0 / 0: NaN, with no mask to apply."""
    with np.errstate(invalid="ignore", divide="ignore"):
        np.true_divide(present, expected, out=out, dtype=np.float32)


def _states(
    no_sessions: np.ndarray, present: np.ndarray, expected: np.ndarray, out: np.ndarray
) -> None:
    """Arithmetic rather than masked writes (several times faster on large matrices):
    1 + expected * (1 + present * (1 + complete)) gives OUTSIDE, MISSING, PARTIAL or
    COMPLETE; then NOT_EXPECTED where the bucket holds no session."""
    np.greater_equal(present, expected, out=out.view(np.bool_))  # 0 or 1, in place
    out += 1
    out *= present > 0
    out += 1
    out *= expected > 0
    out += 1
    out[:, no_sessions] = CellState.NOT_EXPECTED


def _mark_confirmed(
    states: np.ndarray,
    tickers: list[str],
    sessions: list[np.ndarray | None],
    confirmed: Mapping[str, list[tuple[date, date]]],
    lower: np.ndarray,
    upper: np.ndarray,
) -> None:
    """MISSING buckets whose every session lies in a confirmed-empty window become
    CONFIRMED_EMPTY; ``sessions[row]`` are the sessions of the row's calendar (None: a
    row without bars)."""
    for row, ticker in enumerate(tickers):
        windows = confirmed.get(ticker)
        if not windows or sessions[row] is None:
            continue
        dates = sessions[row]
        in_bucket = np.searchsorted(dates, upper) - np.searchsorted(dates, lower)
        covered = np.zeros(len(lower), dtype=np.int64)
        for first, last in windows:
            lo = np.maximum(lower, np.datetime64(first, "D"))
            hi = np.minimum(upper, np.datetime64(last, "D") + 1)
            covered += np.maximum(np.searchsorted(dates, hi) - np.searchsorted(dates, lo), 0)
        cells = states[row]
        cells[(in_bucket > 0) & (covered >= in_bucket) & (cells == CellState.MISSING)] = (
            CellState.CONFIRMED_EMPTY
        )


def _order(
    sort: str,
    tickers: list[str],
    row_coverage: np.ndarray,
    last_gap: np.ndarray,
    issues: np.ndarray,
) -> np.ndarray:
    names = np.array(tickers, dtype=object)
    by_name = np.argsort(names, kind="stable")
    if sort == "name":
        return by_name
    if sort == "coverage":
        key = np.where(np.isnan(row_coverage), np.inf, row_coverage)[by_name]
        return by_name[np.argsort(key, kind="stable")]
    if sort == "attention":
        # 0: an issue, 1: gaps, 2: partial sessions, 3: complete (or nothing expected).
        rank = np.full(len(tickers), 3, dtype=np.int64)
        rank[row_coverage < 1] = 2
        rank[~np.isnat(last_gap)] = 1
        rank[issues != NO_ISSUE] = 0
        worst = np.where(np.isnan(row_coverage), 1.0, row_coverage)
        return by_name[np.lexsort((worst[by_name], rank[by_name]))]
    gap_day = last_gap.astype("datetime64[D]").astype(np.int64)
    key = np.where(np.isnat(last_gap), np.iinfo(np.int64).max, -gap_day)[by_name]
    return by_name[np.argsort(key, kind="stable")]
