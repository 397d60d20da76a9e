"""The heatmap matrix: exact cells around holidays and listings, zooms, sorting, filters."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from session_bars import EARLY_CLOSE, daily, hourly, session_days, write_legacy, write_metadata

from core.availability.coverage import CoverageGrid, coverage_grid
from core.availability.heatmap import LEGEND, CellState, Heatmap, HeatmapSource, bucket_starts
from core.availability.index import refresh_index
from core.errors import ParqctlError
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
