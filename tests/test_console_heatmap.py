"""The heatmap screen driven with the Pilot: what needs attention first, every ticker a
row, severity at every zoom, the gap list, the keys, copying a path."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from console_support import copy_demo, settle, shown

from core.availability.heatmap import CellState
from core.integrity import quarantine
from core.safety import run_lock
from core.store.demo import build_demo
from core.store.workspace import Workspace
from screens.heatmap_grid import HEADER_ROWS, HeatmapGrid
from tui.app import ParqctlApp

END = date(2025, 12, 5)


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("demo") / "ws"
    report = build_demo(root, tickers=20, seed=3, end=END, years_1d=2, years_1h=1)
    return root, report


@pytest.fixture
def demo(demo_template, tmp_path: Path):
    """A fresh copy of the module's demo, and where its injections are in the copy."""
    return copy_demo(*demo_template, tmp_path / "ws")


def injected(report, kind: str, interval: str | None = None, detail: str = ""):
    return next(
        i
        for i in report.injections
        if i.kind == kind and interval in (None, i.interval) and detail in i.detail
    )


def cell_glyph(grid: HeatmapGrid, row: int, col: int) -> str:
    """The character drawn for a cell, which must be on screen."""
    line = grid.render_line(row - grid.top_row + HEADER_ROWS)
    return line.text[grid.label_width + col - grid.left_col]


async def open_heatmap(pilot) -> HeatmapGrid:
    await pilot.press("2")
    await settle(pilot)
    return pilot.app.screen.query_one(HeatmapGrid)


async def test_zoom_filter_sort_and_jump(demo):
    root, report = demo
    gap = injected(report, "gap", "1d")
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        grid = await open_heatmap(pilot)
        assert grid.heatmap.interval == "1d" and grid.heatmap.zoom == "week"
        weeks = grid.columns

        await pilot.press("z")
        await settle(pilot)
        assert grid.heatmap.zoom == "day" and grid.columns > weeks
        await pilot.press("x", "x")
        await settle(pilot)
        assert grid.heatmap.zoom == "month" and grid.columns < weeks

        await pilot.press("o")
        await settle(pilot)
        assert gap.ticker in grid.heatmap.tickers
        assert len(grid.heatmap.tickers) < grid.heatmap.total_tickers
        assert "only problems" in shown(app, "#heatmap-status")

        # A part of the name is enough: no glob needed.
        await pilot.press("o", "z", "z", "slash", *gap.ticker[:-1].lower(), "enter")
        await settle(pilot)
        assert gap.ticker in grid.heatmap.tickers and grid.heatmap.zoom == "day"
        assert all(gap.ticker[:-1] in t for t in grid.heatmap.tickers)

        await pilot.press("t", *gap.ticker, "enter", "d", *gap.dates[0].isoformat(), "enter")
        await pilot.pause()
        ticker, day, state = grid.current()
        assert (ticker, day, state) == (gap.ticker, gap.dates[0], CellState.MISSING)
        summary, heading = shown(app, "#heatmap-ticker"), shown(app, "#heatmap-gaps")
        assert gap.ticker in summary and "missing" in summary
        assert "gap(s)" in heading

        await pilot.press("slash", "ctrl+u", "enter", "s")
        await settle(pilot)
        assert len(grid.heatmap.tickers) == grid.heatmap.total_tickers
        assert "sort name" in shown(app, "#heatmap-status")
        assert grid.heatmap.tickers == sorted(grid.heatmap.tickers)
        await pilot.press("s")
        await settle(pilot)
        assert "sort worst coverage" in shown(app, "#heatmap-status")
        coverage = [c for c in grid.heatmap.row_coverage.tolist() if c == c]
        assert coverage == sorted(coverage) and coverage[0] < 1

        await pilot.press("i")
        await settle(pilot)
        assert grid.heatmap.interval != "1d"


async def test_vim_keys_move_and_g_goes_to_the_first_and_last_row(demo):
    root, _ = demo
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        grid = await open_heatmap(pilot)
        last_col = grid.columns - 1
        assert (grid.cursor_row, grid.cursor_col) == (0, last_col)
        await pilot.press("j", "j", "k", "h", "h", "l")
        assert (grid.cursor_row, grid.cursor_col) == (1, last_col - 1)
        await pilot.press("G")
        assert grid.cursor_row == grid.rows - 1
        await pilot.press("g")
        assert grid.cursor_row == 0 and grid.heatmap.zoom == "week"
        assert not app.screen.only_gaps  # g is no longer the problems toggle


async def test_escape_clears_the_filter_first(demo):
    root, _ = demo
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        grid = await open_heatmap(pilot)
        everyone = len(grid.heatmap.tickers)
        await pilot.press("slash", *"AAP", "enter")
        await settle(pilot)
        assert grid.heatmap.tickers == ["AAPL"]
        await pilot.press("slash", *"A*", "enter")  # a glob still works
        await settle(pilot)
        assert grid.heatmap.tickers and all(t.startswith("A") for t in grid.heatmap.tickers)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen.pattern is None and len(grid.heatmap.tickers) == everyone
        assert "filter" not in shown(app, "#heatmap-status")
        # Nothing left to clear: escape is not the heatmap's any more (the app's "back").
        screen = app.screen
        await pilot.press("escape")
        await settle(pilot)
        assert screen.pattern is None and len(grid.heatmap.tickers) == everyone


async def test_an_unreadable_ticker_is_a_row_first_and_says_why_then_quarantined(demo):
    root, report = demo
    truncated = injected(report, "truncated", "1d")
    registered = len(Workspace.open(root).tickers.raw)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        grid = await open_heatmap(pilot)
        heat = grid.heatmap
        assert len(heat.tickers) == heat.total_tickers == registered
        assert f"{registered} of {registered} tickers" in shown(app, "#heatmap-status")
        assert heat.tickers[0] == truncated.ticker and grid.current()[0] == truncated.ticker
        assert set(heat.states[0].tolist()) == {CellState.UNREADABLE}
        assert cell_glyph(grid, 0, 0) == "!"
        panel = shown(app, "#heatmap-ticker")
        assert "1 unreadable file(s)" in panel and f"stocks_1d/{truncated.ticker}" in panel
        assert "no 1d bars: its files cannot be read" in panel

        await pilot.press("G", "t", *truncated.ticker, "enter")
        await pilot.pause()
        assert grid.current()[0] == truncated.ticker and not app._notifications
        await pilot.press("t", *"NOPE", "enter")
        await pilot.pause()
        [warning] = app._notifications
        assert warning.message == "no 1d ticker NOPE in tickers.json or on disk"

        # Copy its path: the file, named in a notification.
        await pilot.press("c")
        await pilot.pause()
        assert app.clipboard == str(truncated.path)
        assert any(str(truncated.path) in str(n.message) for n in app._notifications)

        with run_lock.hold(root, "test") as lock:
            entry = quarantine.add(root, truncated.path, "test", lock=lock)
        await pilot.press("r")
        await settle(pilot)
        heat = grid.heatmap
        assert heat.tickers[0] == truncated.ticker and len(heat.tickers) == registered
        assert set(heat.states[0].tolist()) == {CellState.QUARANTINED}
        assert cell_glyph(grid, 0, 0) == "⊘"
        panel = shown(app, "#heatmap-ticker")
        assert "1 file(s) in quarantine" in panel and entry.id in panel
        await pilot.press("c")
        await pilot.pause()
        assert app.clipboard == str(entry.stored_path)


async def test_a_registered_ticker_without_files_is_a_row_saying_so(demo):
    root, _ = demo
    (root / "stocks_1d" / "AAPL.parquet").unlink()
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        grid = await open_heatmap(pilot)
        assert "AAPL" in grid.heatmap.tickers[:3]  # with the other tickers needing a look
        row = grid.heatmap.tickers.index("AAPL")
        assert set(grid.heatmap.states[row].tolist()) == {CellState.NO_BARS}
        assert cell_glyph(grid, row, 0) == "○"
        await pilot.press("t", *"AAPL", "enter", "c")
        await pilot.pause()
        panel = shown(app, "#heatmap-ticker")
        assert "no 1d bars: in tickers.json (status active), no files" in panel
        assert app.clipboard == ""  # nothing to copy, and a warning says so
        assert any("no 1d files" in str(n.message) for n in app._notifications)


async def test_copy_path_of_a_ticker_with_bars(demo):
    root, report = demo
    gap = injected(report, "gap", "1d")
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await open_heatmap(pilot)
        await pilot.press("t", *gap.ticker, "enter", "c")
        await pilot.pause()
        assert app.clipboard == str(root / "stocks_1d" / f"{gap.ticker}.parquet")


async def test_month_zoom_tells_a_long_gap_from_a_short_one(demo):
    root, report = demo
    singles = injected(report, "gap", "1d", "missing sessions:")
    run = injected(report, "gap", "1d", "run of")
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        grid = await open_heatmap(pilot)
        await pilot.press("x")
        await settle(pilot)
        assert grid.heatmap.zoom == "month"
        row = grid.heatmap.tickers.index(singles.ticker)
        long_gap, short_gap = grid.column_of(run.dates[0]), grid.column_of(singles.dates[-1])
        assert grid.heatmap.states[row, [long_gap, short_gap]].tolist() == [CellState.PARTIAL] * 2
        glyphs = {cell_glyph(grid, row, col) for col in (long_gap, short_gap)}
        assert glyphs == {"▒", "▓"} or glyphs == {"░", "▓"}
        assert cell_glyph(grid, row, short_gap) == "▓"


async def test_enter_on_a_gap_moves_the_grid_to_it(demo):
    root, report = demo
    run = injected(report, "gap", "1d", "run of")
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        grid = await open_heatmap(pilot)
        await pilot.press("t", *run.ticker, "enter")
        await pilot.pause()
        gap_list = app.screen.query_one("#heatmap-gap-list")
        lines = [str(gap_list.get_option_at_index(i).prompt) for i in range(4)]
        position = next(i for i, line in enumerate(lines) if line.startswith(str(run.dates[0])))
        assert grid.cursor_col != grid.column_of(run.dates[0])
        await pilot.press("tab")
        assert app.focused is gap_list
        await pilot.press(*["down"] * position, "enter")
        await pilot.pause()
        assert app.focused is grid
        ticker, _, state = grid.current()
        assert ticker == run.ticker and grid.cursor_col == grid.column_of(run.dates[0])
        assert state == CellState.MISSING  # the run fills the week of its first session


async def test_at_80x24_the_panel_goes_under_the_grid(demo):
    root, _ = demo
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        grid = await open_heatmap(pilot)
        # The unreadable ticker has no gaps to list: its problems take the whole width.
        assert not app.screen.query_one("#heatmap-gaps-box").display
        assert app.screen.query_one("#heatmap-ticker").region.width >= 76
        await pilot.press("j")  # to the ticker with gaps, under the unreadable one
        await pilot.pause()
        assert app.screen.query_one("#heatmap-gaps-box").display
        detail = app.screen.query_one("#heatmap-detail")
        assert grid.visible_columns == 80 - grid.label_width
        assert detail.region.y >= grid.region.bottom and detail.region.width == 80
        assert grid.current()[0] in shown(app, "#heatmap-ticker")
        assert "gap" in shown(app, "#heatmap-gaps")


async def test_the_first_screen_of_a_larger_demo_shows_what_needs_attention(tmp_path):
    """100 tickers: by name, the daily gap ticker is far below the first screen."""
    root = tmp_path / "ws"
    report = build_demo(root, tickers=100, seed=7, end=END, years_1d=2, years_1h=1)
    gap, truncated = injected(report, "gap", "1d"), injected(report, "truncated", "1d")
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        grid = await open_heatmap(pilot)
        assert grid.top_row == 0 and grid.rows > grid.visible_rows
        first_screen = grid.heatmap.tickers[: grid.visible_rows]
        assert first_screen[:2] == [truncated.ticker, gap.ticker]
        assert sorted(grid.heatmap.tickers).index(gap.ticker) >= grid.visible_rows
        assert "1 with issues, 1 with gaps" in shown(app, "#heatmap-status")
