"""A hostile environment: unreadable directories, a full disk, a console killed outright.

Real files, real subprocesses, a real tmpfs. (issue 12: "Never hang, never a traceback"
and "Processes".)

- A dataset directory the user cannot read (`chmod 000`): `health` reports it as a
  problem and counts the rest; `migrate plan` refuses in one line. Root reads through
  `chmod 000`, so as root the commands run without CAP_DAC_OVERRIDE/READ_SEARCH.
- ENOSPC while a command writes metadata (`migrate plan --force`, `activate`, `rollback`,
  `finalize`): one line naming the file, exit 4, no temp file left, and the command runs
  through once there is room again.
- `parqctl demo` on a disk too small for it refuses before it writes; one that fills up
  anyway (a tmpfs out of inodes) removes what it wrote, and only that.
- SIGKILL of the console while it migrates: the fork server, its workers and the resource
  tracker all go with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import psutil
import pytest
from conftest import PARQCTL, REPO, mounted_tmpfs, run_cli, ticker_entry, write_bars, write_tickers

from core.safety.atomic import TEMP_MARKER, write_json

DAYS = [datetime(2025, 12, d) for d in (1, 2, 3)]


def _legacy_workspace(root: Path) -> Path:
    """AAPL and BRK-B with three daily bars each at the root, AAPL hourly too."""
    for ticker in ("AAPL", "BRK-B"):
        write_bars(root / "stocks_1d" / f"{ticker}.parquet", ticker, DAYS)
    write_bars(root / "stocks_1h" / "AAPL.parquet", "AAPL", DAYS)
    write_tickers(root, {t: ticker_entry(t) for t in ("AAPL", "BRK-B")})
    write_json(root / "intervals.json", ["1d", "1h"])
    write_json(root / "storage_config.json", {"partitioned": False, "markets": {}, "sources": {}})
    return root


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("parqctl: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if TEMP_MARKER in p.name]


# --- 1. a directory the user cannot read --------------------------------------------------


PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _without_dac_override() -> None:
    """In the child, before exec: root that `chmod 000` stops (uid 0 keeps what it owns,
    but no longer reads past permission bits)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


class Unprivileged:
    """Runs parqctl so that `chmod 000` stops it: as this user, or under root without the
    capabilities that read past permission bits (dropped from the bounding set before
    exec, so the command runs as root, on root's files, but honours `chmod 000`)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.preexec = _without_dac_override if os.geteuid() == 0 else None

    def run(self, *args: str, command: list[str] | None = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "PARQCTL_WORKSPACE"}
        return subprocess.run(
            command or [str(PARQCTL), *args],
            capture_output=True,
            text=True,
            cwd=self.base,
            env=env,
            timeout=120,
            preexec_fn=self.preexec,
        )


@pytest.fixture
def unprivileged(tmp_path: Path) -> Iterator[Unprivileged]:
    runner = Unprivileged(tmp_path)
    probe = tmp_path / "probe"
    probe.mkdir(mode=0o000)
    try:
        listed = runner.run(
            command=[sys.executable, "-c", f"import os; os.listdir({str(probe)!r})"]
        )
    except subprocess.SubprocessError as exc:  # the preexec function failed
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {exc}")
    if listed.returncode == 0:
        pytest.skip("chmod 000 does not stop reads here (capabilities cannot be dropped)")
    try:
        yield runner
    finally:
        for top, dirs, _files in os.walk(tmp_path):  # let pytest remove what was locked
            for name in dirs:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(top, name), 0o755)
        probe.chmod(0o755)


def _unreadable_ws(unprivileged: Unprivileged, *locked: str) -> Path:
    root = _legacy_workspace(unprivileged.base / "ws")
    for rel in locked:
        (root / rel).chmod(0o000)
    return root


def test_health_reports_an_unreadable_legacy_dataset_and_counts_the_rest(unprivileged):
    root = _unreadable_ws(unprivileged, "stocks_1d")
    prom = unprivileged.base / "ws" / "parqctl.prom"

    result = unprivileged.run("-w", str(root), "health", "--json", "--prometheus", str(prom))

    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stdout + result.stderr  # WARNING
    report = json.loads(result.stdout)
    assert report["unreadable"] == [{"path": "stocks_1d", "reason": "Permission denied"}]
    [problem] = [p for p in report["problems"] if "cannot read" in p["text"]]
    assert problem["verdict"] == "WARNING" and "stocks_1d/ (Permission denied)" in problem["text"]
    by_label = {d["label"]: d for d in report["datasets"]}
    assert by_label["legacy 1d"]["unreadable"] == ["stocks_1d"]
    assert by_label["legacy 1d"]["files"] == 0
    assert by_label["legacy 1h"]["files"] == 1  # the rest is still counted
    assert re.search(r"^parqctl_health_verdict\{.*\} 1(\.0)?$", prom.read_text(), re.MULTILINE)

    text = unprivileged.run("-w", str(root), "health")
    assert text.returncode == 1 and "Traceback" not in text.stderr, text.stderr
    assert "cannot read stocks_1d/ (Permission denied)" in text.stdout


def test_health_reports_an_unreadable_ticker_partition(unprivileged):
    root = _legacy_workspace(unprivileged.base / "ws")
    dataset = root / "data/us/yahoo/stocks_1d"
    for ticker in ("AAPL", "MSFT"):
        write_bars(dataset / f"ticker={ticker}/year=2025/month=12/data.parquet", ticker, DAYS)
    (dataset / "ticker=MSFT").chmod(0o000)

    result = unprivileged.run("-w", str(root), "health", "--json")

    assert "Traceback" not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    where = "data/us/yahoo/stocks_1d/ticker=MSFT"
    assert report["unreadable"] == [{"path": where, "reason": "Permission denied"}]
    assert any(f"{where}/ (Permission denied)" in p["text"] for p in report["problems"])
    [partitioned] = [d for d in report["datasets"] if d["kind"] == "partitioned"]
    assert partitioned["files"] == 1 and partitioned["unreadable"] == [where]
    assert result.returncode == 1


def test_migrate_plan_refuses_an_unreadable_legacy_dataset_and_plans_the_others(unprivileged):
    root = _unreadable_ws(unprivileged, "stocks_1d")

    for args in ((), ("--interval", "1d")):
        refused = unprivileged.run("-w", str(root), "migrate", "plan", *args)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        line = _one_line(refused)
        assert "cannot read stocks_1d/ (Permission denied)" in line and "--interval" in line
        assert not (root / "migration_plan.json").exists()
        assert not (root / ".run_lock").exists()

    planned = unprivileged.run("-w", str(root), "migrate", "plan", "--interval", "1h")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    [venue] = json.loads((root / "migration_plan.json").read_text())["venues"]
    assert list(venue["intervals"]) == ["1h"]


def test_migrate_plan_refuses_when_a_legacy_home_cannot_be_looked_into(unprivileged):
    """data/legacy/ unreadable: whether it holds 1d files too is unknown, and planning from
    the root alone could leave them behind (two homes are refused)."""
    root = _legacy_workspace(unprivileged.base / "ws")
    write_bars(root / "data/legacy/stocks_1d/AAPL.parquet", "AAPL", DAYS[:1])
    (root / "data/legacy").chmod(0o000)

    for args in (("--interval", "1d"), ()):
        refused = unprivileged.run("-w", str(root), "migrate", "plan", *args)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "cannot read data/legacy/ (Permission denied)" in _one_line(refused)
        assert not (root / "migration_plan.json").exists()


# --- 2. ENOSPC while writing metadata -----------------------------------------------------

PADDING = "x" * 300_000  # an unknown key, kept on every rewrite: the rewrite needs room


def _migrate(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("-w", str(root), "migrate", *args, cwd=REPO)


def _ok(root: Path, *args: str) -> None:
    result = _migrate(root, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)


def _pad(root: Path, name: str) -> None:
    data = json.loads((root / name).read_text())
    (data["AAPL"] if name == "tickers.json" else data)["zz_unknown"] = PADDING
    write_json(root / name, data)


def _fill(mount: Path, leave: int) -> Path:
    """Fill the filesystem, then give back ``leave`` bytes: what a command finds free."""
    filler = mount / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - size % 4096 - leave))
    return filler


STEPS = {
    "plan --force": ((), ("plan", "--force")),
    "activate": (("run", "verify"), ("activate",)),
    "rollback": (("run", "verify", "activate"), ("rollback",)),
    "finalize": (("run", "verify", "activate", "verify"), ("finalize", "--delete-legacy", "--yes")),
}


@pytest.mark.parametrize(
    ("step", "padded"),
    [
        ("plan --force", "migration_plan.json"),
        ("activate", "migration_plan.json"),
        ("activate", "tickers.json"),  # the plan's journal fits; tickers.json does not
        ("rollback", "tickers.json"),
        ("finalize", "migration_plan.json"),
    ],
)
def test_a_full_disk_while_writing_metadata_is_one_line_and_exit_4(tmp_path, step, padded):
    with mounted_tmpfs(tmp_path / "mnt", "16m") as mount:
        root = _legacy_workspace(mount / "ws")
        _ok(root, "plan", "--interval", "1d")
        before, command = STEPS[step]
        for previous in before:
            _ok(root, previous)
        _pad(root, padded)
        filler = _fill(mount, 16 * 1024)  # room for the lock and the audit line only

        full = _migrate(root, *command)

        assert full.returncode == 4, full.stdout + full.stderr
        line = _one_line(full)
        assert line.startswith("parqctl: error: disk full: cannot write ")
        assert ".json (No space left on device)" in line and "free some space" in line
        assert not _temp_files(root)
        assert not (root / ".run_lock").exists()
        for name in ("tickers.json", "storage_config.json", "migration_plan.json"):
            json.loads((root / name).read_text())  # old or new, never half-written

        filler.unlink()
        assert _migrate(root, "status").returncode == 0
        _ok(root, *command)  # with room again, it runs through


# --- 3. demo on a disk too small for it ---------------------------------------------------

DEMO = ("--tickers", "20", "--years-1d", "2", "--years-1h", "1", "--end", "2025-12-01")


def _demo(target: Path) -> subprocess.CompletedProcess:
    return run_cli("demo", str(target), *DEMO, "--no-open", cwd=REPO)


def test_demo_refuses_a_disk_too_small_before_writing(tmp_path):
    with mounted_tmpfs(tmp_path / "mnt", "2m") as mount:
        result = _demo(mount / "ws")

        assert result.returncode == 4, result.stdout + result.stderr
        line = _one_line(result)
        assert "not enough disk space for the demo" in line and "MiB free" in line
        assert "--tickers" in line
        assert list(mount.iterdir()) == []


def test_demo_that_fills_the_disk_removes_what_it_wrote_and_only_that(tmp_path):
    # Room for the bytes, not for the files: the disk fills up part-way (ENOSPC on create).
    with mounted_tmpfs(tmp_path / "mnt", "64m,nr_inodes=30") as mount:
        (mount / "keep.txt").write_text("not the demo's")
        (mount / "empty").mkdir()

        created = _demo(mount / "new/parents/ws")
        assert created.returncode == 4, created.stdout + created.stderr
        line = _one_line(created)
        assert "the disk filled up while building the demo" in line
        assert f"removed {mount / 'new'}, which it had created" in line

        existing = _demo(mount / "empty")
        assert existing.returncode == 4, existing.stdout + existing.stderr
        assert f"removed what it had written in {mount / 'empty'}" in _one_line(existing)

        assert sorted(p.name for p in mount.iterdir()) == ["empty", "keep.txt"]
        assert list((mount / "empty").iterdir()) == []
        assert (mount / "keep.txt").read_text() == "not the demo's"


# --- 4. the console's processes die with it -----------------------------------------------


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _command_line(process: psutil.Process) -> str:
    """Its command line; "" for one that ended meanwhile (a zombie not yet reaped)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


def _assert_all_gone(processes: list[psutil.Process], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    try:
        while _alive(processes):
            if time.monotonic() > deadline:
                described = [
                    (p.pid, p.ppid(), " ".join(p.cmdline())[:80]) for p in _alive(processes)
                ]
                pytest.fail(
                    f"still running {timeout:g} s after their parent was killed: {described}"
                )
            time.sleep(0.1)
    finally:
        for process in _alive(processes):  # never leak them into the rest of the suite
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


# Starts the fork server and a migration pool the way the console does: from a worker
# thread (so the pool takes its workers from the fork server), the server with the
# console's preload; the jobs wait for work that never comes, as workers do.
POOL_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    from core.migration import pool
    from tui import engine_process

    def work():
        engine_process.start_server()
        with pool.start(2) as executor:
            jobs = [executor.submit(time.sleep, 3600) for _ in range(2)]
            time.sleep(1.0)  # both workers started and busy
            print("ready", flush=True)
            time.sleep(3600)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    """
)


def test_sigkill_of_a_process_using_the_fork_server_leaves_no_process_behind():
    parent = subprocess.Popen(
        [sys.executable, "-c", POOL_SCRIPT], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout.readline().strip() == "ready"
        descendants = _descendants(parent.pid)
        commands = [" ".join(p.cmdline()) for p in descendants]
        assert sum("forkserver" in c for c in commands) >= 3, commands  # server + 2 workers
        assert any("resource_tracker" in c for c in commands), commands
    finally:
        parent.kill()
        parent.wait()
    _assert_all_gone(descendants)


THREAD_SCRIPT = textwrap.dedent(
    """
    import multiprocessing.forkserver, threading, time
    from core.migration import pool
    from tui import engine_process

    def server_pid():
        return multiprocessing.forkserver._forkserver._forkserver_pid

    starter = threading.Thread(target=engine_process.start_server)
    starter.start()
    starter.join()
    server = server_pid()
    time.sleep(0.5)

    def work():
        with pool.start(2) as executor:
            print(sorted(set(executor.map(abs, [-1, -2, -3, -4]))), flush=True)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    print(server_pid() == server, flush=True)
    """
)


def test_the_fork_server_outlives_the_thread_that_started_it():
    """The kernel's parent-death signal also comes when only the starting thread ends (the
    console starts the server from worker threads): the server must not go then."""
    result = subprocess.run(
        [sys.executable, "-c", THREAD_SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[1, 2, 3, 4]", "True"], result.stdout + result.stderr


def test_sigkill_of_the_console_while_it_migrates_leaves_no_process_behind(tmp_path):
    from test_console_hangup import Terminal, _wait_for_audit, _wait_for_staged_files

    from core.migration.plan import plan_migration
    from core.store.demo import build_demo
    from core.store.layout import Venue
    from core.store.workspace import Workspace

    root = tmp_path / "ws"
    report = build_demo(root, tickers=60, seed=9, end=date(2025, 12, 5), years_1d=4, years_1h=1)
    for injection in report.injections:
        if injection.kind in ("truncated", "zero_byte") and injection.path:
            injection.path.unlink()
    plan_migration(Workspace.open(root), Venue("us", "yahoo"), ["1d", "1h"])

    terminal = Terminal([str(PARQCTL), "-w", str(root), "console"])
    descendants: list[psutil.Process] = []
    try:
        terminal.wait_for("Health")
        terminal.press_until(b"7", "Next:")
        terminal.press(b"r")
        terminal.wait_for("Run the migration?")
        terminal.press(b"\t")
        time.sleep(0.3)
        terminal.press(b"\r")
        _wait_for_audit(root, "migrate.run", "started")
        _wait_for_staged_files(root)  # the workers are busy
        descendants = _descendants(terminal.process.pid)
        commands = [_command_line(p) for p in descendants]
    finally:
        os.kill(terminal.process.pid, signal.SIGKILL)
        terminal.process.wait(timeout=30)
        os.close(terminal.master)
    assert sum("forkserver" in c for c in commands) >= 3, commands  # the server, workers
    _assert_all_gone(descendants)
