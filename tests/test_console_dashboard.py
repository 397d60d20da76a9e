"""The dashboard's worst tickers (engine and panel), where each panel leads, the tables'
detail panes and the footers at 80 columns."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import PARQCTL, run_cli
from console_support import copy_demo, settle, shown, status
from textual.widgets import OptionList
from textual.widgets._footer import FooterKey, FooterLabel

from core.availability.gap_watch import WORST_TICKERS, WorstTicker, gap_watch
from core.availability.heatmap import CellState
from core.availability.index import index_path, refresh_index
from core.integrity import quarantine
from core.safety import run_lock
from core.store.demo import build_demo
from core.store.workspace import Workspace
from screens.dashboard import DashboardScreen, DetailsScreen, StatusBlock
from screens.heatmap_grid import HeatmapGrid
from tui.app import SCREENS, HealthState, ParqctlApp
from tui.widgets.fitted_table import FittedTable, shorten_middle, shorten_path

END = date(2025, 12, 5)


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("demo") / "ws"
    report = build_demo(root, tickers=20, seed=3, end=END, years_1d=2, years_1h=1)
    refresh_index(root)  # the gap summary of health needs a file index
    return root, report


@pytest.fixture
def demo(demo_template, tmp_path: Path):
    """A fresh copy of the module's demo, and where its injections are in the copy."""
    return copy_demo(*demo_template, tmp_path / "ws")


def _gap_tickers(report) -> dict[str, str]:
    """interval -> the ticker the demo cut gaps into."""
    return {i.interval: i.ticker for i in report.injections if i.kind == "gap"}


def _hourly_run(report):
    return next(i for i in report.injections if i.interval == "1h" and "run of" in i.detail)


def _noon(day: date) -> float:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()


# --- the engine ------------------------------------------------------------------------


def test_worst_tickers_rank_expiring_then_recoverable_then_missing():
    soon, later = date(2026, 1, 2), date(2026, 1, 3)
    worst = [
        WorstTicker("ALLLOST", "1m", 50, 0, 0, None),
        WorstTicker("FEW", "1h", 5, 5, 0, date(2027, 1, 1)),
        WorstTicker("MANY", "1d", 40, 40, 0, None),
        WorstTicker("LATER", "1h", 30, 30, 2, later),
        WorstTicker("SOON", "1h", 3, 3, 1, soon),
    ]
    ranked = [w.ticker for w in sorted(worst, key=WorstTicker.rank)]
    assert ranked == ["SOON", "LATER", "MANY", "FEW", "ALLLOST"]


def test_health_gaps_name_the_worst_tickers(demo):
    root, report = demo
    gaps = _gap_tickers(report)
    ws = Workspace.open(root)
    retention = ws.config.retention_days["1h"]
    calm = gap_watch(ws, today=END)
    # Same number missing: the hourly gaps have a deadline, the daily ones never expire.
    assert [(w.ticker, w.interval) for w in calm.worst] == [(gaps["1h"], "1h"), (gaps["1d"], "1d")]
    hourly, daily = calm.worst
    assert (hourly.missing_sessions, hourly.recoverable_sessions, hourly.expiring_sessions) == (
        18,
        18,
        0,
    )
    assert hourly.recoverable_until == _hourly_run(report).dates[-1] + timedelta(days=retention)
    assert daily.recoverable_until is None and daily.recoverable_sessions == 18

    # The hourly run's first session leaves the window tomorrow.
    today = _hourly_run(report).dates[0] + timedelta(days=retention - 1)
    urgent = gap_watch(Workspace.open(root), today=today).worst[0]
    assert (urgent.ticker, urgent.expiring_sessions) == (gaps["1h"], 1)
    assert len(calm.worst) <= WORST_TICKERS


# --- the dashboard ---------------------------------------------------------------------


async def test_worst_tickers_panel_opens_the_heatmap_on_the_ticker(demo):
    root, report = demo
    gaps = _gap_tickers(report)
    run = _hourly_run(report)
    retention = Workspace.open(root).config.retention_days["1h"]
    today = run.dates[0] + timedelta(days=retention - 1)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None, clock=lambda: _noon(today))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        worst = app.screen.query_one("#worst", OptionList)
        lines = [str(worst.get_option_at_index(i).prompt) for i in range(worst.option_count)]
        assert gaps["1h"] in lines[0] and "⏳" in lines[0] and "1 expire by" in lines[0]
        assert gaps["1d"] in lines[1] and "18 missing" in lines[1] and "any time" in lines[1]
        assert worst.has_class("-warning")

        # Keyboard: to the panel, down to the daily ticker, enter.
        while app.focused is not worst:
            await pilot.press("tab")
        await pilot.press("down", "enter")
        await settle(pilot)
        assert app.current_mode == "heatmap"
        grid = app.screen.query_one(HeatmapGrid)
        ticker, _, state = grid.current()
        assert grid.heatmap.interval == "1d" and ticker == gaps["1d"]
        assert app.focused is grid
        # The cursor is on the ticker's newest gap (the daily gaps never expire).
        singles, daily_run = (
            next(
                i
                for i in report.injections
                if i.kind == "gap" and i.interval == "1d" and k in i.detail
            )
            for k in ("missing sessions:", "run of")
        )
        newest = max(singles.dates[-1], daily_run.dates[0])
        assert grid.column_of(newest) == grid.cursor_col
        assert state != CellState.COMPLETE
        assert "4 gap(s), 18 sessions" in shown(app, "#heatmap-gaps")

        # A filter that hides the ticker is cleared; the hourly interval is loaded.
        await pilot.press("slash", *"ZZZ", "enter")
        await settle(pilot)
        assert grid.heatmap.tickers == []
        await pilot.press("1")
        await pilot.pause()
        await pilot.click(worst, offset=(4, 1))  # the first line: the hourly ticker
        await settle(pilot)
        assert app.current_mode == "heatmap"
        ticker, _, _ = grid.current()
        assert (grid.heatmap.interval, ticker) == ("1h", gaps["1h"])
        assert app.screen.pattern is None
        # On the gap that expires first: the run whose first session goes tomorrow.
        assert grid.column_of(run.dates[0]) == grid.cursor_col
        assert "⏳" in shown(app, "#heatmap-gaps")


async def test_every_status_line_shows_its_details_and_leads_to_its_screen(demo):
    root, _ = demo
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    leads = {
        "lock": "locks",
        "disk": "disk",
        "interval:1d": "heatmap",
        "integrity": "integrity",
        "quarantine": "quarantine",
        "datasets": "disk",
        "migration": "migration",
    }
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        block = app.screen.query_one(StatusBlock)
        assert app.focused is block
        for area, mode in leads.items():
            block.highlighted = [line.area for line in block.lines].index(area)
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, DetailsScreen), area
            assert f"enter ▸ {mode} screen" in shown(app, "#details-hint")
            await pilot.press("enter")
            await pilot.pause()
            assert app.current_mode == mode, area
            await pilot.press("1")
            await pilot.pause()
        block.highlighted = 0  # the verdict: its details lead nowhere; escape goes back
        await pilot.press("enter")
        await pilot.pause()
        assert "WARNING" in shown(app, "#details-body")
        assert "stray" in shown(app, "#details-body")
        assert shown(app, "#details-hint") == "escape ▸ back"
        await pilot.press("enter")  # leads nowhere: closes, as escape would
        await pilot.pause()
        assert not isinstance(app.screen, DetailsScreen)
        assert app.current_mode == "dashboard" and app.screen.query_one(StatusBlock)


async def test_the_status_block_fits_80x24_one_line_each(demo):
    root, _ = demo
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None, clock=lambda: _noon(END))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        block = app.screen.query_one(StatusBlock)
        areas = [line.area for line in block.lines]
        for area in ("health", "lock", "disk", "interval:1d", "interval:1h", "integrity"):
            assert area in areas
        for area in ("quarantine", "migration", "datasets"):
            assert area in areas
        # One screen line per status line, all of them on screen with the worst tickers.
        assert block.region.height == len(block.lines) + 2
        worst = app.screen.query_one("#worst", OptionList)
        assert worst.region.bottom <= 23 and worst.region.y > block.region.bottom - 1
        assert "up to date: 2025-12-05" in status(app, "interval:1d")
        assert "complete" in status(app, "interval:1d")


async def test_footer_fits_80_columns_on_every_screen(demo):
    root, _ = demo
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        for entry in SCREENS:
            await pilot.press(entry.key)
            await settle(pilot)
            keys = app.screen.query(FooterKey)
            palette = next(k for k in keys if k.has_class("-command-palette"))
            shown_keys = [k for k in [*keys, *app.screen.query(FooterLabel)] if k is not palette]
            assert shown_keys, entry.mode
            assert max(k.region.right for k in shown_keys) <= palette.region.x, entry.mode
            descriptions = {k.description for k in app.screen.query(FooterKey)}
            assert "Quit" in descriptions and "Help" in descriptions


# --- tables with a detail pane ---------------------------------------------------------


def test_paths_are_shortened_keeping_their_file_name():
    path = "legacy/stocks_1d/^IXIC.parquet"
    assert shorten_path(path, 40) == path
    assert shorten_path(path, 24) == "legacy/…/^IXIC.parquet"
    temp = "legacy/stocks_1d/DIS.parquet.tmp-4242-1764970200000-0123456789abcdef"
    short = shorten_path(temp, 24)
    assert len(short) == 24 and short.startswith("DIS.parq") and short.endswith("cdef")
    assert shorten_middle("abcdefghijklmnopqrst", 11) == "abcd…opqrst"
    assert shorten_middle("abc", 3) == "abc"


async def test_integrity_at_80x24_shows_the_message_and_the_whole_finding_below(demo):
    root, report = demo
    truncated = next(i for i in report.injections if i.kind == "truncated")
    relative = str(truncated.path.relative_to(root))
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6", "c")
        await settle(pilot)
        table = app.screen.query_one(FittedTable)
        labels = [column.label.plain for column in table.ordered_columns]
        assert labels == ["", "ticker", "file", "message"]  # no room for the code
        assert table.virtual_size.width <= table.size.width  # nothing off to the right
        findings = app.screen.findings
        row = next(i for i, f in enumerate(findings) if f.path == relative)
        table.focus()
        table.move_cursor(row=row)
        await pilot.pause()
        cells = [str(cell) for cell in table.get_row_at(row)]
        assert cells[1] == f"{truncated.ticker} 1d" and cells[2].endswith(".parquet")
        assert findings[row].message.startswith(cells[3].rstrip("…"))
        detail = shown(app, "#integrity-detail")
        assert relative in detail and "to do" in detail and findings[row].code in detail
        detail_pane = app.screen.query_one("#integrity-detail")
        assert detail_pane.region.y >= table.region.bottom and detail_pane.region.height > 3

        await pilot.press("down")
        await pilot.pause()
        assert findings[row + 1].code in shown(app, "#integrity-detail")

    # Wider: the code gets its column too.
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("6", "c")
        await settle(pilot)
        table = app.screen.query_one(FittedTable)
        assert [c.label.plain for c in table.ordered_columns][2] == "code"
        assert table.virtual_size.width <= table.size.width


async def test_quarantine_at_80x24_shows_the_reason_and_the_whole_record_below(demo):
    root, report = demo
    truncated = next(i for i in report.injections if i.kind == "truncated")
    reason = "truncated by a full disk during the nightly run [job 42]"
    with run_lock.hold(root, "test") as lock:
        entry = quarantine.add(root, truncated.path, reason, lock=lock)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("4")
        await settle(pilot)
        table = app.screen.query_one(FittedTable)
        assert [c.label.plain for c in table.ordered_columns][-1] == "reason"
        assert table.virtual_size.width <= table.size.width
        assert str(table.get_row_at(0)[-1]).startswith("truncated by")
        detail = shown(app, "#quarantine-detail")
        assert entry.id in detail and entry.sha256 in detail and reason in detail
        assert entry.original_path in detail


async def test_the_dashboard_builds_the_first_index_itself(demo, monkeypatch):
    root, _ = demo
    shutil.rmtree(root / ".parqctl/index")
    progress = []
    shown_progress = DashboardScreen.on_index_progress

    def recording(screen, message) -> None:
        progress.append((message.progress, status(screen.app, "interval")))
        shown_progress(screen, message)

    monkeypatch.setattr(DashboardScreen, "on_index_progress", recording)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None, clock=lambda: _noon(END))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.current_mode == "dashboard"  # the heatmap was never opened
        assert index_path(root).exists() and progress
        assert all("building the file index" in line for _, line in progress)
        assert app.health.final and app.health.report.gaps is not None
        assert app.health.report.freshness is not None
        assert "up to date: 2025-12-05" in status(app, "interval:1d")
        assert "building" not in status(app, "interval")


async def _until(pilot, condition, timeout: float) -> float:
    """Seconds until ``condition()`` held, pausing the Pilot meanwhile; fails at ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        await pilot.pause(0.05)
    return time.monotonic() - started


async def test_lock_and_migration_are_live_while_a_cli_writer_runs(demo):
    """The operator's report: during `migrate run` the dashboard said FREE and pending."""
    root, _ = demo
    assert run_cli("-w", str(root), "migrate", "plan", "--venue", "us:yahoo", "--interval", "1d")
    # The clock of the demo's last day, so that its bars are fresh.
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None, clock=lambda: _noon(END))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert status(app, "lock").endswith("FREE")
        assert "0/20 (0%)" in status(app, "migration")
        # A real writer: it stops (SIGSTOP) right after taking the run lock.
        writer = subprocess.Popen(
            [str(PARQCTL), "-w", str(root), "migrate", "run", "--venue", "us:yahoo"],
            env={**os.environ, "PARQCTL_FAILPOINT": "stop@1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await _until(pilot, (root / ".run_lock" / "owner.json").exists, 60)
            waited = await _until(pilot, lambda: "LIVE" in status(app, "lock"), 3.0)
            assert waited < 3.0  # no `r` pressed, no full refresh (health_refresh_s=None)
            assert "parqctl migrate run" in status(app, "lock")
            assert f"pid {writer.pid}" in status(app, "lock")

            writer.send_signal(signal.SIGCONT)
            await _until(pilot, lambda: writer.poll() is not None, 120)
            # The demo's truncated daily file fails; the other 19 are migrated.
            await _until(pilot, lambda: "19/20 (95%), 1 failed" in status(app, "migration"), 3.0)
            assert status(app, "lock").endswith("FREE")
            health = status(app, "health")
            assert "WARNING" in health and "1 ticker(s) failed to migrate" in health
        finally:
            writer.kill()
            writer.wait()


async def test_a_late_partial_report_does_not_replace_a_complete_one(demo):
    root, _ = demo
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None, clock=lambda: _noon(END))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        complete = app.health
        assert complete.final and "up to date" in status(app, "interval:1d")
        # A refresh that finishes late with the saved summary of the same check.
        partial = dataclasses.replace(complete.report, freshness=None)
        app.health = HealthState(partial, gaps_saved=True)
        await settle(pilot)
        assert "up to date" in status(app, "interval:1d")
        # A later check replaces it.
        later = dataclasses.replace(partial, checked_at=complete.report.checked_at + 1)
        app.health = HealthState(later, gaps_saved=True)
        await settle(pilot)
        assert "… freshness" in status(app, "interval:1d")
