"""The real collector reads what ``parqctl fetch`` and ``parqctl import-csv`` wrote, row for
row: the same rows, values and dtypes its own updater writes for the same Yahoo answers.

The collector (``collector_support``) builds one workspace itself, its yfinance a fake
(``tests/collector_driver.py``); parqctl fills another from the same answers (the fake's
bars, reproduced by ``fixtures.ingest_fakes`` on its weekday calendar): one ticker by
fetch into the legacy layout, one by fetch into partitions (its storage block), one by
CSV import in both shapes. The collector's reader then gives the same digest per ticker.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from collector_support import Collector, collector  # noqa: F401
from fixtures.ingest_fakes import FakeClock, FakeYahoo, fast_config, synthetic_history

from core.availability.calendars import sessions
from core.ingest import yahoo
from core.ingest.csv_import import import_csv
from core.ingest.fetch import fetch, plan_fetch
from core.ingest.pacing import Pacer
from core.ingest.settings import IngestSettings
from core.safety.atomic import write_json
from core.store.workspace import Workspace

TICKERS = ("AAPL", "BRK-B", "MSFT")
INTERVALS = ("1d", "1h")


def _window() -> tuple[date, date]:
    """Three recent weeks (well inside the collector's 729-day clamp for 1h bars) without an
    exchange holiday: the driver's fake trades every weekday, import-csv checks XNYS."""
    for back in range(7, 200):
        end = date.today() - timedelta(days=back)
        start = end - timedelta(days=21)
        weekdays = [start + timedelta(n) for n in range(21) if (start + timedelta(n)).weekday() < 5]
        if len(sessions("XNYS", start, end - timedelta(days=1))) == len(weekdays):
            return start, end
    raise AssertionError("no three weeks without a holiday in 200 days")


START, END = _window()


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("a test reached for the real Yahoo Finance")

    monkeypatch.setattr(yahoo.YFinanceSource, "history", refuse)


@pytest.fixture(scope="module")
def theirs(collector: Collector, tmp_path_factory) -> dict:  # noqa: F811
    ws = tmp_path_factory.mktemp("collector") / "ws"
    answer = collector.init_workspace(ws, TICKERS, INTERVALS, START.isoformat(), END.isoformat())
    assert answer["exit_code"] == 0, answer["log"]
    return collector.read_many(ws, INTERVALS)


def csv_text(ticker: str, interval: str) -> str:
    """The fake's bars as a CSV file: Yahoo's download for daily bars (Adj Close = Close),
    plain with UTC offsets for hourly ones."""
    frame = synthetic_history(ticker, interval, START, END, calendar="weekdays")
    rows = []
    for when, row in frame.iterrows():
        o, h, lo, c = (repr(float(row[k])) for k in ("Open", "High", "Low", "Close"))
        v = int(row["Volume"])
        if interval == "1d":
            rows.append(f"{when:%Y-%m-%d},{o},{h},{lo},{c},{c},{v}")
        else:
            rows.append(f"{when.tz_convert('UTC'):%Y-%m-%d %H:%M:%S%z},{o},{h},{lo},{c},{v}")
    header = (
        "Date,Open,High,Low,Close,Adj Close,Volume"
        if interval == "1d"
        else "datetime,open,high,low,close,volume"
    )
    lines = [header, *rows]
    return "\n".join(lines) + "\n"


def test_the_collector_reads_what_fetch_and_import_wrote_row_for_row(
    theirs: dict,
    collector: Collector,  # noqa: F811
    tmp_path: Path,
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    block = {"mode": "partitioned", "venue": "us:yahoo", "market": "us", "source": "yahoo",
             "dataset": "stocks", "root": "data"}  # fmt: skip
    entries = {
        t: {"ticker": t, "added_date": START.isoformat(), "status": "active",
            "last_checked": None, "intervals": {}}
        for t in TICKERS
    }  # fmt: skip
    entries["BRK-B"]["intervals"] = {
        iv: {"status": "active", "storage": dict(block)} for iv in INTERVALS
    }
    write_json(ws / "tickers.json", entries)
    write_json(ws / "intervals.json", list(INTERVALS))
    write_json(ws / "storage_config.json", {"partitioned": False, "markets": {}, "sources": {}})
    fast_config(ws)
    today = date.today()
    for interval in INTERVALS:
        workspace = Workspace.open(ws)
        plan = plan_fetch(
            workspace, ["AAPL", "BRK-B"], interval, start=START, end=END - timedelta(days=1),
            today=today,
        )  # fmt: skip
        source = FakeYahoo(calendar="weekdays")
        result = fetch(workspace, plan, source, Pacer(IngestSettings(), FakeClock()), today=today)
        assert result.run.errors == 0 and result.run.added > 0
        path = tmp_path / f"MSFT-{interval}.csv"
        path.write_text(csv_text("MSFT", interval))
        imported = import_csv(Workspace.open(ws), path, "MSFT", interval, today=today)
        assert imported.ok and imported.written, [p.text("f") for p in imported.parsed.problems]

    assert (ws / "stocks_1d/AAPL.parquet").is_file()
    assert (ws / "data/us/yahoo/stocks_1h/ticker=BRK-B").is_dir()
    assert (ws / "stocks_1h/MSFT.parquet").is_file()
    ours = collector.read_many(ws, INTERVALS)
    for interval in INTERVALS:
        for ticker in TICKERS:
            mine, collectors = ours[interval][ticker], theirs[interval][ticker]
            assert mine["rows"] > 0 and mine["would_delete"] == []
            assert mine["dtypes"] == collectors["dtypes"]
            assert (mine["rows"], mine["min"], mine["max"]) == (
                collectors["rows"],
                collectors["min"],
                collectors["max"],
            ), (interval, ticker)
            assert mine["digest"] == collectors["digest"], (interval, ticker)
        assert ours[interval]["BRK-B"]["route"]["backend"] == "partitioned"
        assert ours[interval]["AAPL"]["route"]["backend"] == "legacy"
    tickers = json.loads((ws / "tickers.json").read_text())
    last = tickers["AAPL"]["intervals"]["1d"]["last_data_date"]
    assert (
        last
        == max(
            d for d in (END - timedelta(days=n) for n in range(1, 8)) if d.weekday() < 5
        ).isoformat()
    )
