"""``parqctl backfill``: the recoverable gaps, most urgent first, in as few requests as each
interval allows; confirmed-empty windows; pacing and backoff on an injected clock; stops
(no network, rate limits, Ctrl-C) that keep what was written; availability afterwards."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from fixtures.ingest_fakes import (
    FakeClock,
    FakeYahoo,
    fast_config,
    make_workspace,
    rate_limited,
    refused,
    session_times,
    unreachable,
)

from core.errors import LockLostError, MetadataError
from core.ingest import confirmed_empty, yahoo
from core.ingest.backfill import backfill, plan_backfill
from core.ingest.pacing import Pacer, TokenBucket
from core.ingest.runner import YahooUnavailableError
from core.ingest.settings import IngestSettings, load_settings
from core.jobs import CancelToken
from core.safety import audit
from core.store.workspace import Workspace
from tui.cli import main

TODAY = date(2025, 12, 15)
D = date.fromisoformat


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Gaps in four intervals, with known expiries (as of TODAY; 1m kept 30 days)."""
    root = tmp_path_factory.mktemp("backfill") / "ws"
    bars = {
        "1d": {"DAY": session_times("1d", "2023-01-03", "2025-12-12", ["2023-06-05", "2023-06-06", "2023-06-07", "2025-11-03"])},
        "1h": {"HRS": session_times("1h", "2023-06-01", "2025-12-12", ["2023-08-01", "2024-02-01", "2024-02-02", "2025-01-15"])},
        "5m": {"FIV": session_times("5m", "2025-10-01", "2025-12-12", ["2025-10-06", "2025-10-20", "2025-12-10"])},
        "1m": {"MIN": session_times("1m", "2025-11-17", "2025-12-12", ["2025-11-19", "2025-11-20", "2025-11-25", "2025-12-09"])},
    }  # fmt: skip
    make_workspace(root, bars, intervals=("1d", "1h", "5m", "1m"))
    fast_config(root, '[retention_days]\n"1m" = 30\n')
    return root


@pytest.fixture
def ws_root(built: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(built, root)
    return root


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """In this process, Yahoo itself is never asked: a test that forgot its fake fails."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("a test reached for the real Yahoo Finance")

    monkeypatch.setattr(yahoo.YFinanceSource, "history", refuse)


def pacer(clock=None, **settings) -> Pacer:
    return Pacer(IngestSettings(**settings), clock or FakeClock())


def windows(plan) -> list[tuple[str, str, date, date]]:
    return [(r.ticker, r.interval, r.start, r.end) for r in plan.requests]


# --- planning ------------------------------------------------------------------------------


def test_most_urgent_first_in_as_few_requests_as_each_interval_allows(ws_root):
    plan = plan_backfill(Workspace.open(ws_root), today=TODAY)
    assert windows(plan) == [
        ("FIV", "5m", D("2025-10-20"), D("2025-12-11")),  # both gaps, 52 days <= 60; until 12-19
        ("MIN", "1m", D("2025-11-19"), D("2025-11-26")),  # 1m: 7 days a request; until 12-20
        ("MIN", "1m", D("2025-12-09"), D("2025-12-10")),  # until 2026-01-08
        ("HRS", "1h", D("2024-02-01"), D("2025-01-16")),  # 350 days <= 730; until 2026-02-01
        ("DAY", "1d", D("2023-06-05"), D("2025-11-04")),  # daily: one request; never expires
    ]
    urgency = [r.urgency for r in plan.requests]
    assert urgency == [D("2025-12-19"), D("2025-12-20"), D("2026-01-08"), D("2026-02-01"), None]
    lost = {(s.ticker, s.start) for s in plan.skipped if s.why == "lost"}
    assert lost == {("HRS", D("2023-08-01")), ("FIV", D("2025-10-06"))}
    assert plan.sessions == 2 + 3 + 1 + 3 + 4
    capped = plan_backfill(Workspace.open(ws_root), today=TODAY, max_requests=2)
    assert windows(capped) == windows(plan)[:2] and len(capped.left_out) == 3


def test_a_gap_longer_than_one_window_is_cut(ws_root):
    from core.ingest.backfill import _pack
    from core.ingest.runner import Target

    long = Target(D("2025-11-17"), D("2025-12-05"), 15, D("2025-12-20"))
    requests = _pack("MIN", "1m", [long], "XNYS")
    assert [(r.start, r.end) for r in requests] == [
        (D("2025-11-17"), D("2025-11-24")),
        (D("2025-11-24"), D("2025-12-01")),
        (D("2025-12-01"), D("2025-12-06")),
    ]
    assert sum(t.sessions for r in requests for t in r.targets) == 14  # 11-27 is Thanksgiving


# --- running -------------------------------------------------------------------------------


def test_backfill_fills_the_gaps_and_availability_reports_them_closed(ws_root, capsys):
    ws = Workspace.open(ws_root)
    source = FakeYahoo()
    result = backfill(ws, plan_backfill(ws, today=TODAY), source, pacer())
    assert [(c.ticker, c.start, c.end) for c in source.calls] == [
        (t, s, e) for t, _, s, e in windows(result.plan)
    ]
    after = {(s.ticker, s.interval): (s.missing_before, s.missing_after) for s in result.summaries}
    assert after == {
        ("FIV", "5m"): (3, 1), ("MIN", "1m"): (4, 0), ("HRS", "1h"): (4, 1), ("DAY", "1d"): (4, 0),
    }  # fmt: skip
    added = {s.ticker: s.rows_added for s in result.summaries}
    assert added == {"FIV": 2 * 78, "MIN": 4 * 390, "HRS": 3 * 7, "DAY": 4}
    # only the bars on the missing days were kept; the rest of each answer was stored already
    assert all(u.merge.identical == 0 and u.merge.differing == 0 for u in result.run.units)
    # the CLI's availability, from the index backfill refreshed
    assert (
        main(["-w", str(ws_root), "availability", "-t", "DAY", "MIN", "--today", "2025-12-15"]) == 0
    )
    out = capsys.readouterr().out
    assert "  gap  " not in out
    day_line = next(line for line in out.splitlines() if line.startswith("DAY 1d (legacy, XNYS)"))
    assert day_line.endswith(", 0 partial, 0 missing")
    records = [r for r in audit.read(ws_root) if r["action"] == "ingest.backfill"]
    assert records[-1]["result"] == "ok" and records[-1]["rows_added"] == sum(added.values())


def test_a_window_yahoo_has_no_bars_for_is_recorded_shown_and_not_asked_again(ws_root, capsys):
    halted = {("DAY", "1d", D(d)) for d in ("2023-06-05", "2023-06-06", "2023-06-07")}
    ws = Workspace.open(ws_root)
    source = FakeYahoo(empty=halted)
    result = backfill(ws, plan_backfill(ws, tickers=["DAY"], today=TODAY), source, pacer())
    unit = result.run.units[0]
    assert [(t.start, t.end) for t in unit.empty] == [(D("2023-06-05"), D("2023-06-07"))]
    assert [(t.start, t.end) for t in unit.found] == [(D("2025-11-03"), D("2025-11-03"))]
    records = confirmed_empty.load(ws_root)
    assert [(w.ticker, w.start, w.end, w.sessions, w.asked) for w in records] == [
        ("DAY", D("2023-06-05"), D("2023-06-07"), 3, TODAY)
    ]
    stored = json.loads((ws_root / ".parqctl/ingest/confirmed_empty.json").read_text())
    assert stored["windows"][0]["asked"] == "2025-12-15"
    # availability shows it as such
    assert main(["-w", str(ws_root), "availability", "-t", "DAY", "--today", "2025-12-15"]) == 1
    assert (
        "confirmed  1d DAY 2023-06-05..2023-06-07: 3 sessions Yahoo has no bars for "
        "(asked 2025-12-15; `parqctl backfill --recheck` asks again)"
    ) in capsys.readouterr().out
    main(["-w", str(ws_root), "availability", "-t", "DAY", "--today", "2025-12-15", "--json"])
    shown = json.loads(capsys.readouterr().out)["confirmed_empty"]
    assert shown == [
        {"interval": "1d", "ticker": "DAY", "gap": {"start": "2023-06-05", "end": "2023-06-07"},
         "start": "2023-06-05", "end": "2023-06-07", "sessions": 3, "asked": "2025-12-15"}
    ]  # fmt: skip
    # the next run skips it, and says why
    again = plan_backfill(Workspace.open(ws_root), tickers=["DAY"], today=TODAY)
    assert again.requests == []
    assert again.skipped[0].why.startswith("confirmed empty (asked 2025-12-15")
    assert main(["-w", str(ws_root), "backfill", "-t", "DAY", "--today", "2025-12-15"]) == 0
    assert "confirmed empty (asked 2025-12-15; --recheck asks again)" in capsys.readouterr().out
    # --recheck asks again; bars found now forget the record
    rechecked = plan_backfill(Workspace.open(ws_root), tickers=["DAY"], today=TODAY, recheck=True)
    assert windows(rechecked) == [("DAY", "1d", D("2023-06-05"), D("2023-06-08"))]
    backfill(Workspace.open(ws_root), rechecked, FakeYahoo(), pacer())
    assert confirmed_empty.load(ws_root) == []


def test_rate_limited_retries_with_exponential_backoff_and_jitter_on_the_clock(ws_root):
    clock = FakeClock()
    said: list[str] = []
    ws = Workspace.open(ws_root)
    plan = plan_backfill(ws, tickers=["DAY", "HRS"], today=TODAY)
    source = FakeYahoo(script={2: rate_limited(), 3: rate_limited()})
    paced = Pacer(IngestSettings(backoff_seconds=10), clock, on_wait=said.append)
    result = backfill(ws, plan, source, paced)
    assert result.run.requests == 2 and len(source.calls) == 4 and not result.run.stopped
    assert 5 <= clock.sleeps[0] <= 10 and 10 <= clock.sleeps[1] <= 20
    assert said == [
        f"rate limited; retrying in {clock.sleeps[0]:.0f} s (attempt 2/5)",
        f"rate limited; retrying in {clock.sleeps[1]:.0f} s (attempt 3/5)",
    ]
    assert all(s.missing_after in (0, 1) for s in result.summaries)


def test_backoff_doubles_up_to_its_ceiling_and_jitters_between_half_and_all():
    p = pacer(backoff_seconds=15, max_backoff_seconds=100)
    for attempt, full in ((1, 15), (2, 30), (3, 60), (4, 100), (7, 100)):
        waits = {p.backoff(attempt) for _ in range(50)}
        assert all(full / 2 <= w <= full for w in waits) and len(waits) > 1


def test_the_token_bucket_spaces_requests_after_the_burst():
    clock = FakeClock()
    bucket = TokenBucket(rate=0.5, capacity=2, clock=clock)
    waits = [bucket.take() for _ in range(5)]
    assert waits == [0, 0, 2.0, 2.0, 2.0] and clock.sleeps == [2.0, 2.0, 2.0]
    clock.now += 10  # idle: the bucket fills up to its capacity again, no more
    assert [bucket.take() for _ in range(3)] == [0, 0, 2.0]


def test_ingest_settings_from_config(tmp_path):
    root = make_workspace(tmp_path / "ws")
    fast_config(root, "")
    (root / ".parqctl/config.toml").write_text("[ingest]\nrequests_per_minute = 12\nburst = 3\n")
    assert load_settings(root) == IngestSettings(requests_per_minute=12, burst=3)
    (root / ".parqctl/config.toml").write_text("[ingest]\nburst = 0.5\n")
    with pytest.raises(MetadataError, match=r"ingest\.burst must be a whole number"):
        load_settings(root)


def test_still_rate_limited_stops_keeping_what_was_written(ws_root, capsys):
    ws = Workspace.open(ws_root)
    plan = plan_backfill(ws, tickers=["DAY", "HRS"], today=TODAY)
    source = FakeYahoo(script={2: rate_limited(), 3: rate_limited()})
    result = backfill(ws, plan, source, pacer(max_attempts=2))
    assert result.run.stopped.startswith("Yahoo Finance still answers 'too many requests'")
    assert result.run.requests == 1 and len(source.calls) == 3
    assert [(u.ticker, u.written) for u in result.run.units] == [("HRS", True)]
    assert [(s.ticker, s.missing_after) for s in result.summaries] == [("HRS", 1)]
    # before anything was written, the same is a refusal that changed nothing
    with pytest.raises(YahooUnavailableError, match="nothing was changed"):
        backfill(Workspace.open(ws_root), plan_backfill(Workspace.open(ws_root), tickers=["DAY"], today=TODAY),
                 FakeYahoo(script={1: rate_limited(), 2: rate_limited()}), pacer(max_attempts=2))  # fmt: skip


def test_no_network_before_the_first_answer_changes_nothing_later_keeps_what_was_written(ws_root):
    from conftest import tree_digest

    ws = Workspace.open(ws_root)
    plan = plan_backfill(ws, today=TODAY)  # brings parqctl's index up to date
    before = tree_digest(ws_root)
    with pytest.raises(YahooUnavailableError, match=r"^cannot reach Yahoo Finance \(curl"):
        backfill(ws, plan, FakeYahoo(script={1: unreachable()}), pacer())
    assert tree_digest(ws_root) == before
    result = backfill(ws, plan, FakeYahoo(script={3: unreachable()}), pacer())
    assert result.run.stopped.startswith("cannot reach Yahoo Finance")
    assert [u.written for u in result.run.units] == [True, True]
    assert result.run.requests == 2 and result.run.requests_planned == 5


def test_yahoo_refusing_a_window_is_reported_not_recorded_as_empty(ws_root):
    ws = Workspace.open(ws_root)
    plan = plan_backfill(ws, tickers=["MIN"], today=TODAY)
    result = backfill(ws, plan, FakeYahoo(script={1: refused()}), pacer())
    assert result.run.units[0].refused and not result.run.units[0].empty
    assert confirmed_empty.load(ws_root) == []


def test_cancel_stops_between_requests_with_what_was_fetched_written(ws_root):
    token = CancelToken()
    ws = Workspace.open(ws_root)
    plan = plan_backfill(ws, today=TODAY)
    source = FakeYahoo(script={2: token.cancel})  # Ctrl-C while the second request runs
    result = backfill(ws, plan, source, Pacer(IngestSettings(), FakeClock(), token=token))
    assert result.run.cancelled and len(source.calls) == 2
    assert [u.written for u in result.run.units] == [True, True]
    backfills = [r for r in audit.read(ws_root) if r["action"] == "ingest.backfill"]
    assert backfills[-1]["result"] == "cancelled" and backfills[-1]["requests"] == 2


def test_dry_run_downloads_and_writes_nothing(ws_root):
    from conftest import tree_digest

    ws = Workspace.open(ws_root)
    plan = plan_backfill(ws, today=TODAY)
    before = tree_digest(ws_root)
    result = backfill(ws, plan, FakeYahoo(), pacer(), dry_run=True)
    assert result.run.added == 2 * 78 + 4 * 390 + 3 * 7 + 4
    assert tree_digest(ws_root) == before


def test_cli_backfill_plan_summary_and_json(ws_root, monkeypatch, capsys):
    monkeypatch.setattr(yahoo, "default_source", lambda: FakeYahoo())
    argv = ["-w", str(ws_root), "backfill", "--today", "2025-12-15", "-i", "1h", "5m"]
    assert main([*argv, "--dry-run", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["dry_run"] and answer["rows_added"] == 2 * 78 + 3 * 7
    assert [r["ticker"] for r in answer["plan"]["requests"]] == ["FIV", "HRS"]
    assert main(argv) == 0  # every gap asked for is closed; the lost ones were not asked for
    out = capsys.readouterr().out
    assert "backfill: 2 requests for 5 missing sessions of 2 ticker/intervals" in out
    assert (
        "  FIV        5m   2025-10-20                 1 session   recoverable until 2025-12-19"
        in out
    )
    assert "skipped  HRS        1h   2023-08-01                 1 session   lost" in out
    table = out[out.index("ticker  interval") :].splitlines()
    assert table[1].split() == ["FIV", "5m", "1", "2", "156", "0", "3", "1"]
    assert table[2].split() == ["HRS", "1h", "1", "3", "21", "0", "4", "1"]
    assert "2 of 2 requests answered" in out


def test_a_lock_taken_mid_run_stops_at_the_next_file_with_what_was_written(ws_root):
    def collector_cron_removes_the_lock():  # what its --non-interactive update does
        shutil.rmtree(ws_root / ".run_lock")

    ws = Workspace.open(ws_root)
    plan = plan_backfill(ws, today=TODAY)
    source = FakeYahoo(script={2: collector_cron_removes_the_lock})
    with pytest.raises(LockLostError, match="was removed by another program"):
        backfill(ws, plan, source, pacer())
    assert len(source.calls) == 2  # the second answer was never written
    records = audit.read(ws_root)
    assert [r["action"] for r in records if r["action"] in ("lock.lost", "ingest.backfill")] == [
        "lock.lost",
        "ingest.backfill",
    ]
    assert records[-1]["result"].startswith("failed: the run lock was removed")
    assert records[-1]["units"][0]["added"] == 2 * 78  # the first window: written, kept
