"""``parqctl fetch``: yfinance's frames normalised as the collector does, written where the
collector reads each ticker, merged by (stock, date), tickers.json kept the collector's."""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, bar_table, run_cli, tree_digest
from fixtures.ingest_fakes import FakeClock, FakeYahoo, fast_config, make_workspace

from core.errors import DiskSpaceError, LockHeldError, ParqctlError
from core.ingest import yahoo
from core.ingest.fetch import fetch, plan_fetch
from core.ingest.normalize import normalize_history
from core.ingest.pacing import Pacer
from core.ingest.settings import IngestSettings
from core.ingest.yahoo import RecordedSource, load_recording, recording_path
from core.integrity import quarantine
from core.safety import audit, run_lock
from core.store.bars import BAR_SCHEMA, read_bar_file, write_bar_file
from core.store.workspace import Workspace
from tui.cli import main

RECORDINGS = REPO / "tests" / "fixtures" / "yahoo"
TODAY = date(2025, 12, 15)
DEC = [datetime(2025, 12, d) for d in (1, 2, 3)]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """In this process, Yahoo itself is never asked: a test that forgot its fake fails."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("a test reached for the real Yahoo Finance")

    monkeypatch.setattr(yahoo.YFinanceSource, "history", refuse)


def pacer() -> Pacer:
    return Pacer(IngestSettings(), FakeClock())


def run_fetch(ws_root: Path, tickers, interval="1d", source=None, **kw):
    ws = Workspace.open(ws_root)
    plan = plan_fetch(
        ws, tickers, interval, start=kw.pop("start", date(2025, 12, 1)),
        end=kw.pop("end", date(2025, 12, 12)), today=TODAY,
    )  # fmt: skip
    return fetch(ws, plan, source or RecordedSource(RECORDINGS), pacer(), today=TODAY, **kw)


def frame(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


# --- normalising ---------------------------------------------------------------------------


def test_normalise_as_the_collector_does_exchange_local_naive_dates_and_its_dtypes():
    recorded = load_recording(recording_path(RECORDINGS, "AAPL", "1h"))
    assert recorded.index.name == "Datetime" and str(recorded.index.tz) == "America/New_York"
    table = normalize_history(recorded, "AAPL")
    assert table.schema.equals(BAR_SCHEMA)
    first = table.slice(0, 1).to_pylist()[0]
    # 09:30 New York stays 09:30, without a zone (not 14:30 UTC)
    assert first["date"] == datetime(2025, 12, 1, 9, 30)
    assert first["stock"] == "AAPL" and first["sequence"] is None
    assert first["open"] == recorded["Open"].iloc[0]
    assert table.num_rows == len(recorded) == 21  # 3 sessions x 7 hourly bars
    # Dividends and Stock Splits are dropped, as the collector drops them
    assert "dividends" not in table.column_names
    # duplicated bar times: one kept (the last), sorted by date
    doubled = pd.concat([recorded.iloc[:2], recorded.iloc[:1].assign(Open=1.0)])
    assert normalize_history(doubled, "AAPL")["open"].to_pylist() == [1.0, recorded["Open"].iloc[1]]
    assert normalize_history(pd.DataFrame(), "AAPL").num_rows == 0


def test_recorded_source_serves_windows_as_yahoo_does():
    source = RecordedSource(RECORDINGS)
    got = source.history("AAPL", "1d", date(2025, 12, 3), date(2025, 12, 5))
    assert [d.day for d in got.index] == [3, 4]  # end exclusive
    assert got.index.name == "Date" and list(got.columns)[-2:] == ["Dividends", "Stock Splits"]
    assert source.history("NOPE", "1d", date(2025, 12, 1), date(2025, 12, 5)).empty


# --- where it is written -------------------------------------------------------------------


def test_fetch_into_the_collectors_legacy_home(tmp_path):
    root = make_workspace(tmp_path / "ws", {"1d": {"AAPL": DEC}})
    result = run_fetch(root, ["AAPL"], start=date(2025, 12, 4))
    path = root / "stocks_1d" / "AAPL.parquet"
    bars = frame(path)
    assert len(bars) == 3 + 7 and bars["date"].is_monotonic_increasing
    assert str(bars["stock"].dtype) == "string" and str(bars["volume"].dtype) == "Int64"
    assert pq.read_metadata(path).row_group(0).column(0).compression == "GZIP"
    assert result.run.added == 7 and result.run.units[0].merge.mode == "legacy"
    assert not (root / "data").exists()


@pytest.mark.parametrize("home", ["data", "data/legacy"])
def test_fetch_into_a_legacy_home_a_storage_block_names(tmp_path, home):
    """A block without market and source sends the collector to <root>/stocks_<iv>/."""
    block = {"mode": "partitioned", "root": home}
    entry = {
        "ticker": "AAPL", "status": "active", "added_date": "2025-01-02",
        "intervals": {"1d": {"status": "active", "storage": block}},
    }  # fmt: skip
    root = make_workspace(tmp_path / "ws", entries={"AAPL": entry})
    write_bar_file(root / home / "stocks_1d" / "AAPL.parquet", bar_table("AAPL", DEC))
    run_fetch(root, ["AAPL"])
    assert len(frame(root / home / "stocks_1d" / "AAPL.parquet")) == 10
    assert not (root / "stocks_1d").exists()


def test_fetch_into_partitions_one_file_per_month(tmp_path):
    root = make_workspace(
        tmp_path / "ws", {"1d": {"AAPL": [datetime(2025, 11, 28)]}}, partitioned=True
    )
    result = run_fetch(root, ["AAPL", "BRK-B"], start=date(2025, 11, 24))
    ticker_dir = root / "data/us/yahoo/stocks_1d/ticker=BRK-B"
    files = sorted(p.relative_to(ticker_dir).as_posix() for p in ticker_dir.rglob("*.parquet"))
    assert files == ["year=2025/month=11/data.parquet", "year=2025/month=12/data.parquet"]
    assert {d.month for d in frame(ticker_dir / files[0])["date"]} == {11}
    assert result.run.added == 10 + 4 + 10 - 0  # AAPL: 10 in December; BRK-B: 4 + 10
    nov = frame(root / "data/us/yahoo/stocks_1d/ticker=AAPL/year=2025/month=11/data.parquet")
    assert nov["date"].tolist() == [pd.Timestamp("2025-11-28")]  # stored bar kept, 1 row
    tickers = json.loads((root / "tickers.json").read_text())
    # the block the collector writes once it wrote partitions for a ticker without one
    assert tickers["BRK-B"]["intervals"]["1d"]["storage"] == {
        "mode": "partitioned", "market": "us", "source": "yahoo", "dataset": "stocks",
    }  # fmt: skip


def test_a_missing_collector_file_with_bars_stranded_elsewhere_is_refused(tmp_path):
    root = make_workspace(tmp_path / "ws")
    stranded = root / "data/legacy/stocks_1d/AAPL.parquet"
    write_bar_file(stranded, bar_table("AAPL", DEC))
    result = run_fetch(root, ["AAPL"])
    assert "where it never reads" in result.run.units[0].error
    assert not (root / "stocks_1d").exists()


# --- merging -------------------------------------------------------------------------------


def test_identical_rows_kept_new_added_differing_reported_and_never_overwritten(tmp_path):
    root = make_workspace(tmp_path / "ws")
    source = FakeYahoo()
    run_fetch(root, ["AAPL"], source=source, end=date(2025, 12, 5))
    path = root / "stocks_1d" / "AAPL.parquet"
    before = path.read_bytes()
    again = run_fetch(root, ["AAPL"], source=source, end=date(2025, 12, 5))
    assert again.run.units[0].merge.identical == 5 and again.run.added == 0
    assert path.read_bytes() == before  # nothing changed: not even rewritten

    source.adjust[("AAPL", date(2025, 12, 3))] = 0.5
    result = run_fetch(root, ["AAPL"], source=source, end=date(2025, 12, 9))
    merge = result.run.units[0].merge
    assert (merge.added, merge.identical, merge.differing) == (2, 4, 1)
    conflict = merge.conflicts[0]
    assert (conflict.date, conflict.column) == (datetime(2025, 12, 3), "close")
    assert conflict.incoming == pytest.approx(conflict.stored + 0.5)
    stored = frame(path).set_index("date")
    assert stored.loc["2025-12-03", "close"] == conflict.stored  # kept
    assert len(stored) == 7


def test_overwrite_quarantines_the_old_file_first_and_keeps_extra_columns(tmp_path):
    root = make_workspace(tmp_path / "ws")
    table = bar_table("AAPL", DEC).append_column("adjclose", pa.array([1.0, 2.0, 3.0]))
    path = root / "stocks_1d" / "AAPL.parquet"
    write_bar_file(path, table)
    old_bytes = path.read_bytes()
    source = FakeYahoo()
    result = run_fetch(root, ["AAPL"], source=source, end=date(2025, 12, 4), overwrite=True)
    unit = result.run.units[0]
    assert unit.merge.differing == 3 and unit.merge.overwritten == 3 and len(unit.quarantined) == 1
    entry = quarantine.find(root, unit.quarantined[0])
    assert entry.stored_path.read_bytes() == old_bytes
    assert entry.original_path == "stocks_1d/AAPL.parquet"
    stored = frame(path)
    assert stored["adjclose"].tolist()[:3] == [1.0, 2.0, 3.0]  # an overwritten row keeps its own
    assert pd.isna(stored["adjclose"].iloc[3])  # a new row: null
    expected = normalize_history(
        source.history("AAPL", "1d", date(2025, 12, 1), date(2025, 12, 5)), "AAPL"
    )
    assert stored["close"].tolist() == expected["close"].to_pylist()
    records = [r for r in audit.read(root) if r["action"] == "ingest.fetch"]
    assert (
        records[-1]["result"] == "ok" and records[-1]["units"][0]["quarantined"] == unit.quarantined
    )


def test_dry_run_downloads_says_what_would_change_and_writes_nothing(tmp_path):
    root = make_workspace(tmp_path / "ws", {"1d": {"AAPL": DEC}})
    before = tree_digest(root)
    result = run_fetch(root, ["AAPL", "MSFT"], dry_run=True)
    assert result.run.dry_run and result.run.added == 7 + 0
    assert result.run.units[0].merge.differing == 3
    assert tree_digest(root) == before
    assert not (root / ".run_lock").exists()


# --- tickers.json --------------------------------------------------------------------------


def test_tickers_json_updated_as_the_collector_does_unknown_keys_kept(tmp_path):
    entry = {
        "ticker": "AAPL", "added_date": "2020-01-02", "status": "active", "mystery": [1, 2],
        "last_checked": "2025-12-01",
        "intervals": {"1d": {"status": "active", "last_data_date": "2025-12-10", "x": 1}},
    }  # fmt: skip
    root = make_workspace(tmp_path / "ws", entries={"AAPL": entry, "ZZZ": {"odd": True}})
    run_fetch(root, ["AAPL", "BRK-B"], start=date(2025, 12, 1), end=date(2025, 12, 5))
    tickers = json.loads((root / "tickers.json").read_text())
    aapl = tickers["AAPL"]
    assert aapl["mystery"] == [1, 2] and aapl["intervals"]["1d"]["x"] == 1
    assert tickers["ZZZ"] == {"odd": True}
    # older bars never pull last_data_date back; the check is recorded
    assert aapl["intervals"]["1d"]["last_data_date"] == "2025-12-10"
    assert aapl["last_checked"] == TODAY.isoformat()
    # a new ticker: the collector's entry, then its interval block
    brk = tickers["BRK-B"]
    assert list(brk) == ["ticker", "added_date", "status", "last_checked", "intervals"]
    assert brk["intervals"]["1d"] == {
        "status": "active", "last_found_date": TODAY.isoformat(),
        "last_checked": TODAY.isoformat(), "last_data_date": "2025-12-05",
    }  # fmt: skip


def test_without_start_a_ticker_is_fetched_from_its_last_data_date(tmp_path):
    entry = {"ticker": "AAPL", "intervals": {"1d": {"last_data_date": "2025-12-08"}}}
    root = make_workspace(tmp_path / "ws", entries={"AAPL": entry})
    ws = Workspace.open(root)
    plan = plan_fetch(ws, ["AAPL", "MSFT"], "1d", end=date(2025, 12, 12), today=TODAY)
    assert [(r.start, r.end) for u in plan.units for r in u.requests] == [
        (date(2025, 12, 8), date(2025, 12, 13)),
        (date(1970, 1, 2), date(2025, 12, 13)),
    ]
    one_minute = plan_fetch(ws, ["AAPL"], "1m", start=date(2025, 10, 1), today=TODAY)
    assert "beyond what Yahoo serves" in one_minute.notes[0]
    windows = [(r.start, r.end) for r in one_minute.units[0].requests]
    assert windows[0][0] == date(2025, 11, 15) and all((b - a).days <= 7 for a, b in windows)
    with pytest.raises(ParqctlError, match="after"):
        plan_fetch(ws, ["AAPL"], "1d", start=date(2025, 12, 9), end=date(2025, 12, 1))


# --- refusals ------------------------------------------------------------------------------


def test_lock_held_by_the_collector_writes_nothing(tmp_path):
    root = make_workspace(tmp_path / "ws")
    before = tree_digest(root)
    with run_lock.hold(root, "someone else"):
        other = Workspace.open(root)
        plan = plan_fetch(other, ["AAPL"], "1d", start=date(2025, 12, 1), today=TODAY)
        # another process: parqctl refuses a lock held by a live process
        lock = json.loads((root / ".run_lock/owner.json").read_text())
        lock.update(pid=1, token="theirs")
        (root / ".run_lock/owner.json").write_text(json.dumps(lock))
        with pytest.raises(LockHeldError):
            fetch(other, plan, FakeYahoo(), pacer(), today=TODAY)
        os.remove(root / ".run_lock/owner.json")
        os.rmdir(root / ".run_lock")
    assert not (root / "stocks_1d").exists()
    assert {k for k in tree_digest(root) if not k.startswith(".parqctl/audit")} == set(before)


def test_refused_before_downloading_at_the_critical_watermark(tmp_path):
    root = make_workspace(tmp_path / "ws")
    fast_config(root, "[watermarks]\nwarn = 1\ncritical = 1\nblock = 1\n")
    source = FakeYahoo()
    with pytest.raises(DiskSpaceError, match="nothing was downloaded"):
        run_fetch(root, ["AAPL"], source=source)
    assert source.calls == []


# --- the CLI -------------------------------------------------------------------------------


def test_cli_fetch_reports_and_exits_1_when_stored_values_differ(tmp_path, monkeypatch, capsys):
    root = make_workspace(tmp_path / "ws", {"1d": {"AAPL": DEC}})
    monkeypatch.setattr(yahoo, "default_source", lambda: RecordedSource(RECORDINGS))
    argv = ["-w", str(root), "fetch", "-t", "AAPL", "-i", "1d", "--start", "2025-12-01"]
    assert main([*argv, "--end", "2025-12-12"]) == 1
    out = capsys.readouterr().out
    assert "7 new, 0 identical, 3 differing (stored values kept; --overwrite)" in out
    assert "differs  2025-12-01 00:00 open: stored 100.0, Yahoo 497.52" in out
    assert main([*argv, "--end", "2025-12-12", "--json"]) == 1
    answer = json.loads(capsys.readouterr().out)
    assert answer["units"][0]["identical"] == 7 and answer["rows_added"] == 0


def test_no_network_one_line_exit_5_and_the_workspace_byte_identical(tmp_path):
    """The real yfinance behind the seam, with every connection refused by a dead proxy."""
    root = make_workspace(tmp_path / "ws", {"1d": {"AAPL": DEC}})
    run_cli("-w", str(root), "availability")  # the index is current: nothing to refresh
    before = {p: (d, (root / p).stat().st_mtime_ns) for p, d in tree_digest(root).items()}
    dead = "http://127.0.0.1:9"
    env = {k: dead for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")}
    env.update(NO_PROXY="", no_proxy="", XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = run_cli(
        "-w", str(root), "fetch", "-t", "AAPL", "-i", "1d", "--start", "2025-12-01", env=env
    )
    assert result.returncode == 5, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("parqctl: error: cannot reach Yahoo Finance (")
    assert lines[0].endswith("); nothing was changed")
    after = {p: (d, (root / p).stat().st_mtime_ns) for p, d in tree_digest(root).items()}
    assert after == before


def test_recorded_unreachable_from_the_environment(tmp_path):
    root = make_workspace(tmp_path / "ws")
    recordings = tmp_path / "rec"
    recordings.mkdir()
    (recordings / "unreachable.txt").write_text("recorded outage\n")
    before = tree_digest(root)
    env = {"PARQCTL_YAHOO_RECORDINGS": str(recordings)}
    result = run_cli("-w", str(root), "fetch", "-t", "AAPL", "-i", "1d", env=env)
    assert result.returncode == 5
    assert result.stderr == (
        "parqctl: error: cannot reach Yahoo Finance (recorded outage); nothing was changed\n"
    )
    assert tree_digest(root) == before


def test_fetched_file_reads_back_as_the_collector_wrote_it(tmp_path):
    root = make_workspace(tmp_path / "ws")
    run_fetch(root, ["AAPL"])
    table = read_bar_file(root / "stocks_1d" / "AAPL.parquet")
    assert table.schema.remove_metadata().equals(BAR_SCHEMA)
    assert b"pandas" in table.schema.metadata


def test_the_ingest_engine_does_not_load_textual():
    import subprocess
    import sys

    code = (
        "import importlib, pkgutil, sys, core.ingest\n"
        "for m in pkgutil.iter_modules(core.ingest.__path__):\n"
        "    importlib.import_module('core.ingest.' + m.name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "[]"
