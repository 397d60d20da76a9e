"""Keys and navigation operators already know, on every screen: the tabs, j/k/h/l and
g/G on lists, ``/`` to filter, escape to clear then go back, y/n in confirmations, the
palette's commands from anywhere, and a screenshot that says where it went."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from console_support import copy_demo, settle, status
from textual.widgets import DataTable, OptionList

from core.store.demo import build_demo
from core.store.workspace import Workspace
from tui.advice import console_wording
from tui.app import SCREENS, ParqctlApp
from tui.cli import main
from tui.palette import console_commands
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.filter_prompt import FilterPrompt
from tui.widgets.fitted_table import FittedTable
from tui.widgets.screen_tabs import ScreenTabs

END = date(2025, 12, 5)


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "ws"
    return root, build_demo(root, tickers=14, seed=3, end=END, years_1d=2, years_1h=1)


@pytest.fixture
def demo(demo_template, tmp_path: Path) -> Path:
    return copy_demo(*demo_template, tmp_path / "ws")[0]


def _app(root: Path) -> ParqctlApp:
    return ParqctlApp(Workspace.open(root), health_refresh_s=None)


async def test_every_screen_shows_where_the_operator_is(workspace: Path):
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        for entry in SCREENS:
            # Not by number key: the query screen's editor keeps the digits it is typed.
            app.switch_mode(entry.mode)
            await pilot.pause()
            [tabs] = app.screen.query(ScreenTabs)
            assert tabs.current == entry.mode == app.current_mode
            line = tabs.render().plain
            assert f" {entry.key} {entry.short or entry.title} " in line
            assert all(f" {e.key} " in line for e in SCREENS)
            assert tabs.region.y == 1  # right under the header
        await pilot.click(ScreenTabs, offset=(2, 0))  # " 1 Dash "
        await pilot.pause()
        assert app.current_mode == "dashboard"
    app = _app(workspace)
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        line = app.screen.query_one(ScreenTabs).render().plain
        assert " 1 Dashboard " in line and " 3 Run lock " in line


async def _checked_integrity(pilot) -> FittedTable:
    await pilot.press("6", "c")
    await settle(pilot)
    table = pilot.app.screen.query_one(FittedTable)
    assert table.row_count >= 4
    table.focus()
    await pilot.pause()
    return table


async def test_vi_keys_move_in_every_kind_of_list(demo: Path):
    app = _app(demo)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        table = await _checked_integrity(pilot)
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("g")
        assert table.cursor_row == 0

        await pilot.press("7")  # the migration screen's plain DataTable
        await settle(pilot)
        migration = app.screen.query_one(DataTable)
        migration.focus()
        if migration.row_count > 1:
            await pilot.press("j")
            assert migration.cursor_row == 1
            await pilot.press("g")
            assert migration.cursor_row == 0

        await pilot.press("1")  # the dashboard's lists
        await settle(pilot)
        worst = app.screen.query_one("#worst", OptionList)
        worst.focus()
        await pilot.pause()
        worst.highlighted = 0
        await pilot.press("j")
        assert worst.highlighted == min(1, worst.option_count - 1)
        await pilot.press("G")
        assert worst.highlighted == worst.option_count - 1
        await pilot.press("g")
        assert worst.highlighted == 0


async def test_slash_filters_by_substring_or_glob_and_escape_clears_then_goes_back(demo: Path):
    app = _app(demo)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        table = await _checked_integrity(pilot)
        every = table.row_count
        await pilot.press("slash")
        await pilot.pause()
        assert isinstance(app.screen, FilterPrompt)
        await pilot.press(*"unread")  # a substring of the code file.unreadable
        await pilot.pause()
        assert 0 < table.row_count < every  # filtered while typing
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_mode == "integrity" and table.filter_pattern == "unread"
        assert table.border_title.startswith(f"/unread · {table.row_count} of {every} rows")
        key = table.selected_key()
        assert key is not None and "unreadable" in " ".join(
            c if isinstance(c, str) else c.plain for c in dict(table.fit_rows)[key]
        )

        await pilot.press("slash")
        await pilot.pause()
        await pilot.press("ctrl+a", "ctrl+k", *"*zz*")  # a glob matching nothing
        await pilot.pause()
        assert table.row_count == 0
        await pilot.press("escape")  # leaves the prompt, the filter as it was
        await pilot.pause()
        assert table.filter_pattern == "unread" and table.row_count > 0

        await pilot.press("escape")  # clears the filter
        await pilot.pause()
        assert app.current_mode == "integrity"
        assert table.filter_pattern == "" and table.row_count == every
        await pilot.press("escape")  # nothing left to clear: back where we came from
        await pilot.pause()
        assert app.current_mode == "dashboard"

        await pilot.press("5", "3", "escape")
        await pilot.pause()
        assert app.current_mode == "disk"
        assert "slash" not in app.screen.active_bindings  # nothing to filter: not offered
        await pilot.press("slash")
        await pilot.pause()
        assert app.current_mode == "disk" and not isinstance(app.screen, FilterPrompt)
        await pilot.press("4")
        await settle(pilot)
        assert app.screen.active_bindings["slash"].enabled  # the quarantine list


@pytest.mark.parametrize(
    ("keys", "answer"),
    [(("y",), True), (("n",), False), (("enter",), False), (("tab", "enter"), True)],
)
async def test_a_confirmation_takes_y_and_n(workspace: Path, keys, answer):
    app = _app(workspace)
    answers = []
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.push_screen(ConfirmScreen("Break?", "what changes", "Break"), answers.append)
        await pilot.pause()
        await pilot.press(*keys)
        await pilot.pause()
        assert answers == [answer]


async def test_the_palette_offers_every_screens_actions_from_anywhere(workspace: Path):
    app = _app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        commands = {c.name: c for c in console_commands(app, SCREENS)}
        assert {f"Go to {e.title}" for e in SCREENS} <= set(commands)
        for expected in ("Run lock: Break lock", "Quarantine: Purge", "Integrity: Check"):
            assert expected in commands
        assert commands["Run lock: Break lock"].help == "key b on Run lock (3)"

        await commands["Disk: Refresh"].run()  # from the dashboard: to the disk screen
        await pilot.pause()
        assert app.current_mode == "disk"

        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"go to run lock")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        assert app.current_mode == "locks"


async def test_a_screenshot_is_saved_in_the_workspace_and_named(workspace: Path):
    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.action_screenshot()
        await pilot.pause()
        [saved] = (workspace / ".parqctl" / "screenshots").iterdir()
        assert saved.name.startswith("dashboard-") and saved.suffix == ".svg"
        assert "<svg" in saved.read_text()
        assert any(str(saved) in n.message for n in app._notifications)


def test_console_wording_names_keys_where_the_console_can_do_it():
    # Screen 6 lists the last check's findings on opening; c would run a new check.
    assert console_wording("3 error(s) (`parqctl integrity` lists them)") == (
        "3 error(s) (press 6 to list them)"
    )
    assert console_wording("never checked: run `parqctl integrity`") == (
        "never checked: press 6 then c"
    )
    assert console_wording("gone: remove the lock with `parqctl lock break --force`") == (
        "gone: remove the lock: press 3 then b"
    )
    assert console_wording("run `parqctl migrate verify --venue us:yahoo --interval 1d`") == (
        "press 7 then v"
    )
    assert console_wording("see why with `parqctl migrate status --venue us:yahoo`") == (
        "see why: press 7"
    )
    # What only the CLI does stays the CLI's.
    for cli_only in ("`parqctl migrate finalize --delete-legacy`", "`parqctl fetch --overwrite`"):
        assert console_wording(f"then {cli_only}") == f"then {cli_only}"


async def test_the_dashboard_advises_keys_not_commands(demo: Path, capsys):
    assert main(["-w", str(demo), "integrity"]) == 1  # the demo's injected errors, saved
    capsys.readouterr()
    app = _app(demo)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        verdict = status(app, "health")
        assert "error(s) in the last check (press 6 to list them)" in verdict
        assert "`parqctl" not in verdict
        app.notify("run `parqctl lock status`")
        await pilot.pause()
        assert list(app._notifications)[-1].message == "press 3"


async def test_the_backfill_question_takes_n(demo: Path):
    from screens.backfill import BackfillScreen

    app = _app(demo)
    answers = []
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        app.push_screen(BackfillScreen(demo, "1d", None, END, "every ticker"), answers.append)
        await settle(pilot)
        assert isinstance(app.screen, BackfillScreen)
        await pilot.press("n")
        await pilot.pause()
        assert answers == [False] and not isinstance(app.screen, BackfillScreen)


async def test_h_and_l_scroll_a_wide_table_and_j_k_move_in_the_views_tree(workspace: Path):
    from textual.widgets import Tree

    from screens.query import QueryScreen, SqlEditor

    app = _app(workspace)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("8")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, QueryScreen)
        screen.query_one(SqlEditor).load_text("SELECT * FROM bars_1d, tickers LIMIT 3")
        await pilot.press("ctrl+r")
        await settle(pilot)
        table = screen.query_one(DataTable)
        table.focus()
        await pilot.pause()
        assert table.max_scroll_x > 0  # wider than 80 columns
        await pilot.press("l", "l")
        await pilot.pause(0.3)
        assert table.scroll_x > 0
        await pilot.press("h", "h")
        await pilot.pause(0.3)
        assert table.scroll_x == 0

        tree = screen.query_one(Tree)
        tree.focus()
        tree.cursor_line = 0
        await pilot.press("j")
        assert tree.cursor_line == 1
        await pilot.press("G")
        assert tree.cursor_line == tree.last_line
        await pilot.press("g")
        assert tree.cursor_line == 0


async def test_a_confirmation_shows_brackets_in_a_path_as_they_are(workspace: Path):
    """Paths and finding messages are not ours: `[x]` or `[/b]` in them is text, not markup."""
    app = _app(workspace)
    body = "Move stocks_1d/[x]/A[/b][bold]B.parquet\nReason: file.unreadable: [Errno 5] I/O"
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        app.push_screen(ConfirmScreen("Quarantine [x]?", body, "Quarantine"))
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        # As drawn, not as passed: markup would have eaten `[x]` (and `[/b]` raises).
        assert app.screen.query_one("#confirm-title").render().plain == "Quarantine [x]?"
        assert app.screen.query_one("#confirm-body").render().plain == body
