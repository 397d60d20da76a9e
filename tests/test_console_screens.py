"""The heatmap, quarantine, disk and integrity screens driven with the Pilot."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from console_support import copy_demo, settle, shown
from textual.widgets import DataTable, Static

from core.availability.heatmap import CellState
from core.integrity import quarantine
from core.safety import run_lock
from core.store.demo import build_demo
from core.store.workspace import Workspace
from screens.heatmap_grid import HeatmapGrid
from tui.app import ParqctlApp
from tui.widgets.confirm import ConfirmScreen

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


def _text(app: ParqctlApp, selector: str) -> str:
    return shown(app, selector)


async def test_heatmap_zoom_filter_sort_and_jump(demo):
    root, report = demo
    gap = next(i for i in report.injections if i.kind == "gap" and i.interval == "1d")
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        grid = app.screen.query_one(HeatmapGrid)
        assert grid.heatmap.interval == "1d" and grid.heatmap.zoom == "week"
        weeks = grid.columns

        await pilot.press("z")
        await settle(pilot)
        assert grid.heatmap.zoom == "day" and grid.columns > weeks
        await pilot.press("x", "x")
        await settle(pilot)
        assert grid.heatmap.zoom == "month" and grid.columns < weeks

        await pilot.press("g")
        await settle(pilot)
        assert gap.ticker in grid.heatmap.tickers
        assert len(grid.heatmap.tickers) < grid.heatmap.total_tickers
        assert "only with gaps" in _text(app, "#heatmap-status")

        await pilot.press("g", "z", "z", "slash", *gap.ticker, "enter")
        await settle(pilot)
        assert grid.heatmap.tickers == [gap.ticker] and grid.heatmap.zoom == "day"

        await pilot.press("d", *gap.dates[0].isoformat(), "enter")
        await pilot.pause()
        ticker, day, state = grid.current()
        assert (ticker, day, state) == (gap.ticker, gap.dates[0], CellState.MISSING)
        summary, gaps = _text(app, "#heatmap-ticker"), _text(app, "#heatmap-gaps")
        assert gap.ticker in summary and "missing" in summary
        assert "gap(s)" in gaps and f"\n{gap.dates[0]}" in gaps

        await pilot.press("slash", "ctrl+u", "enter", "s")
        await settle(pilot)
        assert len(grid.heatmap.tickers) == grid.heatmap.total_tickers
        assert "sort worst coverage" in _text(app, "#heatmap-status")
        coverage = [c for c in grid.heatmap.row_coverage.tolist() if c == c]
        assert coverage == sorted(coverage) and coverage[0] < 1

        await pilot.press("t", *"AAPL", "enter", "down", "pagedown", "end", "home")
        await pilot.pause()
        assert grid.current()[0] == grid.heatmap.tickers[0]

        await pilot.press("i")
        await settle(pilot)
        assert grid.heatmap.interval != "1d"


async def test_heatmap_at_80x24_puts_the_panel_under_the_grid(demo):
    root, _ = demo
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await settle(pilot)
        grid = app.screen.query_one(HeatmapGrid)
        detail = app.screen.query_one("#heatmap-detail")
        assert grid.visible_columns == 80 - grid.label_width
        assert detail.region.y >= grid.region.bottom and detail.region.width == 80
        assert grid.current()[0] in _text(app, "#heatmap-ticker")
        assert "gap" in _text(app, "#heatmap-gaps")


async def test_integrity_check_and_quarantine_then_restore_and_purge(demo):
    root, report = demo
    truncated = next(i for i in report.injections if i.kind == "truncated")
    relative = str(truncated.path.relative_to(root))
    original = truncated.path.read_bytes()
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("6", "c")
        await settle(pilot)
        summary = _text(app, "#integrity-summary")
        assert "error(s)" in summary and summary.startswith("✗")
        table = app.screen.query_one(DataTable)
        groups = app.screen.groups
        keys = [key for key, _ in table.fit_rows]
        table.move_cursor(
            row=next(i for i, k in enumerate(keys) if groups[int(k[1:])].first.path == relative)
        )
        table.focus()
        await pilot.pause()
        assert relative in _text(app, "#integrity-detail")
        await pilot.press("Q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("tab", "enter")
        await settle(pilot)
        assert not truncated.path.exists()
        [entry] = quarantine.entries(root)
        assert entry.original_path == relative

        await pilot.press("4")
        await settle(pilot)
        assert (
            entry.id in _text(app, "#quarantine-summary")
            or app.screen.query_one(DataTable).row_count == 1
        )
        await pilot.press("u")
        await pilot.pause()
        assert "back to" in str(app.screen.query_one("#confirm-body", Static).render())
        await pilot.press("tab", "enter")
        await settle(pilot)
        assert truncated.path.read_bytes() == original
        assert quarantine.entries(root) == []
        assert not (root / ".run_lock").exists()

    # Purge: quarantine it again from the CLI's engine, purge it from the console.
    with run_lock.hold(root, "test") as lock:
        entry = quarantine.add(root, truncated.path, "test", lock=lock)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("p")
        await pilot.pause()
        body = str(app.screen.query_one("#confirm-body", Static).render())
        assert entry.original_path in body and "cannot be undone" in body
        await pilot.press("enter")  # Cancel is focused: nothing goes
        await settle(pilot)
        assert entry.stored_path.exists()
        await pilot.press("p", "tab", "enter")
        await settle(pilot)
        assert not entry.stored_path.exists() and quarantine.entries(root) == []


async def test_disk_screen_shows_filesystem_and_breakdown(demo):
    root, _ = demo
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("5")
        await settle(pilot)
        breakdown = _text(app, "#disk-breakdown")
        assert "legacy 1d" in breakdown and "legacy 1h" in breakdown
        panels = app.screen.query(".filesystem")
        assert len(panels) >= 1
        assert "warn 80%" in str(panels.first().render())
