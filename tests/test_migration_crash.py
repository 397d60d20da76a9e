"""The migration under real failures: SIGKILL at seeded points, a full disk, a second run,
SIGTERM. Every run is a real `parqctl` process."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PARQCTL, mounted_tmpfs, run_cli
from migration_support import check_invariants, legacy_hashes

from core.migration.failpoints import FAILPOINT_ENV, TRACE_ENV
from core.safety import run_lock

SEED = 20251205
KILLS = 22


def _migrate_args(root: Path, *extra: str) -> list[str]:
    return ["-w", str(root), "migrate", *extra]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PARQCTL_WORKSPACE", FAILPOINT_ENV)}
    return {**env, **extra}


def _start(root: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(PARQCTL), *_migrate_args(root, "run", *args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(**env),
    )


def _wait_for_lock(root: Path, process: subprocess.Popen) -> None:
    for _ in range(600):
        if (root / ".run_lock" / "owner.json").exists() or process.poll() is not None:
            return
        time.sleep(0.05)


def _run_forked(root: Path, env: dict[str, str]) -> int:
    """``migrate run`` in a forked child of this process (pyarrow already imported, so a
    run costs no interpreter start); returns its exit code, negative for a signal."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.environ.update(env)
            from core.migration.run import run_migration
            from core.store.layout import Venue
            from core.store.workspace import Workspace

            run_migration(Workspace.open(root), Venue("us", "yahoo"), workers=1, batch_size=3)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_kill_9_at_seeded_points_then_resume(clean: Path, tmp_path: Path):
    """A chain of runs, each killed with SIGKILL at a seeded failpoint (after staging, after
    the flush, after the intent checkpoint, between renames, after the second flush, after
    the checkpoint); after each kill the tree holds no partial file and the plan is
    consistent; then a run completes, verify passes, and the legacy files are unchanged.
    Every eighth run is the real CLI with two workers; the others fork this process."""
    before = legacy_hashes(clean)
    assert run_cli(*_migrate_args(clean, "plan")).returncode == 0
    rng = random.Random(SEED)
    trace = tmp_path / "trace"
    killed_at: list[str] = []
    for attempt in range(KILLS + 4):
        trace.unlink(missing_ok=True)
        env = {FAILPOINT_ENV: f"kill@{rng.randint(1, 12)}", TRACE_ENV: str(trace)}
        if attempt % 8 == 0:
            process = _start(clean, "--batch-size", "3", "--workers", "2", **env)
            process.communicate(timeout=120)
            code = process.returncode
        else:
            code = _run_forked(clean, env)
        if code != -signal.SIGKILL:
            break  # the migration finished before this point was reached
        killed_at.append(trace.read_text().splitlines()[-1].split()[1])
        check_invariants(clean)
        assert legacy_hashes(clean) == before
        run_lock.break_lock(clean)
        if len(killed_at) >= KILLS:
            break
    assert len(killed_at) >= 20, killed_at
    kinds = set(killed_at)
    assert {"ticker-staged", "batch-flushed", "batch-intent-recorded", "ticker-promoted"} <= kinds
    assert {"batch-promoted", "batch-checkpointed"} & kinds
    final = run_cli(*_migrate_args(clean, "run"))
    assert final.returncode == 0, final.stderr
    verify = run_cli(*_migrate_args(clean, "verify", "--workers", "1"))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert legacy_hashes(clean) == before
    assert not list((clean / ".parqctl" / "staging").glob("run-*"))


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    with mounted_tmpfs(tmp_path / "mnt", "8m") as mount:
        yield mount


def test_a_full_disk_aborts_cleanly_and_resume_completes(clean: Path, small_tmpfs: Path):
    root = small_tmpfs / "ws"
    shutil.copytree(clean, root)
    # Let the disk really fill: no watermark refusal before it does.
    (root / ".parqctl").mkdir(exist_ok=True)
    (root / ".parqctl" / "config.toml").write_text(
        "[watermarks]\nwarn = 100\ncritical = 100\nblock = 100\n"
    )
    before = legacy_hashes(root)
    assert run_cli(*_migrate_args(root, "plan")).returncode == 0
    _record_output_ratio(root, 0.01)  # a projection far too low: the run starts, then fills
    free = shutil.disk_usage(small_tmpfs).free
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"\0" * max(free - 900 * 1024, 0))
    result = run_cli(*_migrate_args(root, "run", "--batch-size", "4", "--workers", "1"))
    assert result.returncode == 4, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("parqctl: error: ") and "disk is full" in line
    assert run_lock.inspect(root).state is run_lock.LockState.FREE
    check_invariants(root)
    assert legacy_hashes(root) == before
    assert not list((root / ".parqctl" / "staging").glob("run-*"))
    plan = json.loads((root / "migration_plan.json").read_text())
    assert plan["venues"][0]["intervals"]["1d"]["status"] != "complete" or (
        plan["venues"][0]["intervals"]["1h"]["status"] != "complete"
    )
    filler.unlink()
    resumed = run_cli(*_migrate_args(root, "run", "--workers", "1"))
    assert resumed.returncode == 0, resumed.stderr
    assert run_cli(*_migrate_args(root, "verify", "--workers", "1")).returncode == 0
    assert legacy_hashes(root) == before


def _record_output_ratio(root: Path, ratio: float) -> None:
    """Set the output-per-legacy-byte ratio the plan records (as estimate does)."""
    path = root / "migration_plan.json"
    plan = json.loads(path.read_text())
    for interval in plan["venues"][0]["intervals"].values():
        interval.setdefault("parqctl", {})["output_ratio"] = {"bytes_per_legacy_byte": ratio}
    path.write_text(json.dumps(plan))


def test_a_second_run_is_refused_with_the_holders_details(clean: Path):
    assert run_cli(*_migrate_args(clean, "plan")).returncode == 0
    first = _start(clean, "--workers", "1", **{FAILPOINT_ENV: "stop@3"})
    try:
        for _ in range(600):  # until it has stopped itself at the failpoint
            if Path(f"/proc/{first.pid}/stat").read_text().split()[2] == "T":
                break
            time.sleep(0.05)
        second = run_cli(*_migrate_args(clean, "run"))
        assert second.returncode == 3
        [line] = second.stderr.strip().splitlines()
        assert f"pid {first.pid}" in line and "parqctl migrate run" in line and "LIVE" in line
    finally:
        first.send_signal(signal.SIGCONT)
    _out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err


def test_sigterm_stops_at_a_safe_point_and_says_how_to_resume(clean: Path):
    assert run_cli(*_migrate_args(clean, "plan")).returncode == 0
    process = _start(clean, "--workers", "1", "--batch-size", "2", **{FAILPOINT_ENV: "stop@6"})
    for _ in range(600):
        if Path(f"/proc/{process.pid}/stat").read_text().split()[2] == "T":
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGCONT)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "resume with `parqctl migrate run --venue us:yahoo`" in err
    assert run_lock.inspect(clean).state is run_lock.LockState.FREE
    status = json.loads(run_cli(*_migrate_args(clean, "status", "--json")).stdout)
    assert 0 < sum(s["done"] for s in status) < sum(s["jobs_total"] for s in status)
    assert run_cli(*_migrate_args(clean, "run", "--workers", "1")).returncode == 0


def test_estimate_measures_a_sample_and_refuses_past_critical(clean: Path, small_tmpfs: Path):
    from core.disk.watermarks import disk_status
    from core.migration.estimate import estimate_migration
    from core.migration.plan import plan_migration
    from core.store.layout import Venue
    from core.store.workspace import Workspace

    root = small_tmpfs / "ws"
    shutil.copytree(clean, root)
    plan_migration(Workspace.open(root), Venue("us", "yahoo"))
    now = disk_status(root, Workspace.open(root).config.watermarks).percent_used
    (root / ".parqctl" / "config.toml").write_text(
        f"[watermarks]\nwarn = {now + 1:.2f}\ncritical = {now + 2:.2f}\nblock = 100\n"
    )
    before = sorted(p.relative_to(root) for p in root.rglob("*") if ".parqctl" not in p.parts)
    estimate = estimate_migration(Workspace.open(root), Venue("us", "yahoo"), sample=3, workers=1)
    assert estimate.tickers == 13 + 13 + 5 and estimate.sample_tickers == 3 * 3  # 1d, 1h, 1m
    assert estimate.files > 400 and estimate.projected_bytes > 4096 * estimate.files * 0.9
    assert estimate.refused and estimate.percent_after > now + 2
    after = sorted(p.relative_to(root) for p in root.rglob("*") if ".parqctl" not in p.parts)
    assert after == before and not list((root / ".parqctl" / "staging").iterdir())
    result = run_cli(*_migrate_args(root, "estimate", "--sample", "2", "--workers", "1"))
    assert result.returncode == 4 and "critical watermark" in result.stderr
