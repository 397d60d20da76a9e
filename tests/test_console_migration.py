"""The migration screen driven with the Pilot: every step on a real demo workspace."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from conftest import tree_digest
from console_support import settle
from textual.widgets import DataTable, Static

from core.safety import run_lock
from core.store.demo import build_demo
from core.store.metadata import MIGRATION_PLAN_FILE
from core.store.workspace import Workspace
from tui.app import ParqctlApp
from tui.widgets.confirm import ConfirmScreen

END = date(2025, 12, 5)


def _demo(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    report = build_demo(root, tickers=14, seed=5, end=END, years_1d=2, years_1h=1)
    for injection in report.injections:  # damaged files fail their ticker; not this test's topic
        if injection.kind in ("truncated", "zero_byte") and injection.path:
            injection.path.unlink()
    return root


def _text(app: ParqctlApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def _confirm(app: ParqctlApp, pilot, key: str, accept: bool = True) -> None:
    await pilot.press(key)
    await pilot.pause()
    assert isinstance(app.screen, ConfirmScreen)
    await pilot.click("#confirm" if accept else "#cancel")
    await settle(pilot)


def _stage_1d(app: ParqctlApp) -> str:
    """The stage of the first row, 1d: the row the steps act on."""
    row = app.screen.query_one(DataTable).get_row_at(0)
    assert row[1] == "1d"
    return str(row[2])


async def test_the_wizard_walks_plan_run_verify_activate_rollback(tmp_path: Path):
    root = _demo(tmp_path)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("7")
        await settle(pilot)
        assert "No migration planned" in _text(app, "#migration-next")

        before = tree_digest(root)
        await _confirm(app, pilot, "p", accept=False)
        assert tree_digest(root) == before  # a cancelled confirmation writes nothing

        await _confirm(app, pilot, "p")
        assert (root / MIGRATION_PLAN_FILE).exists()
        assert _stage_1d(app) == "planned"
        assert "Next: e estimate" in _text(app, "#migration-next")

        await pilot.press("e")
        await settle(pilot)
        assert "projected:" in _text(app, "#migration-report")

        await _confirm(app, pilot, "r")
        assert "✓ run finished" in _text(app, "#migration-progress-line")
        assert _stage_1d(app) == "migrated"
        assert list((root / "data/us/yahoo/stocks_1d").glob("ticker=*/year=*/month=*/data.parquet"))

        await pilot.press("v")
        await settle(pilot)
        assert "✓" in _text(app, "#migration-report") and _stage_1d(app) == "verified"

        await _confirm(app, pilot, "a")
        assert _stage_1d(app) == "active"
        tickers = json.loads((root / "tickers.json").read_text())
        assert any(
            (entry.get("intervals", {}).get("1d") or {}).get("storage")
            for entry in tickers.values()
        )

        await _confirm(app, pilot, "b")
        assert _stage_1d(app) == "verified"
        tickers = json.loads((root / "tickers.json").read_text())
        assert not any(
            (entry.get("intervals", {}).get("1d") or {}).get("storage")
            for entry in tickers.values()
        )
        assert run_lock.inspect(root).state is run_lock.LockState.FREE


async def test_a_stopped_run_checkpoints_releases_the_lock_and_resumes(tmp_path: Path):
    root = _demo(tmp_path)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("7")
        await settle(pilot)
        await _confirm(app, pilot, "p")

        await pilot.press("r")
        await pilot.pause()
        await pilot.click("#confirm")
        app.screen.action_cancel()  # escape, before the first batch can finish
        await settle(pilot)
        assert "stopped at a safe point" in _text(app, "#migration-report")
        assert _stage_1d(app) in ("planned", "migrating")
        assert run_lock.inspect(root).state is run_lock.LockState.FREE

        await _confirm(app, pilot, "r")
        assert _stage_1d(app) == "migrated"


async def test_a_refused_step_is_one_line_and_frees_the_screen(tmp_path: Path):
    root = _demo(tmp_path)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("7")
        await settle(pilot)
        await _confirm(app, pilot, "p")
        with run_lock.hold(root, "test: another writer"):
            await _confirm(app, pilot, "r")
            report = _text(app, "#migration-report")
            assert report.startswith("✗") and "lock" in report and "\n" not in report
        assert app.screen.running is None
        await _confirm(app, pilot, "r")
        assert _stage_1d(app) == "migrated"
