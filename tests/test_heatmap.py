"""The heatmap matrix: exact cells around holidays and listings, zooms, sorting, filters,
and the rows of tickers without bars (unreadable, quarantined, none)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
from session_bars import (
    EARLY_CLOSE,
    daily,
    hourly,
    session_days,
    write_legacy,
    write_metadata,
    write_partitioned,
)

from core.availability.coverage import CoverageGrid, coverage_grid
from core.availability.gaps import registered_for
from core.availability.heatmap import (
    LEGEND,
    CellState,
    Heatmap,
    HeatmapSource,
    bucket_starts,
    quarantined_files,
    ticker_paths,
)
from core.availability.index import refresh_index
from core.errors import ParqctlError
from core.integrity import quarantine
from core.safety import run_lock
from core.store.routing import DEFAULT_VENUE
from core.store.workspace import Workspace

START, END = date(2025, 11, 17), date(2025, 12, 31)
C, P, M = CellState.COMPLETE, CellState.PARTIAL, CellState.MISSING
X, N = CellState.OUTSIDE, CellState.NOT_EXPECTED  # X: outside the listed range
CHRISTMAS_WEEK = [date(2025, 12, 22), date(2025, 12, 23), date(2025, 12, 24), date(2025, 12, 26)]


@pytest.fixture(scope="module")
def grids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CoverageGrid]:
    root = tmp_path_factory.mktemp("heatmap") / "ws"
    write_legacy(root, "1d", "AAA", daily(session_days(START, END, skip=[date(2025, 11, 26)])))
    write_legacy(root, "1d", "BBB", daily(session_days(date(2025, 12, 1), END)))
    write_legacy(root, "1d", "CCC", daily(session_days(START, END)))
    write_legacy(root, "1d", "ZZZ", daily(session_days(START, END, skip=CHRISTMAS_WEEK)))
    write_legacy(root, "1h", "AAA", hourly(session_days(START, END), cut={EARLY_CLOSE: 3}))
    write_metadata(root, {"AAA": ["1d", "1h"], "BBB": ["1d"], "CCC": ["1d"], "ZZZ": ["1d"]})
    ws = Workspace.open(root)
    index = refresh_index(root)
    return {iv: coverage_grid(ws, index, iv) for iv in ("1d", "1h")}


@pytest.fixture(scope="module")
def sources(grids) -> dict[str, HeatmapSource]:
    return {iv: HeatmapSource(grid) for iv, grid in grids.items()}


def row(heat: Heatmap, ticker: str) -> tuple[list[int], np.ndarray]:
    i = heat.tickers.index(ticker)
    return heat.states[i].tolist(), heat.coverage[i]


def test_day_cells_around_thanksgiving(sources):
    heat = sources["1d"].matrix("day", start=date(2025, 11, 24), end=date(2025, 11, 30))
    assert heat.bucket_starts.astype(date).tolist() == [date(2025, 11, d) for d in range(24, 31)]
    assert heat.tickers == ["AAA", "BBB", "CCC", "ZZZ"] and heat.total_tickers == 4
    states, coverage = row(heat, "AAA")
    #                 Mon Tue Wed Thanksgiving Fri(13:00) Sat Sun
    assert states == [C, C, M, N, C, N, N]
    assert coverage[[0, 2, 4]].tolist() == [1.0, 0.0, 1.0] and np.isnan(coverage[3])
    states, coverage = row(heat, "BBB")  # listed on 2025-12-01
    assert states == [X, X, X, N, X, N, N] and np.isnan(coverage).all()
    assert heat.states.dtype == np.uint8 and heat.coverage.dtype == np.float32
    assert heat.legend == LEGEND and LEGEND[CellState.OUTSIDE] == "outside listed range"
    assert heat.calendars == ["XNYS"] * 4


def test_week_and_month_buckets(sources):
    week = sources["1d"].matrix("week")
    mondays = [date(2025, 11, 17), date(2025, 11, 24)] + [
        date(2025, 12, d) for d in (1, 8, 15, 22, 29)
    ]
    assert week.bucket_starts.astype(date).tolist() == mondays
    states, coverage = row(week, "AAA")
    assert states == [C, P, C, C, C, C, C] and coverage[1] == pytest.approx(3 / 4)
    assert row(week, "BBB")[0] == [X, X, C, C, C, C, C]
    states, coverage = row(week, "ZZZ")
    assert states[5] == M and coverage[5] == 0.0

    month = sources["1d"].matrix("month")
    assert month.bucket_starts.astype(date).tolist() == [date(2025, 11, 1), date(2025, 12, 1)]
    states, coverage = row(month, "AAA")  # the window starts on 11-17: 9 sessions, 8 present
    assert states == [P, C] and coverage[0] == pytest.approx(8 / 9)
    assert row(month, "BBB")[0] == [X, C]

    midweek = sources["1d"].matrix("week", start=date(2025, 11, 19), end=date(2025, 11, 28))
    assert midweek.bucket_starts.astype(date).tolist() == [date(2025, 11, 17), date(2025, 11, 24)]
    assert row(midweek, "CCC")[0] == [C, C] and row(midweek, "AAA")[0] == [C, P]
    coverage = midweek.row_coverage  # AAA: 6 of the 7 sessions from 11-19; BBB: not listed
    assert coverage[0] == pytest.approx(6 / 7) and np.isnan(coverage[1])
    assert coverage[2:].tolist() == [1.0, 1.0]


def test_intraday_partial_session_on_an_early_close(sources):
    day = sources["1h"].matrix("day", start=date(2025, 11, 26), end=date(2025, 11, 28))
    states, coverage = row(day, "AAA")
    assert states == [C, N, P] and coverage[2] == pytest.approx(3 / 4)
    week = sources["1h"].matrix("week", start=date(2025, 11, 24), end=date(2025, 11, 30))
    states, coverage = row(week, "AAA")
    assert states == [P] and coverage[0] == pytest.approx(24 / 25)  # 7+7+7+4 expected


def test_sorting(sources):
    source = sources["1d"]
    assert source.matrix(sort="name").tickers == ["AAA", "BBB", "CCC", "ZZZ"]
    worst = source.matrix(sort="coverage")
    assert worst.tickers == ["ZZZ", "AAA", "BBB", "CCC"]
    assert worst.row_coverage.tolist() == pytest.approx([27 / 31, 30 / 31, 1.0, 1.0])
    recent = source.matrix(sort="recent_gap")
    assert recent.tickers == ["ZZZ", "AAA", "BBB", "CCC"]
    assert recent.last_gap[:2].astype(date).tolist() == [date(2025, 12, 26), date(2025, 11, 26)]
    assert np.isnat(recent.last_gap[2:]).all()


def test_filters(sources):
    source = sources["1d"]
    assert source.matrix(pattern="a*").tickers == ["AAA"]
    assert source.matrix(pattern="[bc]??").tickers == ["BBB", "CCC"]
    assert source.matrix(pattern="z").tickers == ["ZZZ"]  # no glob: a substring
    assert source.matrix(pattern="AA").tickers == ["AAA"]
    assert source.matrix(only_gaps=True).tickers == ["AAA", "ZZZ"]
    december = source.matrix(only_gaps=True, start=date(2025, 12, 1), end=END)
    assert december.tickers == ["ZZZ"] and december.total_tickers == 4
    nothing = source.matrix(pattern="Q*")
    assert nothing.tickers == [] and nothing.states.shape == (0, len(nothing.bucket_starts))


def test_bad_requests_are_refused(sources):
    with pytest.raises(ParqctlError, match="zoom"):
        sources["1d"].matrix("hour")
    with pytest.raises(ParqctlError, match="sort"):
        sources["1d"].matrix(sort="size")
    with pytest.raises(ParqctlError, match="before"):
        sources["1d"].matrix(start=END, end=START)


def test_bucket_starts():
    assert bucket_starts("week", date(2025, 12, 31), date(2026, 1, 5)).astype(date).tolist() == [
        date(2025, 12, 29),
        date(2026, 1, 5),
    ]
    assert len(bucket_starts("month", date(2024, 2, 29), date(2025, 2, 1))) == 13


def test_a_gap_yahoo_had_no_bars_for_has_its_own_state(grids):
    """ZZZ misses Christmas week; backfill found Dec 22-24 empty, Dec 26 not asked."""
    confirmed = HeatmapSource(grids["1d"], {"ZZZ": [(date(2025, 12, 22), date(2025, 12, 24))]})
    E = CellState.CONFIRMED_EMPTY
    day = confirmed.matrix("day", start=date(2025, 12, 22), end=date(2025, 12, 26))
    assert row(day, "ZZZ")[0] == [E, E, E, N, M]
    week = confirmed.matrix("week", start=date(2025, 12, 22), end=date(2025, 12, 28))
    assert row(week, "ZZZ")[0] == [M]  # Dec 26 is missing too and not confirmed
    confirmed = HeatmapSource(grids["1d"], {"ZZZ": [(date(2025, 12, 22), date(2025, 12, 26))]})
    week = confirmed.matrix("week", start=date(2025, 12, 22), end=date(2025, 12, 28))
    assert row(week, "ZZZ")[0] == [E]
    assert row(week, "AAA")[0] == [C] and LEGEND[E].startswith("confirmed empty")


# --- every ticker is a row; what needs attention first -----------------------------------


@pytest.fixture(scope="module")
def troubled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OK is complete; GAP misses a session; BAD's only file is cut short; HOLE's file has
    no rows; GONE's only file is in the quarantine; NEW is in tickers.json with no file;
    PART is partitioned, its December month unreadable."""
    root = tmp_path_factory.mktemp("troubled") / "ws"
    days = session_days(START, END)
    write_legacy(root, "1d", "OK", daily(days))
    write_legacy(root, "1d", "GAP", daily(session_days(START, END, skip=[date(2025, 12, 3)])))
    bad = write_legacy(root, "1d", "BAD", daily(days))
    bad.write_bytes(bad.read_bytes()[:100])
    write_legacy(root, "1d", "HOLE", [])
    gone = write_legacy(root, "1d", "GONE", daily(days))
    part = write_partitioned(root, DEFAULT_VENUE, "1d", "PART", daily(days))
    part[-1].write_bytes(b"not parquet")
    names = ["OK", "GAP", "BAD", "HOLE", "GONE", "NEW", "PART"]
    write_metadata(root, {name: ["1d"] for name in names})
    with run_lock.hold(root, "test") as lock:
        quarantine.add(root, gone, "test", lock=lock)
    return root


def troubled_source(root: Path) -> tuple[HeatmapSource, CoverageGrid, object]:
    ws, index = Workspace.open(root), refresh_index(root)
    grid = coverage_grid(ws, index, "1d")
    source = HeatmapSource(
        grid,
        registered=registered_for(ws, "1d"),
        quarantined=quarantined_files(root, "1d"),
    )
    return source, grid, index


def test_every_registered_ticker_and_every_ticker_with_files_is_a_row(troubled):
    source, _, _ = troubled_source(troubled)
    heat = source.matrix("week", sort="name")
    assert heat.tickers == ["BAD", "GAP", "GONE", "HOLE", "NEW", "OK", "PART"]
    assert heat.total_tickers == 7
    U, Q, E = CellState.UNREADABLE, CellState.QUARANTINED, CellState.NO_BARS
    issues = dict(zip(heat.tickers, heat.issues.tolist(), strict=True))
    assert issues == {"BAD": U, "GAP": 0, "GONE": Q, "HOLE": E, "NEW": E, "OK": 0, "PART": U}
    for ticker, why in (("BAD", U), ("GONE", Q), ("HOLE", E), ("NEW", E)):
        states, coverage = row(heat, ticker)
        assert set(states) == {why} and np.isnan(coverage).all()
        assert np.isnan(heat.row_coverage[heat.tickers.index(ticker)])
    # PART has bars (November): its cells are its coverage, its issue the unreadable month.
    assert row(heat, "PART")[0][0] == C and row(heat, "PART")[0][-1] == X
    assert LEGEND[U] == "unreadable files" and LEGEND[Q] == "quarantined files"


def test_attention_sort_puts_issues_then_gaps_first(troubled):
    source, _, _ = troubled_source(troubled)
    heat = source.matrix("week", sort="attention")
    assert heat.tickers == ["BAD", "GONE", "HOLE", "NEW", "PART", "GAP", "OK"]
    assert source.matrix(only_gaps=True, sort="attention").tickers == heat.tickers[:-1]
    assert source.matrix(pattern="o", sort="attention").tickers == ["GONE", "HOLE", "OK"]


def test_filters_match_substrings_and_globs(sources, troubled):
    source = sources["1d"]
    assert source.matrix(pattern="a").tickers == ["AAA"]
    assert source.matrix(pattern="Z").tickers == ["ZZZ"]
    assert source.matrix(pattern="*A").tickers == ["AAA"]
    assert source.matrix(pattern="?Z?").tickers == ["ZZZ"]
    assert source.matrix(pattern="x").tickers == []
    troubled_heat = troubled_source(troubled)[0].matrix(pattern="E")
    assert troubled_heat.tickers == ["GONE", "HOLE", "NEW"]  # rows without bars filter too


def test_quarantined_files_and_ticker_paths(troubled):
    gone = quarantined_files(troubled, "1d")
    assert list(gone) == ["GONE"] and gone["GONE"][0].original_path == "stocks_1d/GONE.parquet"
    assert quarantined_files(troubled, "1h") == {}
    _, grid, index = troubled_source(troubled)
    paths = ticker_paths(index, grid)
    assert paths["OK"] == "stocks_1d/OK.parquet" and paths["BAD"] == "stocks_1d/BAD.parquet"
    assert paths["PART"] == "data/us/yahoo/stocks_1d/ticker=PART"
    assert (troubled / paths["PART"]).is_dir()
    assert "GONE" not in paths and "NEW" not in paths
