"""yfinance's frame -> the collector's bar table, step for step as the collector does it.

``DataFetcher._normalize_dataframe``: the index becomes ``date``, its zone is dropped
keeping the exchange-local wall time (``tz_localize(None)``), columns are lower-cased,
``stock`` is the ticker, and only date open high low close volume stock are kept
(Dividends, Stock Splits and the rest are dropped). Then its storage normaliser
(``YFParqed._normalize_price_frame``): ``stock`` string, prices float64, ``volume`` and
``sequence`` rounded to Int64 (``sequence`` all null), and rows deduplicated by
(stock, date), the last one kept, sorted by date.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from core.store.bars import BAR_SCHEMA

if TYPE_CHECKING:
    import pandas as pd

PRICE_COLUMNS = ("open", "high", "low", "close")
_FETCHED = ["date", "open", "high", "low", "close", "volume", "stock"]


def normalize_history(frame: pd.DataFrame, ticker: str) -> pa.Table:
    """The bars of a yfinance ``history()`` frame as the collector would store them."""
    import pandas as pd

    if frame is None or frame.empty:
        return BAR_SCHEMA.empty_table()
    normalized = frame.rename_axis("date").reset_index()
    dates = pd.to_datetime(normalized["date"])
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    normalized["date"] = dates
    normalized.columns = [str(c).lower() for c in normalized.columns]
    normalized["stock"] = ticker
    missing = [c for c in _FETCHED if c not in normalized.columns]
    for column in missing:  # the collector's storage normaliser adds them empty
        normalized[column] = pd.NA
    normalized = normalized[_FETCHED]
    return collector_table(normalized)


def collector_table(frame: pd.DataFrame) -> pa.Table:
    """``_normalize_price_frame`` and the (stock, date) deduplication of its storage, as an
    Arrow table in the format's schema. Rows without a parseable date are dropped."""
    import pandas as pd

    out = pd.DataFrame(
        {
            "stock": frame["stock"].astype("string"),
            "date": pd.to_datetime(frame["date"], errors="coerce"),
        }
    )
    for column in PRICE_COLUMNS:
        out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    volume = pd.to_numeric(frame["volume"], errors="coerce")
    out["volume"] = volume.round().astype("Int64")
    out["sequence"] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    out = out[out["date"].notna()]
    out = out.sort_values(["stock", "date"], kind="mergesort")
    out = out.drop_duplicates(subset=["stock", "date"], keep="last")
    table = pa.Table.from_pandas(out, preserve_index=False)
    return table.select(BAR_SCHEMA.names).cast(BAR_SCHEMA).replace_schema_metadata(None)
