"""The availability heatmap as data: tickers x time buckets, a state and a coverage per cell.

``HeatmapSource(grid)`` does the per-session work once per index load: bars present
(capped at each session's length) as running sums per ticker, and where sessions are
missing. ``source.matrix(zoom, ...)`` then buckets by day, week or month, filters and
sorts with a few numpy gathers, cheap enough for every zoom or filter change.

    source = HeatmapSource(coverage_grid(ws, index, "1d"))
    heat = source.matrix("week", sort="coverage", pattern="A*", only_gaps=True)
    heat.tickers[i], heat.bucket_starts[j], heat.states[i, j], heat.coverage[i, j]
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np

from core.availability.coverage import CalendarBlock, CoverageGrid, missing_cells, present_in
from core.errors import ParqctlError
from core.patterns import matcher


class CellState(enum.IntEnum):
    NOT_EXPECTED = 0  # no session in the bucket: weekend, holiday
    OUTSIDE = 1  # sessions, but all before the ticker's first bar or after its last
    MISSING = 2  # sessions in the listed range, no bar at all
    PARTIAL = 3  # some of the expected bars
    COMPLETE = 4  # every expected bar
    CONFIRMED_EMPTY = 5  # missing, and Yahoo answered a backfill of it with no bars


LEGEND: dict[int, str] = {
    CellState.NOT_EXPECTED: "not expected",
    CellState.OUTSIDE: "outside listed range",
    CellState.MISSING: "missing",
    CellState.PARTIAL: "partial",
    CellState.COMPLETE: "complete",
    CellState.CONFIRMED_EMPTY: "confirmed empty (Yahoo has no bars)",
}
ZOOMS = ("day", "week", "month")
SORTS = ("name", "coverage", "recent_gap")
_ROWS_PER_CHUNK = 256  # bounds the temporaries of a day zoom over decades
_NAT = np.datetime64("NaT", "D")


@dataclass(frozen=True)
class Heatmap:
    interval: str
    zoom: str
    start: date  # the window shown; the first bucket may begin before it
    end: date
    tickers: list[str]  # row labels, in display order
    calendars: list[str]  # per row
    bucket_starts: np.ndarray  # datetime64[D], ascending
    states: np.ndarray  # uint8 [rows, buckets], CellState values
    coverage: np.ndarray  # float32 [rows, buckets]: bars present / expected; NaN: none expected
    row_coverage: np.ndarray  # float32 [rows], over the window
    last_gap: np.ndarray  # datetime64[D] [rows]: newest missing session in the window, or NaT
    total_tickers: int  # rows before filtering
    legend: dict[int, str]


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
        self, grid: CoverageGrid, confirmed_empty: Mapping[str, list[tuple[date, date]]] = {}
    ) -> None:
        """``confirmed_empty``: ticker -> the (first, last) days of its gaps Yahoo answered
        with no bars; a missing bucket wholly inside one is shown as such."""
        self.interval = grid.interval
        self._blocks = [_prepare(b) for b in grid.blocks]
        self._confirmed = confirmed_empty

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

        ``pattern`` is a substring of the ticker or a shell glob (core.patterns);
        ``only_gaps`` keeps tickers with a missing session in the window; ``sort`` is
        ``name``, ``coverage`` (worst first) or ``recent_gap`` (newest gap first; tickers
        without gaps last).
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
        parts = [_rows(p, lower, upper, pattern, only_gaps) for p in self._blocks]
        parts = [p for p in parts if len(p.rows)]
        tickers = [p.prepared.block.tickers[i] for p in parts for i in p.rows]
        row_coverage = _joined([p.row_coverage for p in parts], np.float32)
        last_gap = _joined([p.last_gap for p in parts], "datetime64[D]")
        order = _order(sort, tickers, row_coverage, last_gap)
        place = np.empty(len(order), dtype=np.int64)
        place[order] = np.arange(len(order))
        states = np.empty((len(order), len(starts)), dtype=np.uint8)
        coverage = np.empty((len(order), len(starts)), dtype=np.float32)
        offset = 0
        for part in parts:
            _cells(part, lower, upper, place[offset : offset + len(part.rows)], states, coverage)
            offset += len(part.rows)
        calendars = [p.prepared.block.calendar for p in parts for _ in p.rows]
        shown = [tickers[i] for i in order]
        if self._confirmed:
            dates = [p.prepared.block.dates for p in parts for _ in p.rows]
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
            total_tickers=sum(len(p.block.tickers) for p in self._blocks),
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
    pattern: str | None,
    only_gaps: bool,
) -> _Rows:
    block = prepared.block
    rows = np.arange(len(block.tickers))
    if pattern:
        wanted = matcher(pattern)  # a substring (AAP), or a glob (A*)
        rows = rows[[wanted(name) for name in prepared.upper_names]]
    window = np.searchsorted(block.dates, [lower[0], upper[-1]])
    last_gap = _last_gaps(prepared, window, len(block.tickers))[rows]
    if only_gaps:
        keep = ~np.isnat(last_gap)
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
    sessions: list[np.ndarray],
    confirmed: Mapping[str, list[tuple[date, date]]],
    lower: np.ndarray,
    upper: np.ndarray,
) -> None:
    """MISSING buckets whose every session lies in a confirmed-empty window become
    CONFIRMED_EMPTY; ``sessions[row]`` are the sessions of the row's calendar."""
    for row, ticker in enumerate(tickers):
        windows = confirmed.get(ticker)
        if not windows:
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
    sort: str, tickers: list[str], row_coverage: np.ndarray, last_gap: np.ndarray
) -> np.ndarray:
    names = np.array(tickers, dtype=object)
    by_name = np.argsort(names, kind="stable")
    if sort == "name":
        return by_name
    if sort == "coverage":
        key = np.where(np.isnan(row_coverage), np.inf, row_coverage)[by_name]
        return by_name[np.argsort(key, kind="stable")]
    gap_day = last_gap.astype("datetime64[D]").astype(np.int64)
    key = np.where(np.isnat(last_gap), np.iinfo(np.int64).max, -gap_day)[by_name]
    return by_name[np.argsort(key, kind="stable")]
