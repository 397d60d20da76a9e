"""Where bars live on disk: legacy and partitioned paths, and ticker-name safety."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import ParqctlError, UnsafeTickerError

INTERVALS = ("1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d", "5d", "1wk", "1mo", "3mo")
DATASET_PREFIX = "stocks_"
# Where legacy files are found, the collector's own first: it reads and writes only
# ``<workspace>/stocks_<iv>/`` (its StorageRequest.legacy_path()); its migration tool wants
# them moved to ``data/legacy/``; older workspaces keep them in ``data/``.
COLLECTOR_LEGACY_HOME = "."
LEGACY_HOMES = (COLLECTOR_LEGACY_HOME, "data/legacy", "data")
PARTITION_FILE = "data.parquet"
_DATASET_DIR = re.compile(r"^stocks_(?P<interval>[0-9]+(?:m|h|d|wk|mo))$")
_MARKET_OR_SOURCE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def validate_ticker(ticker: str) -> str:
    """Return ``ticker`` if it is safe as one path segment, else raise naming it."""
    if not isinstance(ticker, str) or not ticker:
        raise UnsafeTickerError("empty ticker name", "give a Yahoo symbol such as AAPL or BRK-B")
    bad = [c for c in ("/", "\\", "\x00") if c in ticker]
    if bad or ticker in (".", "..") or ticker != ticker.strip() or not ticker.isprintable():
        raise UnsafeTickerError(
            f"unsafe ticker name {ticker!r}",
            "a ticker becomes a path segment and must not contain / \\ NUL or be . or ..",
        )
    return ticker


def validate_interval(interval: str) -> str:
    if interval not in INTERVALS:
        raise ParqctlError(f"unknown interval {interval!r}", f"use one of {', '.join(INTERVALS)}")
    return interval


def interval_of_dataset_dir(name: str) -> str | None:
    """``stocks_1d`` -> ``1d``; None for anything else."""
    match = _DATASET_DIR.match(name)
    return match.group("interval") if match else None


@dataclass(frozen=True)
class Venue:
    """A market and a data source; written ``market:source`` (``us:yahoo``)."""

    market: str
    source: str

    @classmethod
    def parse(cls, text: str) -> Venue:
        market, sep, source = text.partition(":")
        market, source = market.strip().lower(), source.strip().lower()
        if not sep or not _MARKET_OR_SOURCE.match(market) or not _MARKET_OR_SOURCE.match(source):
            raise ParqctlError(
                f"bad venue {text!r}", "write a venue as market:source, e.g. us:yahoo"
            )
        return cls(market, source)

    @property
    def id(self) -> str:
        return f"{self.market}:{self.source}"

    @property
    def config_key(self) -> str:
        """The key of storage_config.json's ``sources`` map (``us/yahoo``)."""
        return f"{self.market}/{self.source}"


def legacy_dataset_dir(
    workspace_root: Path, interval: str, home: str = COLLECTOR_LEGACY_HOME
) -> Path:
    return workspace_root / home / f"{DATASET_PREFIX}{interval}"


def legacy_home_label(home: str) -> str:
    """How a legacy home is named to the operator: its directory of stocks_<iv> folders."""
    return "the workspace root" if home == COLLECTOR_LEGACY_HOME else f"{home}/"


def legacy_file(dataset_dir: Path, ticker: str) -> Path:
    return dataset_dir / f"{validate_ticker(ticker)}.parquet"


def partition_dataset_dir(
    workspace_root: Path, venue: Venue, interval: str, root: str = "data", dataset: str = "stocks"
) -> Path:
    return workspace_root / root / venue.market / venue.source / f"{dataset}_{interval}"


def ticker_partition_dir(dataset_dir: Path, ticker: str) -> Path:
    return dataset_dir / f"ticker={validate_ticker(ticker)}"


def partition_file(dataset_dir: Path, ticker: str, year: int, month: int) -> Path:
    return (
        ticker_partition_dir(dataset_dir, ticker)
        / f"year={year:04d}"
        / f"month={month:02d}"
        / PARTITION_FILE
    )
