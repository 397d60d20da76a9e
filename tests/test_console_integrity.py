"""The integrity screen (6) at real scale, driven with the Pilot: the last check's
findings on open without checking again, grouped by (code, ticker, interval), expanded on
Enter, filtered by severity; quarantining every error; copying a path."""

from __future__ import annotations

from console_support import settle, shown
from integrity_support import EXTRA_MONTHS, add_grouped_findings
from textual.widgets import DataTable

from core.integrity import saved_findings
from core.integrity.check import check, save_report
from core.integrity.findings import last_summary
from core.integrity.quarantine import entries
from core.store.workspace import Workspace
from screens.integrity import IntegrityScreen
from tui.app import ParqctlApp
from tui.widgets.confirm import ConfirmScreen


def cells(app, label: str) -> list[str]:
    table = app.screen.query_one(DataTable)
    column = [c.label.plain for c in table.columns.values()].index(label)
    return [str(table.get_row_at(row)[column]) for row in range(table.row_count)]


def move_to(app, code: str) -> None:
    table = app.screen.query_one(DataTable)
    table.move_cursor(row=cells(app, "code").index(code))


async def test_last_findings_on_open_grouped_expanded_and_filtered(workspace):
    add_grouped_findings(workspace)
    save_report(workspace, check(Workspace.open(workspace)))
    app = ParqctlApp(Workspace.open(workspace), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("6")  # no `c`: the saved findings are listed
        await settle(pilot)
        assert isinstance(app.screen, IntegrityScreen)
        summary = shown(app, "#integrity-summary")
        assert summary.startswith("✗ 2 open error(s)") and "last check" in summary
        codes = cells(app, "code")
        assert codes.count("schema.extra_column") == 1  # five warnings, one row
        assert cells(app, "ticker")[codes.index("schema.extra_column")] == "AAPL 1d"
        assert cells(app, "file")[codes.index("schema.extra_column")] == "▸ 5 files"
        rows = len(codes)

        move_to(app, "schema.extra_column")
        await pilot.pause()
        assert "5 findings" in shown(app, "#integrity-detail")
        await pilot.press("enter")
        await pilot.pause()
        files = cells(app, "file")
        assert len(files) == rows + len(EXTRA_MONTHS)
        # Each file of the group told apart by its partition's month, interval kept.
        for month in EXTRA_MONTHS:
            assert f"stocks_1d/AAPL/2024-{month:02d}" in files
        await pilot.press("down")
        await pilot.pause()
        assert "data/us/yahoo/stocks_1d/ticker=AAPL/year=2024/month=01/data.parquet" in shown(
            app, "#integrity-detail"
        )
        await pilot.press("up", "enter")  # folds it again
        await pilot.pause()
        assert len(cells(app, "file")) == rows

        await pilot.press("f")  # errors only
        await pilot.pause()
        assert set(cells(app, "")) == {"✗"} and len(cells(app, "")) == 2
        assert "showing error only" in shown(app, "#integrity-summary")
        await pilot.press("f")  # warnings only
        await pilot.pause()
        assert set(cells(app, "")) == {"!"} and "schema.extra_column" in cells(app, "code")
        await pilot.press("f", "f")  # info, then all
        await pilot.pause()
        assert len(cells(app, "code")) == rows


async def test_quarantine_every_error_from_the_console_updates_the_rows(workspace):
    _, broken = add_grouped_findings(workspace)
    save_report(workspace, check(Workspace.open(workspace)))
    app = ParqctlApp(Workspace.open(workspace), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("6")
        await settle(pilot)
        await pilot.press("A")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        body = shown(app, "#confirm-body")
        assert "Move these 2 files into .parqctl/quarantine/" in body
        assert "stocks_1d/BRK-B.parquet" in body and "stocks_1d/MSFT.parquet" in body
        await pilot.press("enter")  # Cancel is focused: nothing moves
        await settle(pilot)
        assert all(path.exists() for path in broken)

        await pilot.press("A", "tab", "enter")
        await settle(pilot)
        assert not any(path.exists() for path in broken)
        assert sorted(e.original_path for e in entries(workspace)) == [
            "stocks_1d/BRK-B.parquet",
            "stocks_1d/MSFT.parquet",
        ]
        assert shown(app, "#integrity-summary").startswith("✓ 0 open error(s)")
        assert cells(app, "").count("⊘") == 2  # still listed, marked as moved
        assert last_summary(workspace).open_errors == 0
        await pilot.press("A")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)  # nothing left to move

    # Reopened, the console lists them as moved: the saved findings record it.
    assert saved_findings.load(workspace).open_errors == 0


async def test_copy_path_of_a_finding_a_group_and_a_quarantined_file(workspace):
    add_grouped_findings(workspace)
    app = ParqctlApp(Workspace.open(workspace), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("6", "c")  # no saved findings: a check in the console
        await settle(pilot)
        move_to(app, "schema.extra_column")
        await pilot.press("y")
        await pilot.pause()
        folder = workspace / "data/us/yahoo/stocks_1d/ticker=AAPL/year=2024"
        assert app.clipboard == str(folder)
        assert any(str(folder) in n.message for n in app._notifications)
        await pilot.press("enter", "down", "y")
        await pilot.pause()
        assert app.clipboard == str(folder / "month=01" / "data.parquet")

        move_to(app, "file.unreadable")
        await pilot.press("Q", "tab", "enter")
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        [entry] = entries(workspace)
        await pilot.press("y")
        await pilot.pause()
        assert app.clipboard == str(entry.stored_path)
        assert any(str(entry.stored_path) in n.message for n in app._notifications)
