"""Quarantine on real files: round trips, refusals, purge as the only deletion, and moves
cut short by SIGKILL at each step."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from conftest import REPO, mounted_tmpfs, run_cli, write_bars

from core.errors import DiskSpaceError, ParqctlError
from core.integrity import quarantine
from core.safety import audit, run_lock
from core.safety.atomic import write_json

AAPL = Path("stocks_1d/AAPL.parquet")
BRK = Path("stocks_1d/BRK-B.parquet")


def contents(root: Path) -> Counter[str]:
    """sha256 of every data file, in a legacy folder, data/ or quarantine: what must never
    be lost."""
    found: Counter[str] = Counter()
    places = [*root.glob("stocks_*"), root / "data", root / quarantine.QUARANTINE_DIR]
    for place in places:
        for directory, _dirs, names in os.walk(place):
            for name in names:
                if name != quarantine.MANIFEST:
                    found[hashlib.sha256((Path(directory) / name).read_bytes()).hexdigest()] += 1
    return found


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def add(root: Path, rel: Path, reason: str = "test") -> quarantine.QuarantineEntry:
    with run_lock.hold(root, "test add") as lock:
        return quarantine.add(root, root / rel, reason, lock=lock)


def test_round_trip_is_byte_identical_and_audited(workspace: Path):
    original = (workspace / AAPL).read_bytes()
    entry = add(workspace, AAPL, "looks truncated")
    assert not (workspace / AAPL).exists()
    assert entry.stored_path.read_bytes() == original
    manifest = json.loads((entry.directory / quarantine.MANIFEST).read_text())
    assert manifest["state"] == "done"
    assert manifest["original_path"] == str(AAPL)
    assert manifest["size"] == len(original)
    assert manifest["sha256"] == hashlib.sha256(original).hexdigest()
    assert manifest["reason"] == "looks truncated"
    assert manifest["who"]["command"] == "test add" and manifest["when"].endswith("Z")
    [listed] = quarantine.entries(workspace)
    assert (listed.id, listed.condition) == (entry.id, "ok")

    with run_lock.hold(workspace, "test restore") as lock:
        _, target = quarantine.restore(workspace, entry.id[:10], lock=lock)
    assert target == workspace / AAPL
    assert (workspace / AAPL).read_bytes() == original
    assert quarantine.entries(workspace) == []
    assert not entry.directory.exists()
    actions = [r["action"] for r in audit.read(workspace) if r["action"].startswith("quarantine")]
    assert actions == ["quarantine.add", "quarantine.restore"]


def test_restore_refuses_a_taken_path_unless_told_where(workspace: Path):
    original = (workspace / AAPL).read_bytes()
    entry = add(workspace, AAPL)
    write_bars(workspace / AAPL, "AAPL", [datetime(2025, 12, 8)])  # the collector wrote anew
    newer = (workspace / AAPL).read_bytes()
    with run_lock.hold(workspace, "test") as lock:
        with pytest.raises(ParqctlError, match="is taken"):
            quarantine.restore(workspace, entry.id, lock=lock)
        assert (workspace / AAPL).read_bytes() == newer
        aside = workspace / "data" / "AAPL.restored.parquet"
        quarantine.restore(workspace, entry.id, lock=lock, to=aside)
    assert aside.read_bytes() == original and (workspace / AAPL).read_bytes() == newer


def test_refusals_change_nothing(workspace: Path, tmp_path: Path):
    outside = tmp_path / "elsewhere.parquet"
    outside.write_bytes(b"x")
    (workspace / "data").mkdir()
    (workspace / "data" / "link.parquet").symlink_to(workspace / AAPL)
    with run_lock.hold(workspace, "test") as lock:
        for path, message in [
            (outside, "not a bar file of the workspace"),
            (workspace / "tickers.json", "not a bar file of the workspace"),
            (workspace / "data" / "missing.parquet", "does not exist"),
            (workspace / "data" / "link.parquet", "not a regular file"),
            (workspace / "stocks_1d", "not a bar file of the workspace"),
            (workspace / "data", "not a regular file"),
        ]:
            with pytest.raises(ParqctlError, match=message):
                quarantine.add(workspace, path, "reason", lock=lock)
        with pytest.raises(ParqctlError, match="needs a reason"):
            quarantine.add(workspace, workspace / AAPL, "  ", lock=lock)
    lock = run_lock.acquire(workspace, "released")
    lock.release()
    with pytest.raises(ParqctlError, match="run lock"):
        quarantine.add(workspace, workspace / AAPL, "reason", lock=lock)
    assert quarantine.entries(workspace) == [] and (workspace / AAPL).exists()


def test_purge_is_the_only_deletion(workspace: Path):
    before = contents(workspace)
    first, second = add(workspace, AAPL), add(workspace, BRK)
    write_bars(workspace / AAPL, "AAPL", [datetime(2025, 12, 8)])
    new_file = sha(workspace / AAPL)
    for command in (
        ["quarantine", "list"],
        ["quarantine", "restore", first.id],  # refused: taken
        ["quarantine", "purge", second.id],  # refused: no --yes without a terminal
        ["integrity", "--quarantine"],
        ["quarantine", "restore", second.id, "--to", "data/BRK-B.back.parquet"],
        ["quarantine", "add", "data/BRK-B.back.parquet", "--reason", "again"],
    ):
        run_cli("-w", str(workspace), *command, cwd=workspace)
        assert contents(workspace) - Counter({new_file: 1}) == before, command
    third = quarantine.entries(workspace)[-1]
    result = run_cli("-w", str(workspace), "quarantine", "purge", first.id, third.id, "--yes")
    assert result.returncode == 0, result.stderr
    assert contents(workspace) == Counter({new_file: 1}) + before - Counter(
        {first.sha256: 1, second.sha256: 1}
    )
    assert quarantine.entries(workspace) == []
    purged = [r for r in audit.read(workspace) if r["action"] == "quarantine.purge"]
    assert sorted(r["id"] for r in purged) == sorted([first.id, third.id])


def test_purge_older_than_asks_naming_the_files(workspace: Path):
    old, recent = add(workspace, AAPL), add(workspace, BRK)
    manifest = json.loads((old.directory / quarantine.MANIFEST).read_text())
    manifest["quarantined_at"] = time.time() - 40 * 86400
    write_json(old.directory / quarantine.MANIFEST, manifest)

    refused = run_cli("-w", str(workspace), "quarantine", "purge", "--older-than", "30d")
    assert refused.returncode != 0 and "pass --yes" in refused.stderr
    assert str(AAPL) in refused.stdout and str(BRK) not in refused.stdout
    assert len(quarantine.entries(workspace)) == 2

    result = run_cli(
        "-w", str(workspace), "quarantine", "purge", "--older-than", "30d", "--yes", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert [e["id"] for e in json.loads(result.stdout)["purged"]] == [old.id]
    assert [e.id for e in quarantine.entries(workspace)] == [recent.id]
    bad = run_cli("-w", str(workspace), "quarantine", "purge", "--older-than", "soon")
    assert bad.returncode == 2 and "not an age" in bad.stderr


def test_cli_add_list_restore(workspace: Path):
    original = (workspace / AAPL).read_bytes()
    added = run_cli(
        "-w", str(workspace), "quarantine", "add", str(AAPL), "--reason", "bad", "--json"
    )
    assert added.returncode == 0, added.stderr
    entry_id = json.loads(added.stdout)["id"]
    listed = run_cli("-w", str(workspace), "quarantine", "list")
    assert entry_id in listed.stdout and str(AAPL) in listed.stdout and "(bad)" in listed.stdout
    listed_json = json.loads(run_cli("-w", str(workspace), "quarantine", "list", "--json").stdout)
    assert [e["id"] for e in listed_json["entries"]] == [entry_id]
    missing = run_cli("-w", str(workspace), "quarantine", "restore", "nope")
    assert missing.returncode == 2 and "no quarantine entry 'nope'" in missing.stderr
    restored = run_cli("-w", str(workspace), "quarantine", "restore", entry_id)
    assert restored.returncode == 0 and (workspace / AAPL).read_bytes() == original


# --- crashes ------------------------------------------------------------------------------

# Runs one quarantine operation and SIGKILLs itself at a chosen os.rename into or out of
# the quarantine: just before it ("before") or just after it ("after").
CRASHER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from core.integrity import quarantine
    from core.safety import run_lock

    root, operation, when, arg = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    payload = str(root / ".parqctl" / "quarantine")
    real_rename = os.rename

    def rename(src, dst):
        if str(src).startswith(payload) or str(dst).startswith(payload):
            if when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            real_rename(src, dst)
            os.kill(os.getpid(), signal.SIGKILL)
        return real_rename(src, dst)

    os.rename = rename
    with run_lock.hold(root, "crash test") as lock:
        if operation == "add":
            quarantine.add(root, root / arg, "crash test", lock=lock)
        else:
            quarantine.restore(root, arg, lock=lock)
    """
)


def crash(root: Path, operation: str, when: str, arg: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CRASHER, str(root), operation, when, arg],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr


def recover(root: Path) -> str:
    """What an operator does after a crash: break the dead process's lock, list."""
    broken = run_cli("-w", str(root), "lock", "break", "--yes")
    assert broken.returncode == 0, broken.stderr
    listed = run_cli("-w", str(root), "quarantine", "list")
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


@pytest.mark.parametrize(
    ("when", "outcome", "in_quarantine"),
    [("before", "rolled back", False), ("after", "completed", True)],
)
def test_add_killed_around_the_rename_loses_nothing(
    workspace: Path, when: str, outcome: str, in_quarantine: bool
):
    original = (workspace / AAPL).read_bytes()
    before = contents(workspace)
    crash(workspace, "add", when, str(AAPL))
    [interrupted] = quarantine.entries(workspace)
    assert interrupted.state == quarantine.MOVING
    assert contents(workspace) == before

    listing = recover(workspace)
    assert f"reconciled {interrupted.id} (moving): {outcome}" in listing
    assert contents(workspace) == before
    entries = quarantine.entries(workspace)
    if in_quarantine:
        assert [(e.id, e.state) for e in entries] == [(interrupted.id, "done")]
        assert entries[0].stored_path.read_bytes() == original
        assert not (workspace / AAPL).exists()
    else:
        assert entries == [] and (workspace / AAPL).read_bytes() == original


@pytest.mark.parametrize(
    ("when", "outcome", "restored"),
    [("before", "rolled back", False), ("after", "completed", True)],
)
def test_restore_killed_around_the_rename_loses_nothing(
    workspace: Path, when: str, outcome: str, restored: bool
):
    original = (workspace / AAPL).read_bytes()
    entry = add(workspace, AAPL)
    before = contents(workspace)
    crash(workspace, "restore", when, entry.id)
    assert quarantine.entries(workspace)[0].state == quarantine.RESTORING
    assert contents(workspace) == before

    listing = recover(workspace)
    assert f"reconciled {entry.id} (restoring): {outcome}" in listing
    assert contents(workspace) == before
    if restored:
        assert quarantine.entries(workspace) == []
        assert (workspace / AAPL).read_bytes() == original
    else:
        assert [e.state for e in quarantine.entries(workspace)] == ["done"]
        assert not (workspace / AAPL).exists()


def test_a_held_lock_postpones_reconciliation(workspace: Path):
    crash(workspace, "add", "after", str(AAPL))
    listed = run_cli("-w", str(workspace), "quarantine", "list")
    assert listed.returncode == 0
    assert "[moving]" in listed.stdout and "reconciled once the run lock is free" in listed.stderr
    assert quarantine.entries(workspace)[0].state == quarantine.MOVING


def test_a_full_disk_refuses_before_moving(tmp_path: Path):
    with mounted_tmpfs(tmp_path / "mnt", "4m") as mount:
        target = mount / "data" / "legacy" / "stocks_1d" / "AAPL.parquet"
        write_bars(target, "AAPL", [datetime(2025, 12, 1)])
        (mount / "fill").write_bytes(b"x" * (4 * 1024 * 1024 - 512 * 1024))
        with run_lock.hold(mount, "test") as lock, pytest.raises(DiskSpaceError, match="full"):
            quarantine.add(mount, target, "reason", lock=lock)
        assert target.exists() and quarantine.entries(mount) == []


def test_a_malformed_manifest_is_one_line(tmp_path):
    import json as _json

    from conftest import run_cli

    root = tmp_path / "ws"
    (root / "data").mkdir(parents=True)
    entry = root / ".parqctl/quarantine/20250101-000000-abcdef"
    entry.mkdir(parents=True)
    (entry / "manifest.json").write_text(_json.dumps({"schema_version": 1, "id": "x"}))
    result = run_cli("-w", str(root), "quarantine", "list")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "is not a quarantine manifest" in result.stderr
