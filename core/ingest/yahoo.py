"""The one seam between parqctl and Yahoo Finance.

A source answers ``history(ticker, interval, start, end)`` (``end`` exclusive, dates in
the exchange's own time, as yfinance takes them) with a frame in yfinance's own shape: a
tz-aware index named ``Date`` or ``Datetime`` and the columns Open High Low Close Volume
Dividends "Stock Splits"; an empty frame when Yahoo has no bars for the window. Failures
are one of three exceptions, whatever library produced them:

    YahooUnreachable   no answer (no network, DNS, proxy, timeout, Yahoo down)
    YahooRateLimited   HTTP 429 or yfinance's rate-limit error: wait and ask again
    YahooRefused       Yahoo answered with an explicit error for this request (a window
                       beyond what it serves): not an empty window, never recorded as one

``YFinanceSource`` calls yfinance exactly as the collector's ``DataFetcher`` does
(``Ticker(t).history(start=..., end=..., interval=...)``, yfinance's defaults otherwise,
so prices are adjusted the same way). ``RecordedSource`` serves responses recorded in
files (``save_recording``), for tests, demos and offline reproductions; it is chosen when
``$PARQCTL_YAHOO_RECORDINGS`` names a directory of them.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from core.safety import untrusted_json

if TYPE_CHECKING:
    import pandas as pd

RECORDINGS_ENV = "PARQCTL_YAHOO_RECORDINGS"
UNREACHABLE_FILE = "unreachable.txt"  # in a recordings directory: every request fails so
COLUMNS = ("Open", "High", "Low", "Close", "Volume", "Dividends", "Stock Splits")
DEFAULT_TIMEZONE = "America/New_York"
DAILY_INDEX_NAME, INTRADAY_INDEX_NAME = "Date", "Datetime"
_MAX_REASON = 160


class YahooError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class YahooUnreachable(YahooError):
    """No answer from Yahoo Finance."""


class YahooRateLimited(YahooError):
    """Yahoo said: too many requests."""


class YahooRefused(YahooError):
    """Yahoo answered this request with an error of its own (not an empty window)."""


class YahooSource(Protocol):
    def history(self, ticker: str, interval: str, start: date, end: date) -> pd.DataFrame:
        """Bars with ``start <= day < end``, in yfinance's shape; empty when none."""
        ...


def short_reason(exc: BaseException) -> str:
    """An exception as a short reason: its first sentence, without libcurl's advert."""
    text = str(exc) or type(exc).__name__
    text = re.sub(r"^Failed to perform, ", "", text)
    text = text.split(". See https://", 1)[0].strip().rstrip(".")
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


class YFinanceSource:
    """Yahoo Finance through yfinance, its errors sorted into the three kinds above."""

    def history(self, ticker: str, interval: str, start: date, end: date) -> pd.DataFrame:
        import pandas as pd
        import yfinance as yf
        from yfinance import exceptions as yfe

        # Raise instead of logging and answering "possibly delisted" for a dead network.
        yf.config.debug.hide_exceptions = False
        logging.getLogger("yfinance").setLevel(logging.CRITICAL + 1)
        try:
            return yf.Ticker(ticker).history(
                start=start.isoformat(), end=end.isoformat(), interval=interval
            )
        except yfe.YFRateLimitError as exc:
            raise YahooRateLimited(short_reason(exc)) from None
        except yfe.YFPricesMissingError as exc:
            if exc.yahoo_reason:
                raise YahooRefused(short_reason(Exception(exc.yahoo_reason))) from None
            return pd.DataFrame()
        except yfe.YFTickerMissingError:  # no timezone: a symbol Yahoo does not know
            return pd.DataFrame()
        except yfe.YFDataException as exc:  # "Yahoo! Finance is currently down"
            raise YahooUnreachable(short_reason(exc)) from None
        except OSError as exc:  # curl_cffi's connection, proxy, timeout and HTTP errors
            response = getattr(exc, "response", None)
            if getattr(response, "status_code", None) == 429:
                raise YahooRateLimited("HTTP 429 Too Many Requests") from None
            raise YahooUnreachable(short_reason(exc)) from None
        except ValueError as exc:  # an answer that is not JSON (a proxy's error page)
            raise YahooUnreachable(f"unexpected answer: {short_reason(exc)}") from None


class RecordedSource:
    """Responses recorded in ``<dir>/<interval>/<ticker>.json`` (``save_recording``),
    served by window as Yahoo would: rows with ``start <= local day < end``.

    A ticker without a recording answers empty, as Yahoo does for a symbol it does not
    know. A file ``unreachable.txt`` in the directory makes every request fail as if the
    network were down, with its first line as the reason."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._cache: dict[tuple[str, str], pd.DataFrame] = {}

    def history(self, ticker: str, interval: str, start: date, end: date) -> pd.DataFrame:
        import pandas as pd

        down = self.directory / UNREACHABLE_FILE
        if down.exists():
            reason = down.read_text(encoding="utf-8").strip().splitlines()
            raise YahooUnreachable(reason[0] if reason else "recorded: unreachable")
        key = (ticker, interval)
        if key not in self._cache:
            path = recording_path(self.directory, ticker, interval)
            self._cache[key] = load_recording(path) if path.is_file() else pd.DataFrame()
        frame = self._cache[key]
        if frame.empty:
            return frame
        zone = frame.index.tz
        lo, hi = pd.Timestamp(start).tz_localize(zone), pd.Timestamp(end).tz_localize(zone)
        return frame[(frame.index >= lo) & (frame.index < hi)].copy()


def recording_path(directory: Path, ticker: str, interval: str) -> Path:
    from core.store.layout import validate_interval, validate_ticker

    return Path(directory) / validate_interval(interval) / f"{validate_ticker(ticker)}.json"


def save_recording(frame: pd.DataFrame, path: Path, ticker: str, interval: str) -> None:
    """Keep a yfinance frame as JSON: its zone, index name, columns and rows."""
    zone = str(frame.index.tz) if frame.index.tz is not None else DEFAULT_TIMEZONE
    rows = [
        [stamp.isoformat(), *(None if v != v else v for v in values)]  # NaN -> null
        for stamp, values in zip(frame.index, frame.itertuples(index=False, name=None), strict=True)
    ]
    record = {
        "ticker": ticker,
        "interval": interval,
        "timezone": zone,
        "index_name": frame.index.name,
        "columns": list(frame.columns),
        "rows": rows,
    }
    head = json.dumps({k: v for k, v in record.items() if k != "rows"}, default=_plain)
    body = ",\n  ".join(json.dumps(row, default=_plain) for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{head[:-1]}, "rows": [\n  {body}\n]}}\n', encoding="utf-8")


def _plain(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot record {value!r}")


def load_recording(path: Path) -> pd.DataFrame:
    """The frame ``save_recording`` kept, in yfinance's shape again."""
    import pandas as pd

    record = untrusted_json.loads(Path(path).read_text(encoding="utf-8"))
    zone = record.get("timezone") or DEFAULT_TIMEZONE
    rows = record.get("rows") or []
    index = pd.DatetimeIndex(
        pd.to_datetime([r[0] for r in rows], utc=True), name=record.get("index_name")
    ).tz_convert(zone)
    frame = pd.DataFrame([r[1:] for r in rows], index=index, columns=record["columns"])
    if "Volume" in frame:
        frame["Volume"] = frame["Volume"].astype("int64")
    return frame


def default_source() -> YahooSource:
    """Recorded responses when ``$PARQCTL_YAHOO_RECORDINGS`` names a directory, else
    Yahoo Finance itself."""
    recordings = os.environ.get(RECORDINGS_ENV)
    if recordings:
        return RecordedSource(Path(recordings))
    return YFinanceSource()
