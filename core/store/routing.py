"""Where a (ticker, interval) lives, decided as the collector decides, and reading its bars.

The collector (``YFParqed._build_storage_request``) routes a ticker's interval to the
partitioned layout when its ``storage`` block says ``mode: partitioned`` with a market and
a source; else, when storage_config.json's global ``partitioned`` switch is on (or the file
is missing: its default), to ``data/us/yahoo``; else to its legacy file at
``<workspace>/stocks_<iv>/<T>.parquet``. A partitioned block without a market or source
sends it to the legacy file below the block's root instead. Legacy files in the other
homes (``data/legacy/``, ``data/``) are never read by it: they are stranded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import DataError
from core.store.layout import (
    DATASET_PREFIX,
    LEGACY_HOMES,
    PARTITION_FILE,
    Venue,
    legacy_file,
    partition_dataset_dir,
    ticker_partition_dir,
    validate_interval,
    validate_ticker,
)
from core.store.workspace import Workspace

if TYPE_CHECKING:  # pyarrow loads (and starts threads) only when bars are read
    import pyarrow as pa

# The collector writes partitions for tickers without a storage block here when the
# storage_config switch is on.
DEFAULT_VENUE = Venue("us", "yahoo")


@dataclass(frozen=True)
class BarLocation:
    ticker: str
    interval: str
    mode: str  # "partitioned" or "legacy": where the collector reads and writes
    decided_by: str  # what in the metadata decided it, for the operator
    partition_dir: Path  # the ticker's ticker=<T> directory, present or not
    legacy_path: Path  # the legacy file the collector reads in legacy mode, present or not
    stranded: tuple[Path, ...] = ()  # its legacy files in homes the collector never reads

    def partition_files(self) -> list[Path]:
        if not self.partition_dir.is_dir():
            return []
        return sorted(self.partition_dir.glob(f"year=*/month=*/{PARTITION_FILE}"))


@dataclass(frozen=True)
class TickerBars:
    table: pa.Table
    source: str  # "partitioned", "legacy", "stranded legacy" or "none"
    files: list[Path]


def storage_block(ws: Workspace, ticker: str, interval: str) -> dict | None:
    entry = ws.tickers.raw.get(ticker)
    iv_entry = entry.get("intervals", {}).get(interval) if isinstance(entry, dict) else None
    block = iv_entry.get("storage") if isinstance(iv_entry, dict) else None
    return block if isinstance(block, dict) else None


def routed_mode(ws: Workspace, ticker: str, interval: str) -> str:
    """``partitioned`` or ``legacy``, from the metadata alone (no file is looked at)."""
    block = storage_block(ws, ticker, interval)
    if block is not None and block.get("mode") == "partitioned":
        market, source = block.get("market"), block.get("source")
        named = isinstance(market, str) and isinstance(source, str) and market and source
        return "partitioned" if named else "legacy"
    return "partitioned" if ws.storage_config.collector_partitions_unblocked else "legacy"


def locate(ws: Workspace, ticker: str, interval: str) -> BarLocation:
    validate_ticker(ticker)
    validate_interval(interval)
    block = storage_block(ws, ticker, interval)
    collector_file = legacy_file(ws.root / f"{DATASET_PREFIX}{interval}", ticker)
    default_dir = partition_dataset_dir(ws.root, DEFAULT_VENUE, interval)
    legacy_path, dataset_dir = collector_file, default_dir
    if block is not None and block.get("mode") == "partitioned":
        market, source = block.get("market"), block.get("source")
        root = str(block.get("root") or "data")
        if isinstance(market, str) and isinstance(source, str) and market and source:
            venue = Venue(market.lower(), source.lower())
            dataset = str(block.get("dataset") or "stocks")
            # Its partitioned reader and writer always work below <workspace>/data, whatever
            # the block's root says (that root only places the venue-less legacy file).
            dataset_dir = partition_dataset_dir(ws.root, venue, interval, "data", dataset)
            mode, decided_by = "partitioned", "storage block"
        else:
            legacy_path = legacy_file(ws.root / root / f"{DATASET_PREFIX}{interval}", ticker)
            mode, decided_by = "legacy", "storage block without market and source"
    elif ws.storage_config.collector_partitions_unblocked:
        mode = "partitioned"
        decided_by = (
            "storage_config.json"
            if ws.storage_config.exists
            else "default (no storage_config.json)"
        )
    else:
        mode, decided_by = "legacy", "storage_config.json"
    stranded = tuple(
        path
        for home in LEGACY_HOMES
        if (path := legacy_file(ws.root / home / f"{DATASET_PREFIX}{interval}", ticker))
        != legacy_path
        and path.is_file()
    )
    return BarLocation(
        ticker,
        interval,
        mode,
        decided_by,
        ticker_partition_dir(dataset_dir, ticker),
        legacy_path,
        stranded,
    )


def read_ticker_bars(ws: Workspace, ticker: str, interval: str) -> TickerBars:
    """The ticker's bars from where the collector routes them, else from the other layout,
    else from a legacy file the collector does not read (``stranded legacy``).

    The routed layout wins even when the other one also has files: during a migration the
    partition tree is incomplete until activation, and after it the legacy file is stale.
    """
    import pyarrow as pa

    from core.store.bars import concat_bar_tables, read_bar_file

    location = locate(ws, ticker, interval)
    partition_files = location.partition_files()
    legacy_files = [location.legacy_path] if location.legacy_path.is_file() else []
    order = [("partitioned", partition_files), ("legacy", legacy_files)]
    if location.mode == "legacy":
        order.reverse()
    order.append(("stranded legacy", list(location.stranded[:1])))
    for source, files in order:
        if files:
            tables = [read_bar_file(f, limits=ws.config.limits) for f in files]
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
