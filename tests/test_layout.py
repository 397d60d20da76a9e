from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ParqctlError, UnsafeTickerError
from core.store.layout import (
    Venue,
    interval_of_dataset_dir,
    legacy_file,
    partition_file,
    validate_ticker,
)

REAL_SYMBOLS = ["AAPL", "BRK-B", "BF.B", "^GSPC", "EURUSD=X", "7203.T", "SAP.DE", "BTC-USD"]


@pytest.mark.parametrize("ticker", REAL_SYMBOLS)
def test_real_yahoo_symbols_are_path_segments(ticker: str, tmp_path: Path):
    assert validate_ticker(ticker) == ticker
    assert legacy_file(tmp_path, ticker).name == f"{ticker}.parquet"
    path = partition_file(tmp_path, ticker, 2025, 3)
    assert path.relative_to(tmp_path).parts == (
        f"ticker={ticker}",
        "year=2025",
        "month=03",
        "data.parquet",
    )


@pytest.mark.parametrize(
    "ticker", ["../etc", "a/b", "a\\b", ".", "..", "x\x00y", "", " AAPL", "A\nB"]
)
def test_unsafe_names_are_refused_and_named(ticker: str, tmp_path: Path):
    with pytest.raises(UnsafeTickerError) as err:
        legacy_file(tmp_path, ticker)
    if ticker:
        assert repr(ticker) in err.value.message


def test_dataset_dir_names():
    assert interval_of_dataset_dir("stocks_1d") == "1d"
    assert interval_of_dataset_dir("stocks_1wk") == "1wk"
    assert interval_of_dataset_dir("stocks_15m") == "15m"
    assert interval_of_dataset_dir("stocks") is None
    assert interval_of_dataset_dir("trades") is None


def test_venue_parsing():
    assert Venue.parse("US:Yahoo") == Venue("us", "yahoo")
    assert Venue.parse("us:yahoo").config_key == "us/yahoo"
    for bad in ("us", "us/yahoo", ":yahoo", "us:../x"):
        with pytest.raises(ParqctlError):
            Venue.parse(bad)
