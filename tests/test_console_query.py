"""The console's Query screen driven with the Pilot, and its snapshot."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import mounted_tmpfs, ticker_entry, write_bars, write_tickers
from console_support import settle, settle_health, shown
from textual.widgets import DataTable, Input, OptionList, Tree

import screens.query as query_screen
from core.safety.atomic import write_json
from core.sql.history import HISTORY_FILE
from core.store.demo import build_demo
from core.store.workspace import Workspace
from screens.query import PAGE_ROWS, QueryScreen, SqlEditor, sql_highlights
from tui.app import ParqctlApp

TICKERS = ("AAPL", "EURUSD=X", "MSFT")
ROWS_PER_TICKER = 420  # 1,260 rows of 1h: three pages


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    start = datetime(2025, 1, 2, 9, 30)
    for t in TICKERS:
        times = [start + timedelta(hours=i) for i in range(ROWS_PER_TICKER)]
        write_bars(root / f"stocks_1h/{t}.parquet", t, times)
        write_bars(root / f"stocks_1d/{t}.parquet", t, [datetime(2025, 1, d) for d in (2, 3)])
    write_tickers(root, {t: ticker_entry(t) for t in TICKERS})
    write_json(root / "intervals.json", ["1d", "1h"])
    write_json(root / "storage_config.json", {"partitioned": False, "markets": {}, "sources": {}})
    return root


def _app(root: Path) -> ParqctlApp:
    return ParqctlApp(Workspace.open(root), health_refresh_s=None)


async def _open(pilot) -> QueryScreen:
    await settle(pilot)
    await pilot.press("8")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, QueryScreen)
    return screen


async def _run(pilot, screen: QueryScreen, sql: str) -> None:
    screen.query_one(SqlEditor).load_text(sql)
    await pilot.press("ctrl+r")
    await settle(pilot)


async def test_a_query_runs_and_its_rows_come_a_page_at_a_time(workspace: Path):
    app = _app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _open(pilot)
        await _run(pilot, screen, "SELECT ticker, date, close FROM bars_1h ORDER BY ticker, date")
        table = screen.query_one(DataTable)
        assert table.row_count == PAGE_ROWS
        assert [str(c.label) for c in table.columns.values()] == ["ticker", "date", "close"]
        assert "500 rows so far" in shown(app, "#query-status")

        await pilot.press("ctrl+l")
        await settle(pilot)
        assert table.row_count == 2 * PAGE_ROWS

        table.focus()
        await pilot.press("ctrl+end")  # the last row asks for the next page
        await settle(pilot)
        assert table.row_count == len(TICKERS) * ROWS_PER_TICKER
        assert shown(app, "#query-status").startswith("1,260 rows in ")
        assert str(table.get_row_at(table.row_count - 1)[0]) == "MSFT"


async def test_escape_interrupts_a_running_query_and_the_next_one_runs(workspace: Path):
    app = _app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _open(pilot)
        screen.query_one(SqlEditor).load_text("SELECT count(*) FROM range(1000000000000) t")
        await pilot.press("ctrl+r")
        for _ in range(100):  # until DuckDB has started (the engine opens first)
            await pilot.pause(0.05)
            if screen._engine is not None:
                break
        await pilot.pause(0.3)
        started = time.monotonic()
        await pilot.press("escape")
        await settle(pilot)
        assert time.monotonic() - started < 10
        assert shown(app, "#query-status") == "interrupted: nothing was written"

        await _run(pilot, screen, "SELECT count(*) AS n FROM bars_1d")
        table = screen.query_one(DataTable)
        assert str(table.get_row_at(0)[0]) == "6"


async def test_an_error_is_one_line_with_its_position(workspace: Path):
    app = _app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _open(pilot)
        await _run(pilot, screen, "SELECT nope\nFROM bars_1d")
        status = shown(app, "#query-status")
        assert status.startswith('Binder Error: Referenced column "nope" not found')
        assert status.endswith("(line 1, column 8)")
        await _run(pilot, screen, "COPY bars_1d TO '/tmp/parqctl-query-never.csv'")
        assert "file system operations are disabled" in shown(app, "#query-status")
    assert not Path("/tmp/parqctl-query-never.csv").exists()


async def test_the_views_list_inserts_names_into_the_editor(workspace: Path):
    app = _app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _open(pilot)
        editor = screen.query_one(SqlEditor)
        editor.load_text("SELECT  FROM bars_1h")
        editor.move_cursor((0, 7))
        tree = screen.query_one(Tree)
        labels = [str(node.label) for node in tree.root.children]
        assert labels == [
            "bars_1h",
            "bars_1d",
            "tickers",
            "files",
            "gaps",
            "findings",
            "audit",
            "quarantine",
        ]
        await pilot.press("ctrl+t")
        assert tree.has_focus
        bars_1h = tree.root.children[0]
        bars_1h.expand()
        await pilot.pause()
        close = next(n for n in bars_1h.children if n.data == "close")
        tree.move_cursor(close)
        await pilot.press("enter")
        await pilot.pause()
        assert editor.text == "SELECT close FROM bars_1h"
        assert editor.has_focus


async def test_history_is_kept_under_parqctl_and_reloads(workspace: Path):
    app = _app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _open(pilot)
        await _run(pilot, screen, "SELECT 1 AS first_query")
        await _run(pilot, screen, "SELECT nope FROM bars_1d")
        await _run(pilot, screen, "SELECT 2 AS last_query")
        await pilot.press("ctrl+o")
        await pilot.pause()
        options = app.screen.query_one(OptionList)
        assert options.option_count == 3
        assert "SELECT 2 AS last_query" in str(options.get_option_at_index(0).prompt)
        assert "error" in str(options.get_option_at_index(1).prompt)
        # j/k/g/G move in the popup as on the screens.
        for key, highlighted in (("G", 2), ("k", 1), ("g", 0), ("j", 1), ("j", 2)):
            await pilot.press(key)
            await pilot.pause()
            assert options.highlighted == highlighted, key
        await pilot.press("up", "down", "enter")
        await pilot.pause()
        assert app.screen is screen
        assert screen.query_one(SqlEditor).text == "SELECT 1 AS first_query"
    lines = (workspace / HISTORY_FILE).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["query"] for r in records] == [
        "SELECT 1 AS first_query",
        "SELECT nope FROM bars_1d",
        "SELECT 2 AS last_query",
    ]
    assert records[0]["rows"] == 1 and records[1]["error"].startswith("Binder Error")


async def test_export_writes_every_row_to_the_named_file_and_never_into_data(
    workspace: Path, tmp_path: Path
):
    target = tmp_path / "export" / "bars.parquet"
    target.parent.mkdir()
    app = _app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _open(pilot)
        await _run(pilot, screen, "SELECT * FROM bars_1h ORDER BY ticker, date")
        assert screen.query_one(DataTable).row_count == PAGE_ROWS

        await pilot.press("ctrl+g")
        await pilot.pause()
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        assert f"exported 1,260 rows to {target}" in shown(app, "#query-status")

        (workspace / "data").mkdir()
        await pilot.press("ctrl+g")
        await pilot.pause()
        app.screen.query_one(Input).value = str(workspace / "data" / "x.csv")
        await pilot.press("enter")
        await settle(pilot)
        assert list((workspace / "data").iterdir()) == []
    import pyarrow.parquet as pq

    assert pq.read_table(target).num_rows == 1260
    assert sorted(p.name for p in target.parent.iterdir()) == ["bars.parquet"]


def test_sql_highlights_keywords_strings_and_comments_per_line():
    text = "-- bars\nSELECT 'é', count(*) FROM bars_1d\nWHERE x = 1"
    highlights = sql_highlights(text)
    assert highlights[0] == [(0, 7, "comment")]
    assert (0, 6, "keyword") in highlights[1]
    assert (7, 11, "string") in highlights[1]  # bytes: é is two
    assert (13, 18, "function.call") in highlights[1]
    assert (0, 5, "keyword") in highlights[2] and (10, 11, "number") in highlights[2]


# --- the snapshot -------------------------------------------------------------------------

NOW = datetime(2025, 12, 5, 21, 30, tzinfo=UTC).timestamp()
MOUNT = Path("/tmp/parqctl-query-snapshot")
ROOT = MOUNT / "ws"


@pytest.fixture
def snapshot_workspace(monkeypatch) -> Iterator[Path]:
    """The demo at a fixed path on a small tmpfs of its own (the header and the disk
    verdict are then the same on every machine), with a fixed clock, zone and host."""
    with open(f"{MOUNT}.lock", "w") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)
        if os.path.ismount(MOUNT):
            subprocess.run(["umount", str(MOUNT)], check=False)
        with mounted_tmpfs(MOUNT, 16 * 1024 * 1024):
            monkeypatch.setattr(socket, "gethostname", lambda: "ops-console")
            monkeypatch.setenv("TZ", "UTC")
            time.tzset()
            shutil.rmtree(ROOT, ignore_errors=True)
            build_demo(ROOT, tickers=14, seed=3, end=date(2025, 12, 5), years_1d=2, years_1h=1)
            for directory, _dirs, names in os.walk(ROOT):
                for name in [*names, "."]:
                    os.utime(os.path.join(directory, name), (NOW - 3600, NOW - 3600))
            monkeypatch.setattr(query_screen, "perf_counter", lambda: 100.0)
            yield ROOT
            monkeypatch.undo()
            time.tzset()


def test_query_screen_snapshot(snap_compare, snapshot_workspace: Path):
    async def run_before(pilot) -> None:
        await settle_health(pilot)
        await pilot.press("8")
        await settle(pilot)
        pilot.app.screen.query_one(SqlEditor).load_text(
            "-- the daily bars of one ticker around a day\n"
            "SELECT ticker, date, open, high, low, close, volume\n"
            "FROM bars_1d\n"
            "WHERE ticker = 'AAPL' AND date BETWEEN '2025-11-20' AND '2025-12-05'\n"
            "ORDER BY date"
        )
        await pilot.press("ctrl+r")
        await settle(pilot)
        # A DataTable measures its columns when its message queue is idle: on a busy machine
        # the screenshot came before, with every column as narrow as its header.
        table = pilot.app.screen.query_one(DataTable)
        for _ in range(200):
            widths = [column.content_width for column in table.columns.values()]
            if len(widths) == 7 and widths[1] >= len("2025-11-20 00:00:00"):
                break
            await pilot.pause(0.02)

    app = ParqctlApp(Workspace.open(snapshot_workspace), health_refresh_s=None, clock=lambda: NOW)
    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


async def test_the_heatmap_opens_the_query_screen_on_the_bars_under_its_cursor(tmp_path):
    from screens.heatmap import HeatmapScreen
    from screens.heatmap_grid import HeatmapGrid

    root = tmp_path / "demo"
    build_demo(root, tickers=14, seed=3)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        assert isinstance(app.screen, HeatmapScreen)
        await pilot.press("G")  # the last row: a complete ticker
        ticker = app.screen.query_one(HeatmapGrid).current()[0]
        await pilot.press("S")
        await settle(pilot)
        assert isinstance(app.screen, QueryScreen)
        text = app.screen.query_one(SqlEditor).text
        assert "FROM bars_1d" in text and f"WHERE ticker = '{ticker}'" in text


async def test_a_result_with_two_columns_of_one_name_is_shown_by_position(workspace: Path):
    """A join gives two `ticker` columns: both are shown, none is lost (nor the console)."""
    app = _app(workspace)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await _open(pilot)
        await _run(pilot, screen, "SELECT 1 AS a, 2 AS a, 'x' AS b")
        table = screen.query_one(DataTable)
        assert [str(c.label) for c in table.columns.values()] == ["a", "a", "b"]
        assert [str(v) for v in table.get_row_at(0)] == ["1", "2", "x"]
