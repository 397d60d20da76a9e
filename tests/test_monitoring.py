"""``parqctl health --prometheus``: a textfile node_exporter can read, and the verdict."""

from __future__ import annotations

import json
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import run_cli
from prometheus_client.parser import text_string_to_metric_families

from core.disk import history as disk_history
from core.disk.usage import Filesystem, workspace_filesystems
from core.disk.watermarks import DiskStatus
from core.health import Verdict, health_report
from core.integrity import quarantine
from core.safety import run_lock
from core.safety.atomic import write_json
from core.store.demo import DemoReport, build_demo
from core.store.workspace import Workspace

EXPECTED_METRICS = {
    "parqctl_health_verdict",
    "parqctl_last_check_timestamp_seconds",
    "parqctl_disk_used_ratio",
    "parqctl_disk_watermark_level",
    "parqctl_disk_watermark_ratio",
    "parqctl_lock_held",
    "parqctl_lock_stale",
    "parqctl_lock_age_seconds",
    "parqctl_quarantine_files",
    "parqctl_quarantine_bytes",
    "parqctl_integrity_errors",
    "parqctl_integrity_warnings",
    "parqctl_integrity_last_check_timestamp_seconds",
    "parqctl_migration_progress_ratio",
    "parqctl_gap_tickers",
    "parqctl_gap_missing_sessions",
    "parqctl_gap_lost_sessions",
    "parqctl_gap_expiring_sessions",
}


def plan(venues: list[tuple[str, str, str, int, int]]) -> dict:
    """migration_plan.json as the collector writes it, with these interval states."""
    records: dict[str, dict] = {}
    for venue, interval, status, completed, total in venues:
        records.setdefault(venue, {})[interval] = {
            "legacy_path": f"stocks_{interval}",
            "partition_path": f"data/us/yahoo/stocks_{interval}",
            "status": status,
            "jobs": {"total": total, "completed": completed},
        }
    return {
        "schema_version": 1,
        "venues": [
            {"id": venue, "market": "US", "source": "yahoo", "intervals": intervals}
            for venue, intervals in records.items()
        ],
    }


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a textfile by (name, labels without ``workspace``)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "workspace"))
            found[sample.name, labels] = sample.value
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoReport:
    root = tmp_path_factory.mktemp("monitoring") / "ws"
    return build_demo(
        root, tickers=14, seed=9, end=date(2025, 12, 5), years_1d=2, years_1h=1, stale_lock=True
    )


@pytest.fixture
def demo_root(demo: DemoReport) -> Path:
    return demo.root


def test_textfile_parses_and_carries_every_metric(demo_root: Path, tmp_path: Path):
    root = tmp_path / "ws"
    shutil.copytree(demo_root, root)
    checked = json.loads(run_cli("-w", str(root), "integrity", "--json").stdout)
    plan_states = [("us:yahoo", "1d", "migrating", 1, 4), ("us:yahoo", "1h", "complete", 0, 0)]
    write_json(root / "migration_plan.json", plan(plan_states))
    before = time.time()
    output = tmp_path / "parqctl.prom"
    result = run_cli("-w", str(root), "health", "--prometheus", str(output), "--json")
    report = json.loads(result.stdout)

    text = output.read_text()
    assert not list(tmp_path.glob("parqctl.prom.*"))  # the temp file was renamed into place
    families = {f.name: f for f in text_string_to_metric_families(text)}
    names = {s.name for f in families.values() for s in f.samples}
    assert names >= EXPECTED_METRICS
    for family in families.values():
        assert all(s.labels["workspace"] == str(root) for s in family.samples)
    values = samples(text)
    mount = report["filesystems"][0]["mount"]
    assert values["parqctl_health_verdict", ()] == result.returncode == Verdict.CRITICAL
    assert values["parqctl_last_check_timestamp_seconds", ()] >= before
    assert values["parqctl_lock_held", ()] == values["parqctl_lock_stale", ()] == 1
    assert values["parqctl_lock_age_seconds", ()] >= 3600
    assert values["parqctl_integrity_errors", ()] == checked["open_errors"] == 3
    assert values["parqctl_integrity_warnings", ()] == checked["counts"]["warning"]
    assert values["parqctl_quarantine_files", ()] == values["parqctl_quarantine_bytes", ()] == 0
    ratio = values["parqctl_disk_used_ratio", (("mount", mount),)]
    assert ratio == pytest.approx(report["filesystems"][0]["percent_used"] / 100, abs=1e-3)
    assert values["parqctl_disk_watermark_ratio", (("level", "critical"), ("mount", mount))] == 0.9
    # The demo's gaps: a 15-session run and 3 single sessions in one ticker per interval.
    for interval in ("1d", "1h"):
        assert values["parqctl_gap_tickers", (("interval", interval),)] == 1
        assert values["parqctl_gap_missing_sessions", (("interval", interval),)] == 18
    progress = {
        labels: value
        for (name, labels), value in values.items()
        if name == "parqctl_migration_progress_ratio"
    }
    assert progress == {
        (("interval", "1d"), ("venue", "us:yahoo")): 0.25,
        (("interval", "1h"), ("venue", "us:yahoo")): 1.0,
    }


def test_quarantine_and_lock_changes_show_up(demo_root: Path, tmp_path: Path):
    root = tmp_path / "ws"
    shutil.copytree(demo_root, root)
    assert run_cli("-w", str(root), "lock", "break", "--yes").returncode == 0
    with run_lock.hold(root, "test") as lock:
        entry = quarantine.add(root, root / "stocks_1d/AAPL.parquet", "t", lock=lock)
    output = tmp_path / "parqctl.prom"
    assert run_cli("-w", str(root), "health", "--prometheus", str(output)).returncode == 1
    values = samples(output.read_text())
    assert values["parqctl_quarantine_files", ()] == 1
    assert values["parqctl_quarantine_bytes", ()] == entry.size
    assert values["parqctl_lock_held", ()] == values["parqctl_lock_stale", ()] == 0
    # Never checked: no error count is exported, rather than a reassuring zero.
    assert values["parqctl_integrity_last_check_timestamp_seconds", ()] == 0
    assert ("parqctl_integrity_errors", ()) not in values


def test_an_unreadable_workspace_exports_unknown(tmp_path: Path):
    output = tmp_path / "parqctl.prom"
    result = run_cli("-w", str(tmp_path / "missing"), "health", "--prometheus", str(output))
    assert result.returncode == 6  # not a workspace: the exit code every command gives it
    assert samples(output.read_text())["parqctl_health_verdict", ()] == Verdict.UNKNOWN
    missing_dir = run_cli(
        "-w", str(tmp_path), "health", "--prometheus", str(tmp_path / "no/x.prom")
    )
    assert missing_dir.returncode == 2 and "is not a directory" in missing_dir.stderr


def test_verdict_takes_in_quarantine_and_disk_projection(workspace: Path):
    ws = Workspace.open(workspace)
    assert health_report(ws).verdict == Verdict.OK
    # A move cut short (manifest says "moving", nothing moved yet) is worth a warning.
    with run_lock.hold(workspace, "test") as lock:
        entry = quarantine.add(workspace, workspace / "stocks_1d/AAPL.parquet", "t", lock=lock)
    manifest = json.loads((entry.directory / quarantine.MANIFEST).read_text())
    write_json(entry.directory / quarantine.MANIFEST, {**manifest, "state": "moving"})
    report = health_report(Workspace.open(workspace))
    assert [p.text for p in report.problems if "interrupted" in p.text]
    assert report.verdict == Verdict.WARNING
    write_json(entry.directory / quarantine.MANIFEST, manifest)

    # Growth that reaches the critical watermark in about five days.
    [fs] = workspace_filesystems(ws)
    critical = fs.status.watermarks.critical / 100 * (fs.status.used + fs.status.free)
    per_day = (critical - fs.status.used) / 5
    now = time.time()
    for days_ago in (3, 2, 1):
        past = DiskStatus(
            fs.status.path,
            fs.status.total,
            int(fs.status.used - days_ago * per_day),
            int(fs.status.free + days_ago * per_day),
            fs.status.watermarks,
        )
        disk_history.record(
            workspace, [Filesystem(fs.mount, past, fs.labels)], "test", now=now - days_ago * 86400
        )
    report = health_report(Workspace.open(workspace))
    [warning] = [p for p in report.problems if "reaches the critical watermark" in p.text]
    assert warning.verdict == Verdict.WARNING
    assert report.projections[str(fs.mount)].days_to_critical == pytest.approx(5, abs=0.5)


def test_gaps_about_to_expire_are_counted_and_warned(demo: DemoReport, tmp_path: Path):
    root = tmp_path / "ws"
    shutil.copytree(demo.root, root)
    ws = Workspace.open(root)
    assert health_report(ws).gaps is None  # no file index yet: nothing to count from
    run_cli("-w", str(root), "integrity")  # builds the index
    [run] = [i for i in demo.injections if i.interval == "1h" and "run of" in i.detail]
    retention = ws.config.retention_days["1h"]
    # The run's first session leaves the window tomorrow; the rest stay a while.
    today = run.dates[0] + timedelta(days=retention - 1)
    report = health_report(Workspace.open(root), today=today)
    hourly = {iv.interval: iv for iv in report.gaps.intervals}["1h"]
    assert (hourly.missing_sessions, hourly.lost_sessions, hourly.expiring_sessions) == (18, 0, 1)
    [warning] = [p for p in report.problems if "expire within 2 days" in p.text]
    assert warning.verdict == Verdict.WARNING and "1 1h" in warning.text
    # Ten days on, the first sessions are lost and the next two days' worth expire.
    later = health_report(Workspace.open(root), today=today + timedelta(days=10))
    hourly = {iv.interval: iv for iv in later.gaps.intervals}["1h"]
    lost = sum(d < today + timedelta(days=10) - timedelta(days=retention) for d in run.dates)
    expiring = sum(
        today + timedelta(days=10 - retention) <= d < today + timedelta(days=12 - retention)
        for d in run.dates
    )
    assert (hourly.lost_sessions, hourly.expiring_sessions) == (lost, expiring)
    assert lost > 0 and expiring > 0
    daily = {iv.interval: iv for iv in later.gaps.intervals}["1d"]
    assert daily.missing_sessions == 18 and daily.expiring_sessions == 0  # 1d never expires
