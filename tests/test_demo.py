"""The demo workspace: real files, deterministic, and every injected problem really there."""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from core.availability.calendars import sessions
from core.errors import ParqctlError
from core.store.bars import BAR_COLUMNS, BAR_SCHEMA
from core.store.demo import (
    FAMOUS_SYMBOLS,
    PROTECTED_TICKERS,
    DemoReport,
    Injection,
    build_demo,
    demo_symbols,
)

END = date(2025, 12, 5)
DAY_AFTER_THANKSGIVING = date(2025, 11, 28)  # XNYS closes at 13:00
SIZES = {"tickers": 20, "end": END, "years_1d": 2, "years_1h": 1}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoReport:
    root = tmp_path_factory.mktemp("demo") / "ws"
    root.mkdir()  # an empty directory is as good as none
    return build_demo(root, stale_lock=True, **SIZES)


def bar_path(root: Path, interval: str, ticker: str) -> Path:
    return root / f"stocks_{interval}" / f"{ticker}.parquet"


def read(root: Path, interval: str, ticker: str) -> pa.Table:
    return pq.read_table(bar_path(root, interval, ticker))


def session_days(table: pa.Table) -> np.ndarray:
    return np.unique(table["date"].to_numpy().astype("datetime64[D]"))


def span_sessions(report: DemoReport, interval: str) -> np.ndarray:
    span = report.spans[interval]
    return sessions("XNYS", span.first, span.last).dates


def injected(report: DemoReport, kind: str) -> list[Injection]:
    found = [i for i in report.injections if i.kind == kind]
    assert found, f"no {kind} injection reported"
    return found


def as_days(dates: tuple[date, ...]) -> np.ndarray:
    return np.array(dates, dtype="datetime64[D]")


def test_same_seed_builds_the_same_workspace(demo: DemoReport, tmp_path: Path) -> None:
    again = build_demo(tmp_path / "again", stale_lock=True, **SIZES)
    assert (again.root / "tickers.json").read_text() == (demo.root / "tickers.json").read_text()
    samples = [("1d", "AAPL"), ("1h", "AAPL"), ("1m", "MSFT"), ("1d", demo.tickers[-1])]
    samples += [(i.interval, i.ticker) for i in injected(demo, "duplicates")]
    for interval, ticker in samples:
        assert read(again.root, interval, ticker).equals(read(demo.root, interval, ticker))
    assert [(i.kind, i.ticker, i.dates) for i in again.injections] == [
        (i.kind, i.ticker, i.dates) for i in demo.injections
    ]


def test_another_seed_builds_another_workspace(demo: DemoReport, tmp_path: Path) -> None:
    other = build_demo(tmp_path / "other", seed=8, **SIZES)
    assert not read(other.root, "1d", "AAPL").equals(read(demo.root, "1d", "AAPL"))


def test_metadata_files_in_the_collector_format(demo: DemoReport) -> None:
    registry = json.loads((demo.root / "tickers.json").read_text())
    assert list(registry) == demo.tickers
    aapl = registry["AAPL"]
    assert list(aapl) == ["ticker", "added_date", "status", "last_checked", "intervals"]
    assert (aapl["ticker"], aapl["status"], aapl["last_checked"]) == (
        "AAPL",
        "active",
        "2025-12-05",
    )
    assert list(aapl["intervals"]) == ["1d", "1h", "1m"]
    assert aapl["intervals"]["1h"] == {
        "status": "active",
        "last_found_date": "2025-12-05",
        "last_checked": "2025-12-05",
        "last_data_date": "2025-12-05",
    }
    assert all("storage" not in iv for e in registry.values() for iv in e["intervals"].values())
    assert json.loads((demo.root / "intervals.json").read_text()) == ["1d", "1h", "1m"]
    assert json.loads((demo.root / "storage_config.json").read_text()) == {
        "partitioned": False,
        "markets": {},
        "sources": {},
    }


def test_symbols_start_famous_then_unique_synthetic_ones() -> None:
    symbols = demo_symbols(5000, seed=7)
    assert symbols[:3] == ["AAPL", "MSFT", "NVDA"]
    assert {"BRK-B", "BF.B", "^GSPC", "EURUSD=X", "7203.T"} <= set(symbols)
    assert len(set(symbols)) == 5000
    synthetic = symbols[len(FAMOUS_SYMBOLS) :]
    assert all(3 <= len(s) <= 4 and s.isalpha() and s.isupper() for s in synthetic)
    other = demo_symbols(5000, seed=8)
    assert other[: len(FAMOUS_SYMBOLS)] == symbols[: len(FAMOUS_SYMBOLS)]
    assert other[len(FAMOUS_SYMBOLS) :] != synthetic


@pytest.mark.parametrize("interval", ["1d", "1h", "1m"])
def test_healthy_file_has_the_bar_schema_and_sane_rows(demo: DemoReport, interval: str) -> None:
    table = read(demo.root, interval, "AAPL")
    assert table.schema.remove_metadata() == BAR_SCHEMA
    times = table["date"].to_numpy()
    assert np.all(np.diff(times) > np.timedelta64(0)), "sorted and unique"
    assert set(table["stock"].to_pylist()) == {"AAPL"}
    assert table["sequence"].null_count == table.num_rows
    o, h, lo, c = (table[k].to_numpy() for k in ("open", "high", "low", "close"))
    assert np.all(lo > 0)
    assert np.all((lo <= np.minimum(o, c)) & (np.maximum(o, c) <= h))
    assert table["volume"].null_count == 0


@pytest.mark.parametrize("interval", ["1d", "1h", "1m"])
def test_bars_on_every_session_and_nowhere_else(demo: DemoReport, interval: str) -> None:
    expected = span_sessions(demo, interval)
    assert np.array_equal(session_days(read(demo.root, interval, "AAPL")), expected)
    assert expected[-1] == np.datetime64(END)


@pytest.mark.parametrize("interval", ["1d", "1h"])
def test_no_bars_on_weekends_or_holidays(demo: DemoReport, interval: str) -> None:
    days = session_days(read(demo.root, interval, "AAPL")).astype(date)
    assert all(d.weekday() < 5 for d in days)
    holidays = {date(2024, 12, 25), date(2025, 7, 4), date(2025, 11, 27)}
    assert days[0] < min(holidays) and not holidays & set(days)


def test_daily_bars_at_midnight(demo: DemoReport) -> None:
    times = read(demo.root, "1d", "AAPL")["date"].to_numpy()
    assert np.all(times == times.astype("datetime64[D]"))


def test_hourly_bars_step_from_open_until_close(demo: DemoReport) -> None:
    times = read(demo.root, "1h", "AAPL")["date"].to_pylist()
    by_day: dict[date, list[str]] = {}
    for t in times:
        by_day.setdefault(t.date(), []).append(f"{t:%H:%M}")
    regular = ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
    assert by_day[DAY_AFTER_THANKSGIVING] == regular[:4]
    assert by_day[END] == regular
    table = sessions("XNYS", demo.spans["1h"].first, END)
    counts = [len(by_day[d]) for d in table.dates.astype(date)]
    assert counts == table.bars_per_session("1h").tolist()


def test_minute_bars_cover_the_last_five_sessions(demo: DemoReport) -> None:
    times = read(demo.root, "1m", "MSFT")["date"].to_numpy()
    assert demo.spans["1m"].sessions == 5
    assert len(times) == 5 * 390
    last_day = times[times.astype("datetime64[D]") == np.datetime64(END)]
    assert last_day[0] == np.datetime64("2025-12-05T09:30")
    assert last_day[-1] == np.datetime64("2025-12-05T15:59")


def test_injections_never_touch_the_top_tickers(demo: DemoReport) -> None:
    touched = [i.ticker for i in demo.injections if i.ticker is not None]
    assert not set(touched) & set(demo.tickers[:PROTECTED_TICKERS])
    # Two gap records per gapped ticker; every other problem on a ticker of its own.
    assert len(set(touched)) == len(touched) - 2


def test_truncated_file_is_unreadable(demo: DemoReport) -> None:
    (injection,) = injected(demo, "truncated")
    assert injection.path == bar_path(demo.root, injection.interval, injection.ticker)
    assert injection.path.stat().st_size > 0
    with pytest.raises(pa.ArrowException):
        pq.read_table(injection.path)


def test_zero_byte_file(demo: DemoReport) -> None:
    (injection,) = injected(demo, "zero_byte")
    assert injection.path == bar_path(demo.root, injection.interval, injection.ticker)
    assert injection.path.stat().st_size == 0


def test_duplicate_rows_are_repeated_in_place(demo: DemoReport) -> None:
    (injection,) = injected(demo, "duplicates")
    times = pq.read_table(injection.path)["date"].to_numpy()
    assert np.all(np.diff(times) >= np.timedelta64(0)), "still sorted"
    values, counts = np.unique(times, return_counts=True)
    repeated = values[counts > 1]
    assert len(repeated) == len(injection.dates) == 3
    assert np.array_equal(repeated, np.array(injection.dates, dtype="datetime64[ns]"))


def test_extra_column_is_kept_beside_the_bar_columns(demo: DemoReport) -> None:
    (injection,) = injected(demo, "extra_column")
    schema = pq.read_schema(injection.path).remove_metadata()
    assert schema.names == [*BAR_COLUMNS, "adjclose"]
    assert schema.field("adjclose").type == pa.float64()


def test_leftover_temp_file_beside_its_real_file(demo: DemoReport) -> None:
    (injection,) = injected(demo, "temp_file")
    real = bar_path(demo.root, injection.interval, injection.ticker)
    assert injection.path.parent == real.parent
    assert injection.path.name.startswith(f"{real.name}.tmp-")
    partial, whole = injection.path.read_bytes(), real.read_bytes()
    assert 0 < len(partial) < len(whole) and whole.startswith(partial)
    assert pq.read_table(real).num_rows > 0


def test_gaps_are_exactly_the_reported_sessions(demo: DemoReport) -> None:
    gaps = injected(demo, "gap")
    assert {g.interval for g in gaps} == {"1d", "1h"}
    assert {len(g.dates) for g in gaps} == {3, 15}
    for interval in ("1d", "1h"):
        reported = [g for g in gaps if g.interval == interval]
        (ticker,) = {g.ticker for g in reported}
        missing = as_days(tuple(d for g in reported for d in g.dates))
        present = session_days(read(demo.root, interval, ticker))
        expected = np.setdiff1d(span_sessions(demo, interval), missing)
        assert np.array_equal(present, expected)


def test_single_gaps_have_neighbours(demo: DemoReport) -> None:
    for gap in (g for g in injected(demo, "gap") if len(g.dates) == 3):
        present = set(session_days(read(demo.root, gap.interval, gap.ticker)))
        span = list(span_sessions(demo, gap.interval))
        for day in as_days(gap.dates):
            at = span.index(day)
            assert day not in present
            assert span[at - 1] in present and span[at + 1] in present


def test_late_listed_ticker_starts_a_year_before_end(demo: DemoReport) -> None:
    (injection,) = injected(demo, "late_listing")
    (listed,) = injection.dates
    assert timedelta(days=360) <= END - listed <= timedelta(days=370)
    for interval in ("1d", "1h"):
        assert session_days(read(demo.root, interval, injection.ticker))[0] == np.datetime64(listed)
    registry = json.loads((demo.root / "tickers.json").read_text())
    assert registry[injection.ticker]["added_date"] == listed.isoformat()


def test_delisted_ticker_stops_and_is_not_found(demo: DemoReport) -> None:
    (injection,) = injected(demo, "delisted")
    (last,) = injection.dates
    assert timedelta(days=175) <= END - last <= timedelta(days=190)
    for interval in ("1d", "1h"):
        assert session_days(read(demo.root, interval, injection.ticker))[-1] == np.datetime64(last)
    entry = json.loads((demo.root / "tickers.json").read_text())[injection.ticker]
    assert entry["status"] == "not_found"
    assert entry["intervals"]["1d"]["last_data_date"] == last.isoformat()


def test_stale_lock_names_a_dead_process(demo: DemoReport) -> None:
    (injection,) = injected(demo, "stale_lock")
    assert injection.path == demo.root / ".run_lock" / "owner.json"
    owner = json.loads(injection.path.read_text())
    assert set(owner) == {"pid", "host", "ts", "cwd"}
    assert owner["host"] == socket.gethostname()
    assert owner["cwd"] == str(demo.root)
    assert 3000 < time.time() - owner["ts"] < 4200
    with pytest.raises(ProcessLookupError):
        os.kill(owner["pid"], 0)


def test_no_lock_unless_asked(tmp_path: Path) -> None:
    report = build_demo(tmp_path / "ws", **SIZES)
    assert not (report.root / ".run_lock").exists()
    assert all(i.kind != "stale_lock" for i in report.injections)


def test_refuses_a_non_empty_root(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ParqctlError, match="not empty") as raised:
        build_demo(tmp_path, **SIZES)
    assert raised.value.hint
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_report_counts_what_is_on_disk_and_progress_per_ticker(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    report = build_demo(tmp_path / "ws", progress=lambda d, t: calls.append((d, t)), **SIZES)
    assert calls == [(n, 20) for n in range(1, 21)]
    on_disk = [p for p in report.root.rglob("*") if p.is_file()]
    assert report.files == len(on_disk)
    assert report.bytes == sum(p.stat().st_size for p in on_disk)
    readable = [p for p in on_disk if p.suffix == ".parquet" and p.stat().st_size > 0]
    readable.remove(injected(report, "truncated")[0].path)
    assert report.rows == sum(pq.read_metadata(p).num_rows for p in readable)
    assert report.spans["1d"].last == END and report.spans["1d"].first > date(2023, 12, 1)
    lines = report.lines()
    assert all(any(i.detail in line for line in lines) for i in report.injections)


def test_hourly_bars_agree_with_the_daily_bar(demo: DemoReport) -> None:
    hourly = read(demo.root, "1h", "AAPL")
    days = pa.array(hourly["date"].to_numpy().astype("datetime64[D]"))
    per_day = (
        hourly.append_column("day", days)
        .group_by("day", use_threads=False)
        .aggregate([("open", "first"), ("close", "last"), ("high", "max"), ("low", "min")])
    )
    daily = read(demo.root, "1d", "AAPL")
    daily = daily.slice(daily.num_rows - per_day.num_rows)
    assert per_day["open_first"].equals(daily["open"])
    assert per_day["close_last"].equals(daily["close"])
    assert pc.all(pc.less_equal(per_day["high_max"], daily["high"])).as_py()
    assert pc.all(pc.greater_equal(per_day["low_min"], daily["low"])).as_py()
