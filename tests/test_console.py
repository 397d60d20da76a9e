"""The console driven as a person would, with the Pilot."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import Static

from core.workspace import Workspace
from tui.app import ParqctlApp


def _text(app: ParqctlApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def _wait_loaded(app: ParqctlApp, pilot) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_dashboard_shows_health_and_refreshes(workspace: Path):
    app = ParqctlApp(Workspace.open(workspace))
    async with app.run_test(size=(120, 36)) as pilot:
        await _wait_loaded(app, pilot)
        assert "OK" in _text(app, "#verdict")
        assert "FREE" in _text(app, "#lock")
        assert "legacy 1d" in _text(app, "#datasets")
        assert app.theme == "parqctl-dark"

        lock = workspace / ".run_lock"
        lock.mkdir()
        (lock / "owner.json").write_text(
            json.dumps({"pid": 999_999_999, "host": "elsewhere.example", "ts": 1.0, "cwd": "/"})
        )
        await pilot.press("r")
        await _wait_loaded(app, pilot)
        assert "FOREIGN" in _text(app, "#lock")
        await pilot.press("q")
    assert app.return_code == 0


async def test_light_theme_and_small_terminal(workspace: Path):
    app = ParqctlApp(Workspace.open(workspace), theme="light")
    async with app.run_test(size=(80, 24)) as pilot:
        await _wait_loaded(app, pilot)
        assert app.theme == "parqctl-light"
        assert "OK" in _text(app, "#verdict")


async def test_a_workspace_broken_after_start_is_reported_not_fatal(workspace: Path):
    app = ParqctlApp(Workspace.open(workspace))
    async with app.run_test(size=(120, 36)) as pilot:
        await _wait_loaded(app, pilot)
        (workspace / "tickers.json").write_text("{")
        await pilot.press("r")
        await _wait_loaded(app, pilot)
        verdict = _text(app, "#verdict")
        assert "UNKNOWN" in verdict and "tickers.json" in verdict
