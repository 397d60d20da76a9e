"""The disk breakdown against ``du``, and the growth history and its projection."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import date
from pathlib import Path

import pytest
from conftest import run_cli

from core.config import Watermarks
from core.disk import history as disk_history
from core.disk.usage import Filesystem, disk_usage, mount_point
from core.disk.watermarks import DiskStatus
from core.integrity import quarantine
from core.safety import run_lock
from core.store.demo import build_demo
from core.store.workspace import Workspace

GiB = 1024**3
DAY = 86400.0


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("disk") / "ws"
    build_demo(root, tickers=14, seed=5, end=date(2025, 12, 5), years_1d=2, years_1h=1)
    return root


def du(path: Path, *options: str) -> int:
    if shutil.which("du") is None:
        pytest.skip("du is not installed")
    result = subprocess.run(
        ["du", "-s", "-B1", *options, str(path)], capture_output=True, text=True, check=True
    )
    return int(result.stdout.split()[0])


def test_breakdown_sums_to_du(demo_root: Path, tmp_path: Path):
    root = tmp_path / "ws"
    shutil.copytree(demo_root, root)
    run_cli("-w", str(root), "integrity")  # .parqctl/index and the row-check cache
    with run_lock.hold(root, "test") as lock:
        quarantine.add(root, root / "stocks_1d/AAPL.parquet", "test", lock=lock)
    staging = root / ".parqctl" / "staging" / "run-1"
    staging.mkdir(parents=True)
    (staging / "data.parquet").write_bytes(os.urandom(100_000))
    # A hard link is counted once, as du counts it (in whichever bucket is walked first).
    os.link(root / "stocks_1m/MSFT.parquet", staging / "linked.parquet")
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "README").write_text("not a dataset\n")

    usage = disk_usage(Workspace.open(root))
    labels = {b.label: b for b in usage.buckets}
    assert {"legacy 1d", "legacy 1h", "legacy 1m", "quarantine", "staging", "index"} <= set(labels)
    assert {"parqctl state", "other"} <= set(labels)
    assert usage.total_bytes == sum(b.bytes for b in usage.buckets)
    assert abs(usage.total_bytes - du(root)) <= 0.01 * du(root)
    assert abs(usage.total_apparent_bytes - du(root, "--apparent-size")) <= 0.01 * du(root)
    for label in ("legacy 1d", "legacy 1h", "quarantine", "index"):
        assert labels[label].bytes == du(labels[label].path), label
    assert labels["quarantine"].files == 2  # the file and its manifest
    [filesystem] = usage.filesystems
    assert filesystem.mount == mount_point(root)
    assert filesystem.workspace_bytes == usage.total_bytes


def test_cli_disk_records_a_sample_per_run(demo_root: Path, tmp_path: Path):
    root = tmp_path / "ws"
    shutil.copytree(demo_root, root)
    for _ in range(2):
        result = run_cli("-w", str(root), "disk", "--json")
        assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sum(b["bytes"] for b in report["breakdown"]) == report["bytes"]
    assert report["filesystems"][0]["projection"]["samples"] == 2
    run_cli("-w", str(root), "health")
    samples = disk_history.load(root)
    assert [s.command for s in samples] == ["disk", "disk", "health"]
    assert samples[-1].filesystems[0].mount == report["filesystems"][0]["mount"]
    human = run_cli("-w", str(root), "disk")
    assert "legacy 1h" in human.stdout and "growth" in human.stdout


def filesystem(used: float, total: float = 100 * GiB) -> Filesystem:
    status = DiskStatus(Path("/data"), int(total), int(used), int(total - used), Watermarks())
    return Filesystem(Path("/data"), status, ("workspace",))


def record_series(root: Path, now: float, used_by_day: dict[float, float]) -> None:
    for days_ago, used in used_by_day.items():
        disk_history.record(root, [filesystem(used)], "test", now=now - days_ago * DAY)


def test_growth_and_projected_date(tmp_path: Path):
    now = time.time()
    record_series(tmp_path, now, {10 - i: (40 + i) * GiB for i in range(11)})
    history = disk_history.load(tmp_path)
    projection = disk_history.project(history, filesystem(50 * GiB), now)
    assert projection.samples == 11 and projection.span_days == pytest.approx(10)
    assert projection.growth_bytes_per_day == pytest.approx(GiB)
    assert projection.days_to_critical == pytest.approx(40)  # 50 -> 90 GiB at 1 GiB a day
    assert projection.critical_on == date.fromtimestamp(now + 40 * DAY)
    # Samples older than the 30-day window do not count.
    record_series(tmp_path, now, {45: 0.0})
    assert (
        disk_history.project(disk_history.load(tmp_path), filesystem(50 * GiB), now).samples == 11
    )


def test_projection_without_a_date(tmp_path: Path):
    now = time.time()
    disk_history.record(tmp_path, [filesystem(50 * GiB)], "test", now=now)
    one = disk_history.project(disk_history.load(tmp_path), filesystem(50 * GiB), now)
    assert (one.critical_on, one.growth_bytes_per_day) == (None, None)
    assert one.note.startswith("not enough history")
    record_series(tmp_path, now, {3: 52 * GiB, 2: 51 * GiB})
    shrinking = disk_history.project(disk_history.load(tmp_path), filesystem(50 * GiB), now)
    assert shrinking.note == "not growing" and shrinking.growth_bytes_per_day < 0
    full = disk_history.project(disk_history.load(tmp_path), filesystem(95 * GiB), now)
    assert (full.days_to_critical, full.note) == (0.0, "critical watermark reached")


def test_torn_lines_are_skipped_and_history_is_thinned(tmp_path: Path, monkeypatch):
    now = time.time()
    (tmp_path / disk_history.HISTORY_FILE).parent.mkdir(parents=True)
    (tmp_path / disk_history.HISTORY_FILE).write_text('{"ts": 1, "filesy\n')
    monkeypatch.setattr(disk_history, "MAX_HISTORY_BYTES", 4096)
    # Every 6 hours for 20 days.
    record_series(tmp_path, now, {d / 4: 40 * GiB + d for d in range(80, -1, -1)})
    samples = disk_history.load(tmp_path)
    recent = [s for s in samples if s.ts >= now - 7 * DAY]
    older = [s for s in samples if s.ts < now - 7 * DAY]
    assert len(recent) >= 28  # none of the last week's samples is dropped
    days = [time.gmtime(s.ts)[:3] for s in older]
    assert len(days) == len(set(days))  # one sample a day before that
    assert samples[-1].ts == pytest.approx(now)
