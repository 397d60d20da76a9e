"""Drive the real yf_parqed collector for parqctl's contract tests and answer in JSON.

Run with the collector's own python (see ``collector_support.py``)::

    python collector_driver.py read W IV [TICKER...]
    python collector_driver.py read-many W IV,IV [TICKER...]   ({IV: what read answers})
    python collector_driver.py update W [--start D --end D] [--non-interactive]
                                        [--tickers A,B] [--intervals 1d,1h]
    python collector_driver.py init W --tickers A,B --intervals 1d,1h --start D --end D
    python collector_driver.py lock-hold W SECONDS
    python collector_driver.py lock-try W

It never reaches the network: yfinance's ``Ticker`` is replaced by a fake that answers
``history()`` in yfinance's own shape (tz-aware America/New_York index named ``Date`` or
``Datetime``; Open High Low Close Volume Dividends "Stock Splits"), one bar per weekday for
``1d`` and bars from 09:30 to before 16:00 for intraday intervals, with prices derived from
(ticker, bar time) so every call agrees. Sockets are blocked and proxies point nowhere in
case anything else tries. The collector's rate limiter does not sleep.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import signal
import socket
import sys
import time
from datetime import datetime
from pathlib import Path

# libcurl (yfinance's curl_cffi) does not go through Python's socket module: a dead proxy.
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ[_name] = "http://127.0.0.1:9"
os.environ.pop("NO_PROXY", None)
os.environ.pop("no_proxy", None)


def _blocked(*_args, **_kwargs):
    raise OSError("collector_driver: network access is blocked in contract tests")


socket.socket.connect = _blocked
socket.socket.connect_ex = _blocked
socket.create_connection = _blocked
socket.getaddrinfo = _blocked

import pandas as pd  # noqa: E402
import yfinance  # noqa: E402

NEW_YORK = "America/New_York"
INTRADAY_MINUTES = {"1m": 1, "2m": 2, "5m": 5, "15m": 15, "30m": 30, "60m": 60, "1h": 60, "90m": 90}
FIRST_MAX_DAY = pd.Timestamp("2024-01-01")  # what period="max" goes back to


class FakeTicker:
    """yfinance.Ticker without the network: deterministic bars for weekday sessions."""

    def __init__(self, ticker: str, session=None) -> None:
        self.ticker = ticker

    def history(self, period=None, interval="1d", start=None, end=None, **_kwargs):
        now = pd.Timestamp.now(tz=NEW_YORK).tz_localize(None)
        if start is None:
            end = now if end is None else _naive(end)
            start = FIRST_MAX_DAY if period == "max" else end - _period_length(str(period or "1mo"))
        else:
            start = _naive(start)
            end = now if end is None else _naive(end)
        times = [t for t in _bar_times(interval, start, end) if start <= t < end]
        index = pd.DatetimeIndex(times, name="Datetime" if interval in INTRADAY_MINUTES else "Date")
        index = index.tz_localize(NEW_YORK)
        rows = [_bar(self.ticker, t) for t in times]
        columns = ["Open", "High", "Low", "Close", "Volume", "Dividends", "Stock Splits"]
        frame = pd.DataFrame(rows, index=index, columns=columns)
        return frame.astype({"Volume": "int64", "Dividends": "float64", "Stock Splits": "float64"})


def _period_length(period: str) -> pd.Timedelta:
    """yfinance's period strings: 7d, 730d, 1mo, 5y, ..."""
    for suffix, days in (("mo", 30), ("wk", 7), ("d", 1), ("y", 365)):
        number = period.removesuffix(suffix)
        if number != period and number.isdigit():
            return pd.Timedelta(days=int(number) * days)
    return pd.Timedelta(days=30)


def _naive(value) -> pd.Timestamp:
    """A start/end as yfinance takes them (str, date, datetime, aware or not) in NY wall time."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(NEW_YORK).tz_localize(None)
    return stamp


def _bar_times(interval: str, start: pd.Timestamp, end: pd.Timestamp) -> list[pd.Timestamp]:
    if interval != "1d" and interval not in INTRADAY_MINUTES:
        return []
    times = []
    for day in pd.date_range(start.normalize(), end.normalize(), freq="D"):
        if day.weekday() >= 5:
            continue
        if interval == "1d":
            times.append(day)
            continue
        step = pd.Timedelta(minutes=INTRADAY_MINUTES[interval])
        bar = day + pd.Timedelta(hours=9, minutes=30)
        while bar < day + pd.Timedelta(hours=16):
            times.append(bar)
            bar += step
    return times


def _bar(ticker: str, when: pd.Timestamp) -> list:
    seed = int.from_bytes(hashlib.sha256(f"{ticker}|{when.isoformat()}".encode()).digest()[:8])
    base = 20 + (seed % 50_000) / 100
    close = base + ((seed >> 20) % 200 - 100) / 100
    high = max(base, close) + ((seed >> 30) % 100) / 100
    low = min(base, close) - ((seed >> 36) % 100) / 100
    volume = 1_000 + (seed >> 44) % 1_000_000
    return [base, high, low, close, volume, 0.0, 0.0]


yfinance.Ticker = FakeTicker

from yf_parqed.common import parquet_recovery  # noqa: E402
from yf_parqed.common.config_service import ConfigService  # noqa: E402
from yf_parqed.common.run_lock import GlobalRunLock  # noqa: E402
from yf_parqed.yahoo import primary_class  # noqa: E402
from yf_parqed.yahoo.primary_class import YFParqed  # noqa: E402

primary_class.yf.Ticker = FakeTicker  # the same module object; said again for clarity
# The instance's limiter calls self.enforce_limits() late, so patching the class suffices.
YFParqed.enforce_limits = lambda self: None

OUT = sys.stdout


def emit(payload) -> None:
    OUT.write(json.dumps(payload, default=str) + "\n")
    OUT.flush()


def _relative(path: Path, ws: Path) -> str:
    try:
        return str(path.resolve().relative_to(ws))
    except ValueError:
        return str(path)


def cmd_read(args) -> None:
    emit(_read_intervals(Path(args.workspace).resolve(), [args.interval], args.tickers)[0])


def cmd_read_many(args) -> None:
    intervals = _split(args.intervals)
    reads = _read_intervals(Path(args.workspace).resolve(), intervals, args.tickers)
    emit(dict(zip(intervals, reads, strict=True)))


def _read_intervals(ws: Path, intervals: list[str], tickers: list[str]) -> list[dict]:
    would_delete: list[str] = []
    # Its reader deletes files it cannot read; a read for a test must not change anything.
    parquet_recovery._safe_remove = lambda path: would_delete.append(_relative(path, ws))
    yfp = YFParqed(my_path=ws)  # no intervals given: loads intervals.json, writes nothing
    return [_read(yfp, ws, interval, tickers, would_delete) for interval in intervals]


def _read(yfp, ws: Path, interval: str, tickers: list[str], would_delete: list[str]) -> dict:
    result = {}
    for ticker in tickers or list(yfp.tickers):
        request = yfp._build_storage_request(ticker, interval)
        if yfp._select_storage_backend(request) is yfp._legacy_storage:
            path = request.legacy_path()
            route = {"backend": "legacy", "path": _relative(path, ws), "exists": path.is_file()}
        else:
            root = yfp._storage_router.ticker_root(request)
            route = {"backend": "partitioned", "path": _relative(root, ws), "exists": root.is_dir()}
        del would_delete[:]
        frame = yfp.read_yf(request).reset_index()
        frame = frame.sort_values("date", kind="mergesort").reset_index(drop=True)
        digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
        result[ticker] = {
            "rows": len(frame),
            "dtypes": {column: str(dtype) for column, dtype in frame.dtypes.items()},
            "min": frame["date"].min().isoformat() if len(frame) else None,
            "max": frame["date"].max().isoformat() if len(frame) else None,
            "days": int(frame["date"].dt.normalize().nunique()) if len(frame) else 0,
            "digest": digest.hexdigest(),
            "route": route,
            "would_delete": list(would_delete),
        }
    return result


def _register(ws: Path, tickers: list[str], intervals: list[str]) -> None:
    """Add tickers and intervals the way the collector's own code writes them."""
    try:
        yfp = YFParqed(my_path=ws)
    except ValueError:  # no intervals.json yet
        yfp = YFParqed(my_path=ws, my_intervals=intervals or ["1d"])
    missing = [iv for iv in intervals if iv not in yfp.my_intervals]
    if missing:
        yfp.save_intervals([*yfp.my_intervals, *missing])
    if tickers:
        today = datetime.now().strftime("%Y-%m-%d")
        # The entry get_new_list_of_stocks() makes from the exchange listings it downloads.
        new = {
            t: {
                "ticker": t,
                "added_date": today,
                "status": "active",
                "last_checked": None,
                "intervals": {},
            }
            for t in tickers
        }
        yfp.registry.update_current_list(new)
        yfp.save_tickers()


def _run_updater(ws: Path, start, end, non_interactive: bool) -> dict:
    """``yf-parqed --wrk-dir ws update-data ...``: the real CLI, in this process."""
    # The CLI module builds a YFParqed on the current directory at import and later only
    # re-points its paths: run it from the workspace, as cron does with `cd`.
    os.chdir(ws)
    import click
    from yf_parqed import yfinance_cli

    argv = ["--wrk-dir", str(ws), "update-data"]
    if start is not None:
        argv += ["--start-date", start]
    if end is not None:
        argv += ["--end-date", end]
    if non_interactive:
        argv.append("--non-interactive")
    lock_before = GlobalRunLock(ws).owner_info()
    log = io.StringIO()
    error = None
    # Its log (loguru, re-added to sys.stderr by the CLI callback) and rich progress bars
    # are kept off our stdout, which carries only the JSON answer.
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            code = yfinance_cli.app(argv, prog_name="yf-parqed", standalone_mode=False)
        except SystemExit as exc:
            code = exc.code
        except click.exceptions.Abort:
            code, error = 1, "Abort (it asked a question on a closed stdin)"
        except click.exceptions.ClickException as exc:
            code, error = exc.exit_code, exc.format_message()
    sys.stderr.write(log.getvalue())
    return {
        "exit_code": code if isinstance(code, int) else 0,
        "error": error,
        "lock_before": lock_before,
        "lock_after": GlobalRunLock(ws).owner_info(),
        "lock_dir_after": (ws / ".run_lock").exists(),
        "log": log.getvalue().splitlines(),
    }


def _split(value: str | None) -> list[str]:
    return [part for part in (value or "").split(",") if part]


def cmd_update(args) -> None:
    ws = Path(args.workspace).resolve()
    if args.tickers or args.intervals:
        _register(ws, _split(args.tickers), _split(args.intervals))
    emit(_run_updater(ws, args.start, args.end, args.non_interactive))


def cmd_init(args) -> None:
    ws = Path(args.workspace).resolve()
    if (ws / "tickers.json").exists():
        raise SystemExit(f"{ws} already holds a workspace")
    ws.mkdir(parents=True, exist_ok=True)
    # Without storage_config.json the collector defaults to partitioned storage; this is
    # what `yf-parqed partition-toggle --disable` writes.
    ConfigService(ws).set_partition_mode(False)
    _register(ws, _split(args.tickers), _split(args.intervals))
    emit(_run_updater(ws, args.start, args.end, non_interactive=True))


def cmd_lock_hold(args) -> None:
    lock = GlobalRunLock(Path(args.workspace))
    acquired = lock.try_acquire()
    emit({"acquired": acquired, "owner": lock.owner_info()})
    if not acquired:
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        time.sleep(args.seconds)
    finally:
        lock.release()


def cmd_lock_try(args) -> None:
    lock = GlobalRunLock(Path(args.workspace))
    acquired = lock.try_acquire()
    owner = lock.owner_info()
    if acquired:
        lock.release()
    emit({"acquired": acquired, "owner": owner, "lock_dir_after": lock.lock_dir.exists()})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    read = sub.add_parser("read")
    read.add_argument("workspace")
    read.add_argument("interval")
    read.add_argument("tickers", nargs="*")
    read.set_defaults(func=cmd_read)

    read_many = sub.add_parser("read-many")
    read_many.add_argument("workspace")
    read_many.add_argument("intervals", help="comma-separated")
    read_many.add_argument("tickers", nargs="*")
    read_many.set_defaults(func=cmd_read_many)

    update = sub.add_parser("update")
    update.add_argument("workspace")
    update.add_argument("--start")
    update.add_argument("--end")
    update.add_argument("--non-interactive", action="store_true")
    update.add_argument("--tickers", help="comma-separated; registered first if missing")
    update.add_argument("--intervals", help="comma-separated; added to intervals.json first")
    update.set_defaults(func=cmd_update)

    init = sub.add_parser("init")
    init.add_argument("workspace")
    init.add_argument("--tickers", required=True)
    init.add_argument("--intervals", required=True)
    init.add_argument("--start", required=True)
    init.add_argument("--end", required=True)
    init.set_defaults(func=cmd_init)

    hold = sub.add_parser("lock-hold")
    hold.add_argument("workspace")
    hold.add_argument("seconds", type=float)
    hold.set_defaults(func=cmd_lock_hold)

    try_ = sub.add_parser("lock-try")
    try_.add_argument("workspace")
    try_.set_defaults(func=cmd_lock_try)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
    # The answer is out and flushed: skip the interpreter's teardown, where a thread of the
    # collector's native libraries still running at exit aborted it once ("terminate called
    # without an active exception", exit -6) after its work was done.
    sys.stderr.flush()
    os._exit(0)
