"""Freshness (core.availability.freshness): the newest bar of each interval against the
last closed session, in health's text, JSON, verdict and Prometheus textfile."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.availability.calendars import time_zone
from core.availability.freshness import EXCHANGE_TIMEZONES
from core.availability.index import refresh_index
from core.errors import DataError, MetadataError
from core.health import MigrationProgress, Verdict, health_report
from core.monitoring import write_textfile
from core.store.bars import read_bar_file, write_bar_file
from core.store.demo import build_demo
from core.store.workspace import Workspace
from tui.commands.health import render

END = date(2025, 12, 5)  # a Friday; the week before it: 2025-12-01 .. 2025-12-05
LAST_WEEK = datetime(2025, 12, 1)
AFTER_CLOSE = datetime(2025, 12, 5, 21, 30, tzinfo=UTC).timestamp()  # 16:30 in New York
BEFORE_OPEN = datetime(2025, 12, 5, 14, 0, tzinfo=UTC).timestamp()  # 09:00 in New York


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fresh") / "ws"
    build_demo(root, tickers=14, seed=3, end=END, years_1d=2, years_1h=1)
    refresh_index(root)
    return root


@pytest.fixture
def demo(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(template, root, symlinks=True)
    return root


def delete_bars_from(root: Path, interval: str, cutoff: datetime) -> int:
    """Rewrite every readable bar file of the interval without its bars from ``cutoff``
    on; returns the rows removed."""
    removed = 0
    for path in sorted((root / f"stocks_{interval}").glob("*.parquet")):
        try:
            table = read_bar_file(path)
        except DataError:
            continue  # the demo's broken files stay as they are
        kept = table.filter(pc.less(table["date"], pa.scalar(cutoff, pa.timestamp("ns"))))
        removed += table.num_rows - kept.num_rows
        write_bar_file(path, kept, durable=False)
    return removed


def by_interval(report) -> dict:
    return {iv.interval: iv for iv in report.freshness.intervals}


def test_up_to_date_then_stalled_after_the_last_week_of_bars_is_deleted(demo: Path):
    report = health_report(Workspace.open(demo), now=AFTER_CLOSE)
    fresh = by_interval(report)
    assert fresh["1d"].summary() == "data as of 2025-12-05, up to date"
    assert fresh["1h"].summary() == "data as of 2025-12-05 15:30, up to date"
    assert not report.freshness.stalled
    assert not any("stalled" in p.text for p in report.problems)

    assert delete_bars_from(demo, "1h", LAST_WEEK) > 0
    report = health_report(Workspace.open(demo), now=AFTER_CLOSE)  # refreshes the index
    fresh = by_interval(report)
    hourly = fresh["1h"]
    # Friday's session has closed: Monday to Friday have no bars.
    assert (hourly.sessions_behind, hourly.last_session) == (5, END)
    assert hourly.newest_bar == datetime(2025, 11, 28, 12, 30)  # the early close after Thanksgiving
    assert hourly.stalled and fresh["1d"].sessions_behind == 0
    summary = hourly.summary()
    assert summary.startswith("5 sessions behind (newest bar 2025-11-28 12:30")
    assert "the collector has not written since" in summary
    assert report.verdict >= Verdict.WARNING
    stalled = [p for p in report.problems if p.text.startswith("collector stalled? 1h")]
    assert len(stalled) == 1 and "stalled_after_sessions" in stalled[0].text
    assert "from 2 session(s) behind" in stalled[0].text

    text = "\n".join(render(report))
    assert "freshness  1h   5 sessions behind" in text
    assert "freshness  1d   data as of 2025-12-05, up to date" in text
    as_json = report.as_dict()["freshness"]
    assert as_json["stalled_after_sessions"] == 2
    hourly_json = next(iv for iv in as_json["intervals"] if iv["interval"] == "1h")
    assert hourly_json["sessions_behind"] == 5 and hourly_json["stalled"] is True
    assert hourly_json["newest_bar"] == "2025-11-28T12:30:00"

    # Before Friday's open, Friday is not yet a session that should have bars.
    early = by_interval(health_report(Workspace.open(demo), now=BEFORE_OPEN))["1h"]
    assert (early.sessions_behind, early.last_session) == (4, date(2025, 12, 4))


def test_an_older_summary_gives_the_same_freshness_and_is_written_again(demo: Path):
    from core.availability import freshness as fresh
    from core.availability.index import INDEX_DIR, SUMMARY_FILE, load_summary

    ws = Workspace.open(demo)
    from_summary = fresh.freshness(ws, now=AFTER_CLOSE)
    path = demo / INDEX_DIR / SUMMARY_FILE
    current = json.loads(path.read_text())
    older = {k: v for k, v in current.items() if k not in ("venue", "written_ns")}
    path.write_text(json.dumps(older))
    assert load_summary(demo) is None and load_summary(demo, ("dataset", "files")) is not None
    assert fresh.freshness(ws, now=AFTER_CLOSE) == from_summary  # read from the records
    refresh_index(demo)  # nothing changed: the summary is brought up to date all the same
    assert json.loads(path.read_text()) == current


def test_the_threshold_is_a_setting(demo: Path):
    delete_bars_from(demo, "1h", LAST_WEEK)
    (demo / ".parqctl" / "config.toml").write_text("[freshness]\nstalled_after_sessions = 6\n")
    report = health_report(Workspace.open(demo), now=AFTER_CLOSE)
    hourly = by_interval(report)["1h"]
    assert hourly.sessions_behind == 5 and not hourly.stalled
    assert not any(p.text.startswith("collector stalled?") for p in report.problems)

    (demo / ".parqctl" / "config.toml").write_text("[freshness]\nstalled_after_sessions = 0\n")
    with pytest.raises(MetadataError, match="stalled_after_sessions must be a whole number"):
        health_report(Workspace.open(demo), now=AFTER_CLOSE)


def test_sessions_behind_is_a_prometheus_gauge(demo: Path, tmp_path: Path):
    delete_bars_from(demo, "1h", LAST_WEEK)
    report = health_report(Workspace.open(demo), now=AFTER_CLOSE)
    prom = tmp_path / "parqctl.prom"
    write_textfile(prom, report)
    samples = {
        (s.name, s.labels.get("interval")): s.value
        for family in text_string_to_metric_families(prom.read_text())
        for s in family.samples
    }
    assert samples[("parqctl_freshness_sessions_behind", "1h")] == 5
    assert samples[("parqctl_freshness_sessions_behind", "1d")] == 0
    assert samples[("parqctl_health_verdict", None)] >= Verdict.WARNING


def test_no_index_no_freshness(demo: Path, tmp_path: Path):
    shutil.rmtree(demo / ".parqctl" / "index")
    report = health_report(Workspace.open(demo), now=AFTER_CLOSE)
    assert report.freshness is None and report.freshness_error is None
    assert "freshness  not computed: no file index yet" in "\n".join(render(report))
    prom = tmp_path / "parqctl.prom"
    write_textfile(prom, report)  # "not known" is not exported as "up to date"
    assert "parqctl_freshness_sessions_behind{" not in prom.read_text()


def test_the_known_time_zones_are_exchange_calendars_own():
    for calendar, zone in EXCHANGE_TIMEZONES.items():
        assert time_zone(calendar) == zone


def test_migration_percent_reaches_100_only_when_all_are_done():
    assert MigrationProgress("us:yahoo", "1d", "migrating", 299, 300, failed=1).percent == 99
    assert MigrationProgress("us:yahoo", "1d", "migrating", 1, 300).percent == 0
    assert MigrationProgress("us:yahoo", "1d", "complete", 300, 300).percent == 100
    assert MigrationProgress("us:yahoo", "1d", "pending", 0, 0).percent == 0


async def test_the_dashboard_says_how_far_behind_after_the_last_week_is_deleted(demo: Path):
    from console_support import settle_health, status

    from tui.app import ParqctlApp

    assert delete_bars_from(demo, "1h", LAST_WEEK) > 0
    app = ParqctlApp(Workspace.open(demo), health_refresh_s=None, clock=lambda: AFTER_CLOSE)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle_health(pilot)
        intervals = status(app, "interval")
        hourly = next(line for line in intervals.splitlines() if " 1h " in f" {line} ")
        assert "5 sessions behind" in hourly, intervals
        daily = next(line for line in intervals.splitlines() if " 1d " in f" {line} ")
        assert "up to date" in daily, intervals
        assert "collector stalled? 1h" in status(app, "health")
