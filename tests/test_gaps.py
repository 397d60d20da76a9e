"""Gaps found exactly: around holidays, early closes, listing and delisting, with recoverability."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from session_bars import (
    CHRISTMAS_EVE,
    EARLY_CLOSE,
    THANKSGIVING,
    daily,
    hourly,
    session_days,
    write_legacy,
    write_metadata,
    write_partitioned,
)

from core.availability.calendars import sessions
from core.availability.gaps import AvailabilityReport, TickerAvailability, Window, availability
from core.availability.index import refresh_index
from core.availability.session_cache import CALENDAR_DIR, cached_sessions
from core.errors import ParqctlError
from core.store.demo import build_demo
from core.store.layout import Venue
from core.store.routing import DEFAULT_VENUE
from core.store.workspace import Workspace

START, END = date(2025, 11, 17), date(2025, 12, 31)
TODAY = date(2025, 12, 10)
ALL = session_days(START, END)
HOLI_MISSING = [date(2025, 11, 26), EARLY_CLOSE, date(2025, 12, 5), date(2025, 12, 8)]
HOLI_MISSING += [CHRISTMAS_EVE, date(2025, 12, 26)]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gaps") / "ws"
    write_legacy(root, "1d", "HOLI", daily(session_days(START, END, skip=HOLI_MISSING)))
    write_legacy(root, "1d", "FULL", daily(ALL))
    write_legacy(root, "1d", "LATE", daily(session_days(date(2025, 12, 1), END)))
    write_legacy(root, "1d", "GONE", daily(session_days(START, date(2025, 11, 25))))
    bad = write_legacy(root, "1d", "BAD", daily(ALL))
    os.truncate(bad, bad.stat().st_size - 20)
    write_legacy(root, "1h", "FULL", hourly(ALL))
    partial = hourly(
        session_days(START, END, skip=[date(2025, 12, 3)]),
        cut={EARLY_CLOSE: 3, date(2025, 12, 2): 6},
    )
    write_legacy(root, "1h", "PART", sorted([*partial, datetime(2025, 11, 27, 10, 30)]))
    old = [
        date(2025, 11, 18),
        date(2025, 11, 19),
        *session_days(date(2025, 11, 24), date(2025, 12, 2)),
    ]
    write_legacy(root, "1h", "OLD", hourly(session_days(START, END, skip=old)))
    write_metadata(
        root,
        {"HOLI": ["1d"], "FULL": ["1d", "1h"], "LATE": ["1d"], "GONE": ["1d"], "BAD": ["1d"],
         "PART": ["1h"], "OLD": ["1h"], "NEVER": ["1d"]},
    )  # fmt: skip
    return root


def report(root: Path, **kwargs) -> AvailabilityReport:
    return availability(Workspace.open(root), refresh_index(root), today=TODAY, **kwargs)


def ticker(result: AvailabilityReport, interval: str, name: str) -> TickerAvailability:
    (found,) = [t for t in result.intervals[interval].tickers if t.ticker == name]
    return found


def spans(entry: TickerAvailability) -> list[tuple[date, date, int]]:
    return [(g.start, g.end, g.sessions) for g in entry.gaps]


def test_holidays_weekends_and_early_closes_are_never_gaps(root: Path):
    result = report(root)
    holi = ticker(result, "1d", "HOLI")
    assert spans(holi) == [
        (date(2025, 11, 26), EARLY_CLOSE, 2),  # Thanksgiving between them is not a session
        (date(2025, 12, 5), date(2025, 12, 8), 2),  # a Friday and a Monday: one run
        (CHRISTMAS_EVE, date(2025, 12, 26), 2),
    ]
    assert holi.expected_sessions == len(ALL) == 31
    assert holi.present_sessions == len(ALL) - 6 and holi.missing_sessions == 6
    full = ticker(result, "1d", "FULL")
    assert full.complete and full.gaps == [] and full.present_sessions == len(ALL)
    assert (full.first, full.last, full.source, full.calendar) == (START, END, "legacy", "XNYS")


def test_listing_and_delisting_bound_the_expected_sessions(root: Path):
    result = report(root)
    late, gone = ticker(result, "1d", "LATE"), ticker(result, "1d", "GONE")
    assert late.gaps == [] and late.first == date(2025, 12, 1)
    assert late.expected_sessions == len(session_days(date(2025, 12, 1), END))
    assert gone.gaps == [] and gone.last == date(2025, 11, 25) and gone.expected_sessions == 7


def test_counting_before_the_first_bar(root: Path):
    from_dataset_start = report(root, window=Window(before_first=True))
    late = ticker(from_dataset_start, "1d", "LATE")
    before = session_days(START, date(2025, 11, 28))
    assert spans(late) == [(START, EARLY_CLOSE, len(before))]
    assert late.expected_sessions == len(ALL)
    from_since = report(root, window=Window(since=date(2025, 11, 3), before_first=True))
    assert spans(ticker(from_since, "1d", "LATE")) == [
        (date(2025, 11, 3), EARLY_CLOSE, len(session_days(date(2025, 11, 3), EARLY_CLOSE)))
    ]
    assert spans(ticker(from_since, "1d", "FULL")) == [(date(2025, 11, 3), date(2025, 11, 14), 10)]


def test_a_window_clips_expected_sessions_and_gaps(root: Path):
    result = report(root, window=Window(since=EARLY_CLOSE, until=CHRISTMAS_EVE))
    holi = ticker(result, "1d", "HOLI")
    assert spans(holi) == [
        (EARLY_CLOSE, EARLY_CLOSE, 1),
        (date(2025, 12, 5), date(2025, 12, 8), 2),
        (CHRISTMAS_EVE, CHRISTMAS_EVE, 1),
    ]
    assert holi.expected_sessions == len(session_days(EARLY_CLOSE, CHRISTMAS_EVE))
    assert ticker(result, "1d", "GONE").expected_sessions == 0


def test_intraday_partial_sessions_count_early_closes_right(root: Path):
    result = report(root)
    full = ticker(result, "1h", "FULL")
    assert full.complete and full.partial == []  # 4 bars on 11-28 and 12-24 are complete
    part = ticker(result, "1h", "PART")
    assert [(p.session, p.bars, p.expected) for p in part.partial] == [
        (EARLY_CLOSE, 3, 4),
        (date(2025, 12, 2), 6, 7),
    ]
    assert spans(part) == [(date(2025, 12, 3), date(2025, 12, 3), 1)]
    assert part.off_session_days == [THANKSGIVING]  # reported, not counted, no crash
    assert part.present_sessions == len(ALL) - 1
    assert result.intervals["1h"].partial_sessions == 2


def test_recoverability_follows_the_retention_window(root: Path):
    result = report(root)
    holi_gap = ticker(result, "1d", "HOLI").gaps[0]
    assert holi_gap.recoverable_until is None and holi_gap.lost_sessions == 0
    assert holi_gap.status == "recoverable"  # daily bars never expire
    (gap,) = ticker(result, "1h", "PART").gaps
    assert gap.recoverable_until == date(2025, 12, 3) + timedelta(days=730)

    config = root / ".parqctl" / "config.toml"
    config.write_text('[retention_days]\n"1h" = 10\n')  # cutoff 2025-11-30
    try:
        short = report(root)
    finally:
        config.unlink()
    lost, partly = ticker(short, "1h", "OLD").gaps
    assert (lost.start, lost.end, lost.sessions) == (date(2025, 11, 18), date(2025, 11, 19), 2)
    assert lost.recoverable_until is None and lost.lost_sessions == 2 and lost.status == "lost"
    assert (partly.start, partly.end, partly.sessions) == (date(2025, 11, 24), date(2025, 12, 2), 6)
    assert partly.lost_sessions == 4 and partly.status == "partly lost"
    assert partly.recoverable_until == date(2025, 12, 12)
    summary = short.intervals["1h"].as_dict()["summary"]
    assert summary["lost_sessions"] == 6 and summary["recoverable_sessions"] == 3


def test_a_corrupt_file_is_unreadable_and_the_rest_is_reported(root: Path):
    result = report(root)
    bad = ticker(result, "1d", "BAD")
    assert bad.first is None and not bad.complete
    assert [u.path for u in bad.unreadable] == ["stocks_1d/BAD.parquet"]
    assert bad.unreadable[0].error and bad.source == "legacy"
    daily_result = result.intervals["1d"]
    assert daily_result.unreadable_files == 1 and daily_result.complete == 3  # FULL LATE GONE
    assert daily_result.without_bars == ["NEVER"]  # registered, no file at all
    assert not result.clean


def test_named_tickers_only(root: Path):
    result = report(root, tickers=["HOLI", "PART"])
    assert [t.ticker for t in result.intervals["1d"].tickers] == ["HOLI"]
    assert [t.ticker for t in result.intervals["1h"].tickers] == ["PART"]
    assert result.intervals["1d"].without_bars == [] == result.intervals["1h"].without_bars
    with pytest.raises(ParqctlError, match="NOPE"):
        report(root, tickers=["NOPE"])
    with pytest.raises(ParqctlError, match="after"):
        report(root, window=Window(since=END, until=START))


def test_partitions_routing_and_another_calendar(tmp_path: Path):
    root = tmp_path / "ws"
    block = {
        "mode": "partitioned", "venue": "us:yahoo", "market": "us", "source": "yahoo",
        "dataset": "stocks", "root": "data", "verified_at": "2025-12-31T00:00:00Z",
    }  # fmt: skip
    # A gap across the month boundary: two files, one run.
    write_partitioned(
        root,
        DEFAULT_VENUE,
        "1d",
        "PART",
        daily(session_days(START, END, skip=[EARLY_CLOSE, date(2025, 12, 1)])),
    )
    # Both layouts hold BOTH (a migration in progress): the routed one is reported.
    write_legacy(root, "1d", "BOTH", daily(ALL))
    write_partitioned(
        root,
        DEFAULT_VENUE,
        "1d",
        "BOTH",
        daily(session_days(START, END, skip=[date(2025, 12, 10)])),
    )
    write_partitioned(
        root,
        DEFAULT_VENUE,
        "1d",
        "ROLLBACK",
        daily(session_days(START, END, skip=[date(2025, 12, 10)])),
    )
    write_legacy(root, "1d", "ROLLBACK", daily(ALL))
    # Xetra is closed on 12-24 and 12-31, where New York trades.
    xetra = session_days(START, END, calendar="XETR")
    write_partitioned(root, Venue("de", "xetra"), "1d", "SAP", daily(xetra))
    write_metadata(
        root,
        {"PART": ["1d"], "BOTH": ["1d"], "ROLLBACK": ["1d"], "SAP": ["1d"]},
        storage={"PART": {"1d": block}, "BOTH": {"1d": block}},
    )  # fmt: skip
    result = report(root)
    part = ticker(result, "1d", "PART")
    assert part.source == "us:yahoo" and spans(part) == [(EARLY_CLOSE, date(2025, 12, 1), 2)]
    both = ticker(result, "1d", "BOTH")
    assert both.source == "us:yahoo" and spans(both) == [
        (date(2025, 12, 10), date(2025, 12, 10), 1)
    ]
    rollback = ticker(result, "1d", "ROLLBACK")  # no storage block: the collector reads legacy
    assert rollback.source == "legacy" and rollback.gaps == []
    sap = ticker(result, "1d", "SAP")
    assert (sap.calendar, sap.source) == ("XETR", "de:xetra")
    assert sap.complete and sap.expected_sessions == len(xetra) < len(ALL)
    assert result.intervals["1d"].calendars == ["XETR", "XNYS"]
    assert result.intervals["1d"].as_dict()["calendar"] is None


def test_weekly_and_monthly_bars_count_periods(tmp_path: Path):
    root = tmp_path / "ws"
    mondays = [date(2025, 11, 17) + timedelta(weeks=k) for k in range(7)]  # to 12-29
    write_legacy(root, "1wk", "WEEK", daily([d for d in mondays if d != date(2025, 12, 8)]))
    # Monthly bars are dated the 1st, a Saturday in November: still that month's bar.
    write_legacy(root, "1mo", "MONTH", daily([date(2025, m, 1) for m in (9, 10, 11, 12)]))
    write_metadata(root, {"WEEK": ["1wk"], "MONTH": ["1mo"]})
    result = report(root)
    week = ticker(result, "1wk", "WEEK")
    assert spans(week) == [(date(2025, 12, 8), date(2025, 12, 8), 1)]
    assert (week.expected_sessions, week.present_sessions) == (7, 6)
    month = ticker(result, "1mo", "MONTH")
    assert month.complete and month.expected_sessions == 4 and month.off_session_days == []


def test_sessions_are_cached_in_the_workspace(tmp_path: Path):
    direct = sessions("XNYS", START, END)
    cached = cached_sessions(tmp_path, "XNYS", START, END)
    for name in ("dates", "opens", "closes"):
        assert np.array_equal(getattr(direct, name), getattr(cached, name))
    path = tmp_path / CALENDAR_DIR / "XNYS.arrow"
    built = path.stat().st_mtime_ns
    narrower = cached_sessions(tmp_path, "XNYS", EARLY_CLOSE, CHRISTMAS_EVE)
    assert narrower.dates.astype(date).tolist() == session_days(EARLY_CLOSE, CHRISTMAS_EVE)
    assert path.stat().st_mtime_ns == built  # served from the file
    wider = cached_sessions(tmp_path, "XNYS", date(2023, 1, 3), END)
    assert wider.dates[0] == np.datetime64("2023-01-03") and path.stat().st_mtime_ns != built
    path.write_bytes(b"garbage")
    assert len(cached_sessions(tmp_path, "XNYS", START, END)) == len(ALL)


def test_the_demo_injections_are_found_exactly(tmp_path: Path):
    demo = build_demo(tmp_path / "demo", tickers=20, end=date(2025, 12, 5), years_1d=2, years_1h=1)
    result = report(demo.root)
    expected_gaps: dict[tuple[str, str], set[date]] = {}
    for injection in demo.injections:
        if injection.kind == "gap":
            expected_gaps.setdefault((injection.interval, injection.ticker), set()).update(
                injection.dates
            )
    found_gaps = {}
    for interval, result_iv in result.intervals.items():
        for entry in result_iv.tickers:
            for gap in entry.gaps:
                days = session_days(gap.start, gap.end)
                assert len(days) == gap.sessions
                found_gaps.setdefault((interval, entry.ticker), set()).update(days)
    assert found_gaps == expected_gaps
    for injection in demo.injections:
        if injection.kind == "late_listing":
            for interval in ("1d", "1h"):
                assert ticker(result, interval, injection.ticker).first == injection.dates[0]
        elif injection.kind == "delisted":
            for interval in ("1d", "1h"):
                assert ticker(result, interval, injection.ticker).last == injection.dates[0]
        elif injection.kind in ("truncated", "zero_byte"):
            entry = ticker(result, injection.interval, injection.ticker)
            assert [u.path for u in entry.unreadable] == [
                injection.path.relative_to(demo.root).as_posix()
            ]
        elif injection.kind in ("duplicates", "extra_column", "temp_file"):
            assert ticker(result, injection.interval, injection.ticker).complete
    assert sum(iv.unreadable_files for iv in result.intervals.values()) == 2
