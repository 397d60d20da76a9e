"""The audit log screen (9) driven with the Pilot: newest first, filters, the whole
record on Enter, malformed lines shown as such."""

from __future__ import annotations

from console_support import plain, settle, shown
from textual.widgets import DataTable

from core.safety import audit
from core.store.workspace import Workspace
from screens.audit import AuditScreen
from tui.app import ParqctlApp


def commands_shown(app) -> list[str]:
    table = app.screen.query_one(DataTable)
    column = [c.label.plain for c in table.columns.values()].index("command")
    return [str(table.get_row_at(row)[column]) for row in range(table.row_count)]


async def test_audit_screen_lists_newest_first_filters_and_opens_a_record(workspace):
    audit.append(workspace, "quarantine.add", "ok", path="stocks_1d/AAPL.parquet")
    audit.append(workspace, "migrate.verify", "failed", target="us:yahoo 1d")
    audit.append(workspace, "quarantine.restore", "ok", path="stocks_1d/AAPL.parquet")
    with (workspace / audit.AUDIT_FILE).open("a") as log:
        log.write("\x1b]52;c;aGk=\x07 not a record\n")  # hostile: must not reach the terminal
    app = ParqctlApp(Workspace.open(workspace), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("9")
        await settle(pilot)
        assert isinstance(app.screen, AuditScreen)
        assert commands_shown(app) == [
            "?",
            "quarantine.restore",
            "migrate.verify",
            "quarantine.add",
        ]
        summary = shown(app, "#audit-summary")
        assert "4 record(s), newest first" in summary and "? 1 line(s) not records" in summary

        # The malformed line, opened: what is wrong, its escape shown as text.
        pane = app.screen.query_one("#audit-record")
        assert not pane.display
        await pilot.press("enter")
        await pilot.pause()
        assert pane.display
        record = plain(pane.content)
        assert "not JSON" in record and "\\x1b]52" in record and "\x1b" not in record
        await pilot.press("escape")  # hides the record; the filters stay
        await pilot.pause()
        assert not pane.display

        await pilot.press("slash", *"quarantine", "enter")
        await settle(pilot)
        assert commands_shown(app) == ["quarantine.restore", "quarantine.add"]
        await pilot.press("o")  # the first outcome in the log: failed
        await settle(pilot)
        assert commands_shown(app) == []
        assert "outcome failed" in shown(app, "#audit-summary")
        await pilot.press("escape")  # clears both filters
        await pilot.press("o")
        await settle(pilot)
        assert commands_shown(app) == ["migrate.verify"]

        await pilot.press("enter")
        await pilot.pause()
        record = plain(pane.content)
        for expected in ("who", "what", "migrate.verify", "when", "result", "failed",
                         "target", "us:yahoo 1d"):  # fmt: skip
            assert expected in record
        await pilot.press("enter")
        await pilot.pause()
        assert not pane.display and isinstance(app.screen, AuditScreen)


async def test_audit_screen_on_a_workspace_without_a_log(workspace):
    app = ParqctlApp(Workspace.open(workspace), health_refresh_s=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("9")
        await settle(pilot)
        assert "no audit records yet" in shown(app, "#audit-summary")
        await pilot.press("enter", "o", "slash", "escape")  # nothing to act on: no crash
        await settle(pilot)
        assert isinstance(app.screen, AuditScreen)


async def test_escape_with_nothing_to_clear_goes_back_as_on_every_screen(workspace):
    audit.append(workspace, "quarantine.add", "ok", path="stocks_1d/AAPL.parquet")
    app = ParqctlApp(Workspace.open(workspace), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("5", "9")
        await settle(pilot)
        assert app.current_mode == "audit"
        await pilot.press("slash", *"quarantine", "enter")
        await settle(pilot)
        await pilot.press("escape")  # clears the filter: still here
        await settle(pilot)
        assert app.current_mode == "audit" and app.screen.text_filter == ""
        await pilot.press("escape")  # nothing left to clear: back where we came from
        await settle(pilot)
        assert app.current_mode == "disk"
