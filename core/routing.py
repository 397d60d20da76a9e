"""Where a (ticker, interval) lives, decided as the collector decides, and reading its bars."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from core.bars import concat_bar_tables, read_bar_file
from core.errors import DataError
from core.layout import (
    PARTITION_FILE,
    Venue,
    legacy_file,
    partition_dataset_dir,
    ticker_partition_dir,
    validate_interval,
    validate_ticker,
)
from core.workspace import Workspace

# The collector writes partitions for tickers without a storage block here when the
# storage_config switch is on.
DEFAULT_VENUE = Venue("us", "yahoo")


@dataclass(frozen=True)
class BarLocation:
    ticker: str
    interval: str
    mode: str  # "partitioned" or "legacy": where the collector reads and writes
    decided_by: str  # "storage block", "storage_config.json" or "default"
    partition_dir: Path  # the ticker's ticker=<T> directory, present or not
    legacy_path: Path | None  # the legacy file, present or not; None without a legacy dir

    def partition_files(self) -> list[Path]:
        if not self.partition_dir.is_dir():
            return []
        return sorted(self.partition_dir.glob(f"year=*/month=*/{PARTITION_FILE}"))


@dataclass(frozen=True)
class TickerBars:
    table: pa.Table
    source: str  # "partitioned", "legacy" or "none"
    files: list[Path]


def locate(ws: Workspace, ticker: str, interval: str) -> BarLocation:
    validate_ticker(ticker)
    validate_interval(interval)
    entry = ws.tickers.get(ticker)
    block = entry.storage(interval) if entry else None
    legacy = ws.legacy_dataset(interval)
    legacy_path = legacy_file(legacy.path, ticker) if legacy else None

    if block is not None and block.mode == "partitioned" and block.venue is not None:
        dataset_dir = partition_dataset_dir(
            ws.root, block.venue, interval, block.root, block.dataset
        )
        mode, decided_by = "partitioned", "storage block"
    else:
        dataset_dir = partition_dataset_dir(ws.root, DEFAULT_VENUE, interval)
        if block is not None:
            mode, decided_by = "legacy", "storage block"
        elif ws.storage_config.is_partitioned(DEFAULT_VENUE):
            mode, decided_by = "partitioned", "storage_config.json"
        else:
            mode, decided_by = "legacy", "default"
    return BarLocation(
        ticker, interval, mode, decided_by, ticker_partition_dir(dataset_dir, ticker), legacy_path
    )


def read_ticker_bars(ws: Workspace, ticker: str, interval: str) -> TickerBars:
    """The ticker's bars from where the collector routes them, else from the other layout.

    The routed layout wins even when the other one also has files: during a migration the
    partition tree is incomplete until activation, and after it the legacy file is stale.
    """
    location = locate(ws, ticker, interval)
    partition_files = location.partition_files()
    legacy_files = (
        [location.legacy_path] if location.legacy_path and location.legacy_path.is_file() else []
    )
    order = [("partitioned", partition_files), ("legacy", legacy_files)]
    if location.mode == "legacy":
        order.reverse()
    for source, files in order:
        if files:
            tables = [read_bar_file(f) for f in files]
            try:
                table = concat_bar_tables(tables).sort_by("date")
            except (pa.ArrowException, KeyError) as exc:
                where = files[0] if len(files) == 1 else location.partition_dir
                raise DataError(
                    f"the {interval} bars of {ticker} in {where} do not fit the format: {exc}",
                    "run `parqctl integrity` to see which file is off",
                ) from None
            return TickerBars(table, source, files)
    return TickerBars(concat_bar_tables([]), "none", [])


def read_ticker_frame(ws: Workspace, ticker: str, interval: str):
    """The same bars as a polars DataFrame."""
    import polars as pl

    bars = read_ticker_bars(ws, ticker, interval)
    if bars.source == "none":
        raise DataError(
            f"no {interval} bars for {ticker} in {ws.root}",
            "check the ticker and interval with `parqctl health`",
        )
    return pl.from_arrow(bars.table)
