"""The console's backfill: from the heatmap, what will be fetched, asked first, run as a
worker with a progress bar and a cancel, and the grid reloaded with the gap closed."""

from __future__ import annotations

from datetime import date, datetime

from console_support import settle, shown
from fixtures.ingest_fakes import FakeYahoo, make_workspace, session_times
from textual.widgets import OptionList, ProgressBar

from core.ingest import yahoo
from core.store.workspace import Workspace
from screens.backfill import BackfillScreen
from screens.heatmap import HeatmapScreen
from tui.app import ParqctlApp

NOW = datetime(2025, 12, 15, 12).timestamp()


def workspace(tmp_path):
    bars = {
        "1d": {
            "AAA": session_times("1d", "2025-06-02", "2025-12-12", ["2025-07-07", "2025-07-08"]),
            "BBB": session_times("1d", "2025-06-02", "2025-12-12", ["2025-09-15"]),
        }
    }
    return make_workspace(tmp_path / "ws", bars)


async def open_heatmap(app, pilot) -> HeatmapScreen:
    await settle(pilot)
    await pilot.press("2")
    await settle(pilot)
    assert isinstance(app.screen, HeatmapScreen)
    return app.screen


async def test_backfill_the_ticker_under_the_cursor_asks_first_then_closes_its_gap(
    tmp_path, monkeypatch
):
    root = workspace(tmp_path)
    source = FakeYahoo(empty={("BBB", "1d", date(2025, 9, 15))})  # a halt: Yahoo has nothing
    monkeypatch.setattr(yahoo, "default_source", lambda: source)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None, clock=lambda: NOW)
    async with app.run_test(size=(120, 36)) as pilot:
        heatmap = await open_heatmap(app, pilot)
        assert heatmap.data.tickers["AAA"].missing_sessions == 2
        await pilot.press("home", "b")
        await settle(pilot)
        assert isinstance(app.screen, BackfillScreen)
        body = shown(app, "#backfill-body")
        assert "backfill: 1 request for 2 missing sessions" in body
        assert "AAA        1d   2025-07-07..2025-07-08     2 sessions  never expires" in body
        assert "Backfill now? (y)" in body and source.calls == []  # asked first
        await pilot.press("y")
        await settle(pilot)
        assert len(source.calls) == 1 and source.calls[0].ticker == "AAA"
        assert app.screen.query_one(ProgressBar).progress == 1
        assert "1 of 1 requests answered" in shown(app, "#backfill-body")
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is heatmap
        assert heatmap.data.tickers["AAA"].gaps == []  # reloaded: the gap is closed
        assert heatmap.data.tickers["BBB"].missing_sessions == 1  # not in scope

        await pilot.press("t", *"BBB", "enter", "b")  # Yahoo answers empty, recorded as such
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert "confirmed empty  BBB 1d 2025-09-15" in shown(app, "#backfill-body")
        await pilot.press("escape")
        await settle(pilot)
        gaps = app.screen.query_one("#heatmap-gap-list", OptionList).options
        assert "2025-09-15          1 ∅ empty (2025-12-15)" in [str(g.prompt) for g in gaps]


async def test_backfill_all_in_view_stops_on_cancel_after_the_request_in_progress(
    tmp_path, monkeypatch
):
    root = workspace(tmp_path)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None, clock=lambda: NOW)

    def press_stop():  # the operator presses escape while the first request runs
        app.call_from_thread(app.screen.action_cancel)

    source = FakeYahoo(script={1: press_stop})
    monkeypatch.setattr(yahoo, "default_source", lambda: source)
    async with app.run_test(size=(120, 36)) as pilot:
        heatmap = await open_heatmap(app, pilot)
        await pilot.press("B")
        await settle(pilot)
        assert "backfill: 2 requests for 3 missing sessions" in shown(app, "#backfill-body")
        await pilot.press("y")
        await settle(pilot)
        assert len(source.calls) == 1
        assert "cancelled after 1 of 2 requests" in shown(app, "#backfill-body")
        await pilot.press("escape")
        await settle(pilot)
        gaps = {t: heatmap.data.tickers[t].missing_sessions for t in ("AAA", "BBB")}
        assert sorted(gaps.values()) == [0, sum(gaps.values())]  # one of them done


async def test_escape_before_starting_fetches_nothing(tmp_path, monkeypatch):
    root = workspace(tmp_path)
    source = FakeYahoo()
    monkeypatch.setattr(yahoo, "default_source", lambda: source)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None, clock=lambda: NOW)
    async with app.run_test(size=(120, 36)) as pilot:
        heatmap = await open_heatmap(app, pilot)
        await pilot.press("B")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is heatmap and source.calls == []


async def test_backfill_from_the_dashboards_worst_tickers(tmp_path, monkeypatch):
    from core.availability.index import refresh_index
    from screens.dashboard import WorstTickers

    root = workspace(tmp_path)
    refresh_index(root)  # the dashboard lists worst tickers once an index exists
    source = FakeYahoo()
    monkeypatch.setattr(yahoo, "default_source", lambda: source)
    app = ParqctlApp(Workspace.open(root), health_refresh_s=None, clock=lambda: NOW)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        worst = app.screen.query_one(WorstTickers)
        assert [w.ticker for w in worst.worst] == ["AAA", "BBB"]
        worst.focus()
        worst.highlighted = 0
        await pilot.press("B")
        await settle(pilot)
        assert isinstance(app.screen, BackfillScreen)
        assert "3 missing sessions" in shown(app, "#backfill-body") and source.calls == []
        await pilot.press("y")
        await settle(pilot)
        assert {c.ticker for c in source.calls} == {"AAA", "BBB"}
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, BackfillScreen)
        assert not (root / "stocks_1d/AAA.parquet.tmp").exists()
