"""The console driven as a person would, with the Pilot."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from console_support import settle, shown, status
from textual.widgets import OptionList, Static

from core.store.workspace import Workspace
from tui.app import ParqctlApp

# The evening after the fixture's last bar (2025-12-03): its data is fresh then, and only then.
FIXTURE_CLOSE = datetime(2025, 12, 4, 22, 0, tzinfo=UTC).timestamp()


def _text(app: ParqctlApp, selector: str) -> str:
    return shown(app, selector)


async def test_dashboard_shows_health_and_refreshes(workspace: Path):
    app = ParqctlApp(Workspace.open(workspace), clock=lambda: FIXTURE_CLOSE)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert "OK" in status(app, "health")
        assert "FREE" in status(app, "lock")
        assert "1 dataset(s)" in status(app, "datasets")
        assert app.theme == "parqctl-dark"

        lock = workspace / ".run_lock"
        lock.mkdir()
        (lock / "owner.json").write_text(
            json.dumps({"pid": 999_999_999, "host": "elsewhere.example", "ts": 1.0, "cwd": "/"})
        )
        await pilot.press("r")
        await settle(pilot)
        assert "FOREIGN" in status(app, "lock")
        await pilot.press("q")
    assert app.return_code == 0


async def test_light_theme_and_small_terminal(workspace: Path):
    app = ParqctlApp(Workspace.open(workspace), theme="light", clock=lambda: FIXTURE_CLOSE)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.theme == "parqctl-light"
        assert "OK" in status(app, "health")


async def test_a_workspace_broken_after_start_is_reported_not_fatal(workspace: Path):
    app = ParqctlApp(Workspace.open(workspace))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        (workspace / "tickers.json").write_text("{")
        await pilot.press("r")
        await settle(pilot)
        verdict = status(app, "health")
        assert "UNKNOWN" in verdict and "tickers.json" in verdict


LIVE_HOLDER = """
import sys, time
from core.safety import run_lock
with run_lock.hold(sys.argv[1], "test holder"):
    print("held", flush=True)
    time.sleep(60)
"""


async def test_lock_screen_refuses_a_live_holder_and_breaks_a_stale_one(workspace: Path):
    import signal
    import subprocess
    import sys

    from conftest import REPO

    from tui.widgets.confirm import ConfirmScreen

    holder = subprocess.Popen(
        [sys.executable, "-c", LIVE_HOLDER, str(workspace)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        app = ParqctlApp(Workspace.open(workspace), health_refresh_s=None)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("3")
            await settle(pilot)
            assert "LIVE" in _text(app, "#lock-details")
            await pilot.press("b")
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen)
            assert (workspace / ".run_lock").exists()

            holder.send_signal(signal.SIGKILL)
            holder.wait()
            await pilot.press("r")
            await settle(pilot)
            assert "STALE" in _text(app, "#lock-details")

            await pilot.press("b")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            body = str(app.screen.query_one("#confirm-body", Static).render())
            assert f"pid {holder.pid}" in body and "owner.json" in body
            await pilot.press("enter")  # the focused button is Cancel
            await pilot.pause()
            assert (workspace / ".run_lock").exists()

            await pilot.press("b")
            await pilot.pause()
            await pilot.press("tab", "enter")  # to the Break lock button, and press it
            await pilot.pause()
            await settle(pilot)
            assert not (workspace / ".run_lock").exists()
            assert "FREE" in _text(app, "#lock-details")
    finally:
        holder.kill()
        holder.wait()


async def test_help_and_palette_commands(workspace: Path):
    from tui.widgets.help import HelpScreen

    app = ParqctlApp(Workspace.open(workspace), health_refresh_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        pane = app.screen.focused
        assert pane is not None and pane.max_scroll_y > 0  # longer than 24 lines
        await pilot.press("G")  # j/k scroll, g/G to the ends, as lists move on screens
        await pilot.pause()
        assert pane.scroll_target_y == pane.max_scroll_y
        await pilot.press("g", "j")
        await pilot.pause()
        assert pane.scroll_target_y == 1
        await pilot.press("escape")
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Refresh health" in titles and "Screenshot" in titles
        await pilot.press("3")
        await pilot.pause()
        assert app.current_mode == "locks"
        await pilot.press("1")
        await pilot.pause()
        block = app.screen.query_one("#status", OptionList)
        block.focus()
        block.highlighted = [line.area for line in block.lines].index("lock")
        await pilot.press("enter", "enter")  # the details, then the screen they lead to
        await pilot.pause()
        assert app.current_mode == "locks"
