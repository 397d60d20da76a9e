"""The quarantine, disk and integrity screens driven with the Pilot (the heatmap:
test_console_heatmap.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from console_support import copy_demo, settle, shown
from textual.widgets import DataTable, Static

from core.integrity import quarantine
from core.safety import run_lock
from core.store.demo import build_demo
from core.store.workspace import Workspace
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
