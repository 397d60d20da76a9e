from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from conftest import bar_table, ticker_entry, write_bars, write_tickers

from core.errors import DataError, UnsafeTickerError
from core.safety.atomic import write_json
from core.store.layout import Venue
from core.store.metadata import StorageBlock
from core.store.routing import locate, read_ticker_bars, read_ticker_frame
from core.store.workspace import Workspace

LEGACY_DAYS = [datetime(2025, 1, 2), datetime(2025, 1, 3), datetime(2025, 2, 3)]
PART = "data/us/yahoo/stocks_1d/ticker={t}/year=2025/month={m:02d}/data.parquet"


def _partitioned(name: str) -> dict:
    block = StorageBlock.partitioned_raw(Venue("us", "yahoo"), "2025-12-05T00:00:00Z")
    return ticker_entry(name, {"1d": {"status": "active", "storage": block}})


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """AAPL routed to partitions (Jan and Feb files), MSFT legacy, both with legacy files
    where the collector keeps them; the global switch off."""
    for t in ("AAPL", "MSFT"):
        write_bars(tmp_path / f"stocks_1d/{t}.parquet", t, LEGACY_DAYS)
    write_json(
        tmp_path / "storage_config.json", {"partitioned": False, "markets": {}, "sources": {}}
    )
    write_bars(tmp_path / PART.format(t="AAPL", m=1), "AAPL", LEGACY_DAYS[:2])
    write_bars(
        tmp_path / PART.format(t="AAPL", m=2), "AAPL", [datetime(2025, 2, 3), datetime(2025, 2, 4)]
    )
    write_tickers(tmp_path, {"AAPL": _partitioned("AAPL"), "MSFT": ticker_entry("MSFT")})
    return tmp_path


def test_storage_block_routes_to_partitions(mixed: Path):
    ws = Workspace.open(mixed)
    location = locate(ws, "AAPL", "1d")
    assert (location.mode, location.decided_by) == ("partitioned", "storage block")
    bars = read_ticker_bars(ws, "AAPL", "1d")
    assert bars.source == "partitioned"
    assert len(bars.files) == 2
    assert bars.table.num_rows == 4  # the partitions, not the 3 legacy rows
    assert bars.table.column("date").to_pylist()[-1] == datetime(2025, 2, 4)


def test_no_storage_block_reads_legacy_even_when_partitions_exist(mixed: Path):
    write_bars(mixed / PART.format(t="MSFT", m=1), "MSFT", LEGACY_DAYS[:1])
    ws = Workspace.open(mixed)
    assert locate(ws, "MSFT", "1d").mode == "legacy"
    bars = read_ticker_bars(ws, "MSFT", "1d")
    assert (bars.source, bars.table.num_rows) == ("legacy", 3)


def test_falls_back_to_the_other_layout(mixed: Path):
    write_bars(mixed / PART.format(t="NVDA", m=1), "NVDA", LEGACY_DAYS[:1])
    ws = Workspace.open(mixed)
    bars = read_ticker_bars(ws, "NVDA", "1d")  # not in tickers.json, no legacy file
    assert (bars.source, bars.table.num_rows) == ("partitioned", 1)
    (mixed / "data/us/yahoo/stocks_1d/ticker=AAPL").rename(mixed / "moved")
    assert read_ticker_bars(ws, "AAPL", "1d").source == "legacy"


def test_global_switch_routes_unblocked_tickers(mixed: Path):
    write_json(mixed / "storage_config.json", {"partitioned": True, "markets": {}, "sources": {}})
    location = locate(Workspace.open(mixed), "MSFT", "1d")
    assert (location.mode, location.decided_by) == ("partitioned", "storage_config.json")


def test_without_storage_config_the_collector_partitions_by_default(mixed: Path):
    (mixed / "storage_config.json").unlink()
    location = locate(Workspace.open(mixed), "MSFT", "1d")
    assert (location.mode, location.decided_by) == (
        "partitioned",
        "default (no storage_config.json)",
    )


def test_the_collector_ignores_source_and_market_switches(mixed: Path):
    write_json(
        mixed / "storage_config.json",
        {"partitioned": False, "markets": {"us": True}, "sources": {"us/yahoo": True}},
    )
    assert locate(Workspace.open(mixed), "MSFT", "1d").mode == "legacy"


def test_a_partitioned_block_without_a_venue_reads_the_legacy_file_below_its_root(mixed: Path):
    write_bars(mixed / "data/stocks_1d/NVDA.parquet", "NVDA", LEGACY_DAYS[:2])
    entry = ticker_entry("NVDA", {"1d": {"storage": {"mode": "partitioned", "root": "data"}}})
    write_tickers(mixed, {"NVDA": entry, "MSFT": ticker_entry("MSFT")})
    ws = Workspace.open(mixed)
    location = locate(ws, "NVDA", "1d")
    assert location.mode == "legacy"
    assert location.legacy_path == mixed / "data/stocks_1d/NVDA.parquet"
    assert location.stranded == ()
    assert read_ticker_bars(ws, "NVDA", "1d").source == "legacy"


def test_legacy_files_in_other_homes_are_stranded(mixed: Path):
    write_bars(mixed / "data/legacy/stocks_1d/NVDA.parquet", "NVDA", LEGACY_DAYS)
    write_bars(mixed / "data/legacy/stocks_1d/MSFT.parquet", "MSFT", LEGACY_DAYS[:1])
    ws = Workspace.open(mixed)
    nvda = locate(ws, "NVDA", "1d")
    assert nvda.legacy_path == mixed / "stocks_1d/NVDA.parquet"
    assert nvda.stranded == (mixed / "data/legacy/stocks_1d/NVDA.parquet",)
    bars = read_ticker_bars(ws, "NVDA", "1d")
    assert (bars.source, bars.table.num_rows) == ("stranded legacy", 3)
    # the collector's own file wins over a stranded one
    msft = read_ticker_bars(ws, "MSFT", "1d")
    assert (msft.source, msft.table.num_rows) == ("legacy", 3)


def test_frame_and_errors(mixed: Path):
    ws = Workspace.open(mixed)
    frame = read_ticker_frame(ws, "MSFT", "1d")
    assert frame.height == 3 and frame.columns[:2] == ["stock", "date"]
    with pytest.raises(DataError, match="no 1d bars for ZZZ"):
        read_ticker_frame(ws, "ZZZ", "1d")
    with pytest.raises(UnsafeTickerError):
        locate(ws, "../AAPL", "1d")


def test_unreadable_file_is_a_data_error(mixed: Path):
    path = mixed / "stocks_1d/MSFT.parquet"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="unreadable bar file") as err:
        read_ticker_bars(Workspace.open(mixed), "MSFT", "1d")
    assert "MSFT.parquet" in err.value.message


def test_files_that_do_not_fit_the_format_are_one_data_error(mixed: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"stock": ["MSFT"], "close": [1.0]}), mixed / "stocks_1d/MSFT.parquet")
    with pytest.raises(DataError, match="do not fit the format") as err:
        read_ticker_bars(Workspace.open(mixed), "MSFT", "1d")
    assert "MSFT.parquet" in err.value.message

    aware = bar_table("AAPL", [datetime(2025, 3, 3)]).set_column(
        1, "date", pa.array([datetime(2025, 3, 3)], pa.timestamp("ns", tz="UTC"))
    )
    month_file = mixed / PART.format(t="AAPL", m=3)
    month_file.parent.mkdir(parents=True)
    pq.write_table(aware, month_file)
    with pytest.raises(DataError, match="ticker=AAPL"):
        read_ticker_bars(Workspace.open(mixed), "AAPL", "1d")
