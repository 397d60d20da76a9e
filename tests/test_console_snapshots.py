"""SVG snapshots of every console screen in both themes (pytest-textual-snapshot).

Made deterministic: the demo workspace comes from a seed, sits at a fixed path (the header
shows it) on a small tmpfs of its own (so the disk figures are real and the same on every
machine), and the clock, file times, time zone and host name are fixed. When a snapshot
changes, look at it (`pytest --snapshot-report=...` or the SVG itself) before accepting it
with `--snapshot-update`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import mounted_tmpfs
from console_support import settle, settle_health

from core.availability.index import refresh_index
from core.config import Watermarks
from core.disk import history as disk_history
from core.disk.usage import Filesystem
from core.disk.watermarks import DiskStatus
from core.integrity import quarantine
from core.safety import audit, run_lock
from core.safety.atomic import write_json
from core.store.demo import build_demo
from core.store.workspace import Workspace
from tui.app import ParqctlApp

# Friday 2025-12-05 after the New York close: the demo's last session is today.
NOW = datetime(2025, 12, 5, 21, 30, tzinfo=UTC).timestamp()
MOUNT = Path("/tmp/parqctl-console-snapshots")
ROOT = MOUNT / "ws"
TMPFS_BYTES = 8 * 1024 * 1024
HOST = "ops-console"
COLLECTOR_HOST = "collector-02"


@pytest.fixture(scope="module")
def snapshot_disk() -> Iterator[Path]:
    """A tmpfs of its own at MOUNT, for the length of this module.

    The path is fixed, so concurrent test runs on the machine take turns on a lock file.
    """
    with open(f"{MOUNT}.lock", "w") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)
        if os.path.ismount(MOUNT):  # left by a run that was killed
            subprocess.run(["umount", str(MOUNT)], check=False)
        with mounted_tmpfs(MOUNT, TMPFS_BYTES) as mount:
            yield mount


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The demo plus what an operator meets: a file index (so the dashboard has coverage and
    worst tickers), a quarantined file, the collector's lock held from another host, and
    two weeks of disk history."""
    root = tmp_path_factory.mktemp("snapshot") / "ws"
    report = build_demo(root, tickers=20, seed=3, end=date(2025, 12, 5), years_1d=2, years_1h=1)
    refresh_index(root)
    by_kind = {i.kind: i for i in report.injections}

    # The collector's temp file is named after a real pid and the build time: fix both.
    temp = by_kind["temp_file"].path
    target, _, rest = temp.name.partition(".tmp-")
    random_part = rest.rsplit("-", 1)[1]
    temp.rename(temp.with_name(f"{target}.tmp-4242-{int((NOW - 3600) * 1000)}-{random_part}"))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(quarantine, "secrets", SimpleNamespace(token_hex=lambda n: "5eed00"[: 2 * n]))
        # The manifest records who quarantined the file; the screen shows it.
        patch.setattr(socket, "gethostname", lambda: HOST)
        patch.setattr(run_lock, "_current_user", lambda: "operator")
        with run_lock.hold(root, "parqctl quarantine add") as lock:
            quarantine.add(
                root,
                by_kind["truncated"].path,
                "truncated by a full disk during the nightly run",
                lock=lock,
                now=NOW - 2 * 86400 - 3 * 3600,
            )

    # The audit log's times, pids and lock tokens are the build's: fix them.
    log = root / audit.AUDIT_FILE
    records = [json.loads(line) for line in log.read_text().splitlines()]
    for i, record in enumerate(records):
        moment = datetime.fromtimestamp(NOW - 2 * 86400 - 3 * 3600 + i, UTC)
        record.update(ts=moment.isoformat(timespec="milliseconds"), user="operator", pid=4242)
        if "token" in record:
            record["token"] = f"{i:032x}"
    log.write_text("".join(json.dumps(record) + "\n" for record in records))

    (root / ".run_lock").mkdir()
    write_json(
        root / ".run_lock" / "owner.json",
        {"pid": 4242, "host": COLLECTOR_HOST, "ts": NOW - 5400, "cwd": "/srv/collector"},
    )

    marks = Watermarks()
    for days_ago in range(14, 0, -1):
        used = 1_500_000 + (14 - days_ago) * 45_000
        status = DiskStatus(MOUNT, TMPFS_BYTES, used, TMPFS_BYTES - used, marks)
        filesystem = Filesystem(MOUNT, status, ("workspace",))
        disk_history.record(root, [filesystem], "health", used, NOW - days_ago * 86400)
    return root


@pytest.fixture
def snapshot_workspace(snapshot_disk: Path, template: Path, monkeypatch) -> Iterator[Path]:
    """A fresh copy of the template at ROOT, every file time set to an hour before NOW."""
    monkeypatch.setattr(socket, "gethostname", lambda: HOST)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    shutil.rmtree(ROOT, ignore_errors=True)
    shutil.copytree(template, ROOT, symlinks=True)
    for directory, _dirs, names in os.walk(ROOT):
        for name in [*names, "."]:
            os.utime(os.path.join(directory, name), (NOW - 3600, NOW - 3600))
    yield ROOT
    monkeypatch.undo()
    time.tzset()


def console(theme: str) -> ParqctlApp:
    return ParqctlApp(Workspace.open(ROOT), theme=theme, health_refresh_s=None, clock=lambda: NOW)


def keys(*pressed: str):
    """A run_before pressing each key in turn, every worker finished after each."""

    async def run_before(pilot) -> None:
        await settle_health(pilot)
        for key in pressed:
            await pilot.press(key)
            await settle(pilot)

    return run_before


THEMES = ["dark", "light"]
SCREENS = {
    "dashboard": (),
    # What needs attention first: the unreadable ticker, then the one with gaps, whose
    # gaps the panel lists.
    "heatmap": ("2", "j"),
    "locks": ("3",),
    "quarantine": ("4",),
    "disk": ("5",),
    "integrity": ("6", "c"),
    "audit": ("9",),
}


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen_at_120x36(snap_compare, snapshot_workspace, screen: str, theme: str):
    assert snap_compare(console(theme), terminal_size=(120, 36), run_before=keys(*SCREENS[screen]))


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("screen", ["dashboard", "heatmap"])
def test_screen_at_80x24(snap_compare, snapshot_workspace, screen: str, theme: str):
    pressed = SCREENS[screen]
    assert snap_compare(console(theme), terminal_size=(80, 24), run_before=keys(*pressed))
