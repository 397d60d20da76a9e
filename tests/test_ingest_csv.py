"""``parqctl import-csv``: both shapes read, every row checked before anything is written,
problems as FILE:LINE: column: what, a new ticker registered, the four conflict policies."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from conftest import bar_table, tree_digest
from fixtures.ingest_fakes import make_workspace, session_times

from core.ingest.csv_import import import_csv
from core.integrity import quarantine
from core.safety import audit
from core.store.bars import write_bar_file
from core.store.workspace import Workspace
from tui.cli import main

DEC = [datetime(2025, 12, d) for d in (1, 2, 3)]
YAHOO = """Date,Open,High,Low,Close,Adj Close,Volume
2025-12-01,100,102,99,101,50.5,1000
2025-12-02,101,103,100,102,51,2000
2025-12-03,102,104,101,103,51.5,3000
"""
PLAIN_1H = """datetime,open,high,low,close,volume
2025-12-01 14:30:00+00:00,10,11,9,10.5,100
2025-12-01T15:30:00Z,10,11,9,10.5,200
2025-12-01 11:30:00-05:00,10,11,9,10.5,300
"""


def write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(root: Path, path: Path, ticker="AAPL", interval="1d", **kw):
    return import_csv(Workspace.open(root), path, ticker, interval, today=date(2025, 12, 15), **kw)


def stored(root: Path, ticker="AAPL", interval="1d") -> pd.DataFrame:
    return pd.read_parquet(root / f"stocks_{interval}" / f"{ticker}.parquet")


# --- good files ----------------------------------------------------------------------------


def test_yahoo_download_adjusted_as_yfinance_does_and_a_new_ticker_registered(tmp_path):
    root = make_workspace(tmp_path / "ws")
    result = run(root, write(tmp_path, YAHOO), ticker="NEW")
    assert result.ok and result.written and result.registered
    assert result.parsed.shape == "yahoo" and result.parsed.adjusted
    bars = stored(root, "NEW")
    assert bars["date"].tolist() == [pd.Timestamp(d) for d in DEC]
    first = bars.iloc[0]
    assert (first["open"], first["high"], first["low"], first["close"]) == (50, 51, 49.5, 50.5)
    assert bars["volume"].tolist() == [1000, 2000, 3000]
    assert str(bars["stock"].dtype) == "string" and bars["sequence"].isna().all()
    entry = json.loads((root / "tickers.json").read_text())["NEW"]
    assert entry["added_date"] == "2025-12-15" and entry["status"] == "active"
    assert entry["intervals"]["1d"]["last_data_date"] == "2025-12-03"
    # it shows in availability, like any ticker the collector registered
    assert main(["-w", str(root), "availability", "-t", "NEW", "--today", "2025-12-15"]) == 0
    raw = run(root, write(tmp_path, YAHOO), ticker="RAW", adjust=False)
    assert stored(root, "RAW")["close"].tolist() == [101, 102, 103]
    assert not raw.parsed.adjusted


def test_plain_intraday_times_with_offsets_stored_as_new_york_wall_time(tmp_path):
    root = make_workspace(tmp_path / "ws", intervals=("1h",))
    result = run(root, write(tmp_path, PLAIN_1H), interval="1h")
    assert result.ok, [p.text("f") for p in result.parsed.problems]
    times = stored(root, interval="1h")["date"].dt.strftime("%H:%M").tolist()
    assert times == ["09:30", "10:30", "11:30"]


def test_naive_times_are_in_the_zone_given(tmp_path):
    root = make_workspace(tmp_path / "ws", intervals=("1h",))
    text = "Date,Open,High,Low,Close,Volume\n2025-12-01 14:30:00,10,11,9,10.5,100\n"
    assert run(root, write(tmp_path, text), interval="1h", tz="UTC").ok
    assert stored(root, interval="1h")["date"].tolist() == [pd.Timestamp("2025-12-01 09:30")]


def test_header_names_any_case_and_order_other_columns_ignored(tmp_path):
    root = make_workspace(tmp_path / "ws")
    text = "VOLUME,close,Note,LOW,high,Open,DATE\n5,10.5,x,9,11,10,2025-12-01\n"
    result = run(root, write(tmp_path, text))
    assert result.ok and result.parsed.ignored_columns == ["Note"]
    assert stored(root)["close"].tolist() == [10.5]


def test_partitioned_ticker_gets_month_files(tmp_path):
    root = make_workspace(tmp_path / "ws", partitioned=True)
    text = "date,open,high,low,close,volume\n2025-11-28,1,2,1,2,5\n2025-12-01,1,2,1,2,5\n"
    assert run(root, write(tmp_path, text)).written
    ticker = root / "data/us/yahoo/stocks_1d/ticker=AAPL"
    assert sorted(p.parent.name for p in ticker.rglob("data.parquet")) == ["month=11", "month=12"]


# --- bad files -----------------------------------------------------------------------------

BAD = """date,open,high,low,close,volume
2025-12-01,10,11,9,10.5,100
2025-12-01,10,11,9,10.5,100
12/02/2025,10,11,9,10.5,100
2025-12-03,0,11,9,10.5,100
2025-12-04,-1,11,9,10.5,100
2025-12-05,ten,11,9,10.5,100
2025-12-08,10,11,10.2,10.5,100
2025-12-09,10,11,9,11.5,100
2025-12-10,10,11,9,10.5,-3
2025-12-11,10,11,9,10.5,1.5
2025-12-13,10,11,9,10.5,100
2025-12-25,10,11,9,10.5,100
2025-12-12,10,11,9
2025-12-15 09:30:00,10,11,9,10.5,100
"""
EXPECTED = [
    "3: date: 2025-12-01 00:00 is a duplicate of line 2",
    "4: date: '12/02/2025' is not a date like 2025-01-02 or 2025-01-02 09:30:00-05:00",
    "5: open: 0 is not a price > 0",
    "6: open: -1 is not a price > 0",
    "7: open: 'ten' is not a number",
    "8: low: low 10.2 is above open 10",
    "9: high: high 11 is below close 11.5",
    "10: volume: -3 is not a whole number >= 0",
    "11: volume: 1.5 is not a whole number >= 0",
    "12: date: 2025-12-13 (Saturday) is not a trading session of XNYS",
    "13: date: 2025-12-25 (Thursday) is not a trading session of XNYS",
    "14: row: 4 fields, the header has 6",
    "15: date: '2025-12-15 09:30:00' is at 09:30 exchange time: a 1d bar starts at midnight",
]


def test_every_kind_of_problem_reported_with_its_line_and_nothing_written(tmp_path):
    root = make_workspace(tmp_path / "ws", {"1d": {"AAPL": DEC}})
    path = write(tmp_path, BAD)
    before = tree_digest(root)
    result = run(root, path, on_conflict="overwrite")
    assert [p.text("f")[2:] for p in result.parsed.problems] == EXPECTED
    assert not result.ok and not result.written and result.merge is None
    assert tree_digest(root) == before


def test_intraday_problems(tmp_path):
    root = make_workspace(tmp_path / "ws", intervals=("1h",))
    text = (
        "date,open,high,low,close,volume\n"
        "2025-12-01,10,11,9,10.5,1\n"
        "2025-12-01 16:30:00,10,11,9,10.5,1\n"
        "2025-11-28 13:30:00,10,11,9,10.5,1\n"  # the day after Thanksgiving closes at 13:00
        "2025-12-01 09:30:00,10,11,9,10.5,1\n"
    )
    result = run(root, write(tmp_path, text), interval="1h")
    assert [p.text("f")[2:] for p in result.parsed.problems] == [
        "2: date: '2025-12-01' has no time: a 1h bar needs one",
        "3: date: 16:30 is outside the session of 2025-12-01 (09:30-16:00 exchange time)",
        "4: date: 13:30 is outside the session of 2025-11-28 (09:30-13:00 exchange time)",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "1: header: the file is empty: expected a header such as date,open,high,low,close,volume"),
        ("date,open,high,low,close\n2025-12-01,1,2,1,2\n", "1: header: missing column volume (found: date, open, high, low, close)"),
        ("date,open,high,low,close,volume\n", "1: header: no rows after the header"),
    ],
)  # fmt: skip
def test_files_without_rows_or_columns(tmp_path, text, problem):
    root = make_workspace(tmp_path / "ws")
    result = run(root, write(tmp_path, text))
    assert [p.text("f")[2:] for p in result.parsed.problems] == [problem]


def test_cli_reports_file_line_column_up_to_a_limit_and_exits_2(tmp_path, capsys):
    root = make_workspace(tmp_path / "ws")
    days = session_times("1d", "2025-11-03", "2025-12-08")  # 25 sessions
    rows = "".join(f"{d:%Y-%m-%d},10,11,9,10.5,-1\n" for d in days)
    path = write(tmp_path, "date,open,high,low,close,volume\n" + rows)
    before = tree_digest(root)
    argv = ["-w", str(root), "import-csv", str(path), "-t", "AAPL", "-i", "1d"]
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == [
        f"{path}:2: volume: -1 is not a whole number >= 0",
        f"{path}:3: volume: -1 is not a whole number >= 0",
    ]
    assert len(err) == 20 + 2 and len(days) == 25
    assert err[-2] == f"{path}: ... and 5 more problems"
    assert err[-1] == (
        f"parqctl: error: {path}: 25 problems in 25 rows; nothing was written: "
        "fix the file and import it again"
    )
    assert tree_digest(root) == before


# --- conflicts -----------------------------------------------------------------------------


def overlapping(tmp_path: Path, close3: float = 103.0) -> Path:
    """Dec 1-3 stored (bar_table's values: close 100, 101, 102), Dec 2-4 in the file."""
    return write(
        tmp_path,
        "date,open,high,low,close,volume\n"
        "2025-12-02,101,102,100,101,1001\n"  # identical to what is stored
        f"2025-12-03,102,103,101,{close3},1002\n"  # stored close 102
        "2025-12-04,103,104,102,103,1003\n",  # new
    )


def test_refuse_by_default_says_how_many_overlap_and_differ(tmp_path, capsys):
    root = make_workspace(tmp_path / "ws", {"1d": {"AAPL": DEC}})
    before = tree_digest(root)
    path = overlapping(tmp_path)
    assert main(["-w", str(root), "import-csv", str(path), "-t", "AAPL", "-i", "1d"]) == 2
    err = capsys.readouterr().err
    assert "refused: 2 rows overlap stored bars (1 of them differ); nothing was written" in err
    assert "differs  2025-12-03 00:00 close: stored 102.0, file 103.0" in err
    assert {k: v for k, v in tree_digest(root).items() if "audit" not in k} == before
    record = [r for r in audit.read(root) if r["action"] == "ingest.import_csv"][-1]
    assert record["result"].startswith("refused: 2 rows overlap")


def test_skip_keeps_stored_rows_and_adds_the_rest(tmp_path):
    root = make_workspace(tmp_path / "ws", {"1d": {"AAPL": DEC}})
    result = run(root, overlapping(tmp_path), on_conflict="skip")
    assert result.ok and (result.merge.added, result.merge.differing) == (1, 1)
    assert stored(root)["close"].tolist() == [100, 101, 102, 103]


def test_merge_adds_new_rows_only_when_nothing_differs(tmp_path):
    root = make_workspace(tmp_path / "ws", {"1d": {"AAPL": DEC}})
    refused = run(root, overlapping(tmp_path), on_conflict="merge")
    assert refused.refused.startswith("1 rows differ from stored bars") and not refused.written
    assert len(stored(root)) == 3
    agreeing = run(root, overlapping(tmp_path, close3=102.0), on_conflict="merge")
    assert agreeing.ok and agreeing.merge.added == 1 and agreeing.merge.identical == 2
    assert len(stored(root)) == 4


def test_overwrite_replaces_differing_rows_after_quarantining_the_old_file(tmp_path):
    root = make_workspace(tmp_path / "ws", {"1d": {"AAPL": DEC}})
    old = (root / "stocks_1d/AAPL.parquet").read_bytes()
    result = run(root, overlapping(tmp_path), on_conflict="overwrite")
    assert result.ok and result.merge.overwritten == 1 and len(result.quarantined) == 1
    assert stored(root)["close"].tolist() == [100, 101, 103, 103]
    assert quarantine.find(root, result.quarantined[0]).stored_path.read_bytes() == old


def test_the_same_file_twice_is_all_identical(tmp_path):
    root = make_workspace(tmp_path / "ws")
    write_bar_file(root / "stocks_1d/AAPL.parquet", bar_table("AAPL", DEC))
    path = write(tmp_path, YAHOO)
    run(root, path, on_conflict="overwrite")
    again = run(root, path)  # refuse: everything overlaps, nothing differs
    assert again.refused.startswith("3 rows overlap stored bars (0 of them differ)")
    assert run(root, path, on_conflict="merge").ok
