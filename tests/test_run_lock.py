"""The run lock against real processes: live holders, killed holders, signals, reused pids."""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from core.errors import DiskSpaceError, LockHeldError, ParqctlError
from core.safety import audit, run_lock
from core.safety.run_lock import LockState

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST = socket.gethostname()

HOLDER_SCRIPT = textwrap.dedent(
    """
    import signal, sys, time
    # Start from the interactive defaults whatever the parent of the test run set.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    from core.safety import run_lock
    with run_lock.hold(sys.argv[1], "holder under test"):
        print("held", flush=True)
        while True:
            time.sleep(0.05)
    """
)


# --- helpers ------------------------------------------------------------------------------


def lock_dir_of(root: Path) -> Path:
    return root / ".run_lock"


def write_lock(root: Path, owner: dict[str, Any] | None) -> Path:
    """A lock as another writer leaves it: the dir, and owner.json unless None."""
    lock_dir = lock_dir_of(root)
    lock_dir.mkdir()
    if owner is not None:
        (lock_dir / "owner.json").write_text(json.dumps(owner))  # compact, like the collector
    return lock_dir


def collector_owner(pid: int, *, host: str = HOST, ts: float | None = None) -> dict[str, Any]:
    return {
        "pid": pid,
        "host": host,
        "ts": time.time() if ts is None else ts,
        "cwd": "/srv/collector",
    }


def read_owner(root: Path) -> dict[str, Any]:
    return json.loads((lock_dir_of(root) / "owner.json").read_text())


def lock_litter(root: Path) -> list[str]:
    """Anything named like the lock, including renamed-aside leftovers."""
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".run_lock"))


def lock_records(root: Path) -> list[dict[str, Any]]:
    return [r for r in audit.read(root) if r["action"].startswith("lock.")]


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait(timeout=10)
    return proc.pid


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


@pytest.fixture
def spawn_holder(
    processes: list[subprocess.Popen[str]],
) -> Callable[[Path], subprocess.Popen[str]]:
    """Start a process that takes the lock through core.safety.run_lock and keeps it."""

    def spawn(root: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER_SCRIPT, str(root)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "held":
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"the holder did not take the lock: {err}")
        return proc

    return spawn


@pytest.fixture
def sleeper(processes: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    """A live process that is not parqctl: stands in for a running collector."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], text=True)
    processes.append(proc)
    return proc


@pytest.fixture
def default_handlers() -> Iterator[None]:
    """Python's own SIGINT and SIGTERM handling, whatever the test runner set."""
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGINT, previous_int)
    signal.signal(signal.SIGTERM, previous_term)


# --- acquire and release ------------------------------------------------------------------


def test_acquire_writes_the_collector_keys_and_release_removes_the_lock(tmp_path: Path) -> None:
    lock = run_lock.acquire(tmp_path, "parqctl migrate run --interval 1d")
    owner = read_owner(tmp_path)

    assert owner["pid"] == os.getpid()
    assert owner["host"] == HOST
    assert isinstance(owner["ts"], float) and abs(owner["ts"] - time.time()) < 60
    assert owner["cwd"] == os.getcwd()
    assert owner["writer"] == "parqctl"
    assert owner["command"] == "parqctl migrate run --interval 1d"
    assert owner["token"] == lock.token
    assert owner["process_start"] == pytest.approx(psutil.Process().create_time(), abs=1)
    assert [p.name for p in lock_dir_of(tmp_path).iterdir()] == ["owner.json"]

    status = run_lock.inspect(tmp_path)
    assert status.state is LockState.LIVE
    assert (status.pid_alive, status.same_process) == (True, True)

    assert lock.release() is True
    assert lock_litter(tmp_path) == []
    assert run_lock.inspect(tmp_path).state is LockState.FREE
    assert lock.release() is False


def test_collector_lock_is_recognised_and_refused(
    tmp_path: Path, sleeper: subprocess.Popen[str]
) -> None:
    write_lock(tmp_path, collector_owner(sleeper.pid))
    before = (lock_dir_of(tmp_path) / "owner.json").read_bytes()

    status = run_lock.inspect(tmp_path)
    assert status.state is LockState.LIVE
    assert (status.pid, status.host, status.cwd) == (sleeper.pid, HOST, "/srv/collector")
    assert (status.writer, status.command, status.same_process) == (None, None, None)

    with pytest.raises(LockHeldError) as refused:
        run_lock.acquire(tmp_path, "parqctl migrate run")
    assert f"pid {sleeper.pid}" in refused.value.message
    assert "collector" in refused.value.message
    assert "wait" in refused.value.hint
    assert (lock_dir_of(tmp_path) / "owner.json").read_bytes() == before


def test_exception_inside_hold_releases(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), run_lock.hold(tmp_path, "parqctl test"):
        assert run_lock.inspect(tmp_path).state is LockState.LIVE
        raise RuntimeError("boom")
    assert lock_litter(tmp_path) == []


def test_hold_turns_sigterm_into_an_exception_and_restores_the_handler(
    tmp_path: Path, default_handlers: None
) -> None:
    with pytest.raises(SystemExit) as exited, run_lock.hold(tmp_path, "parqctl test"):
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        signal.raise_signal(signal.SIGTERM)
    assert exited.value.code == 128 + signal.SIGTERM
    assert lock_litter(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize(
    ("signum", "raised"),
    [(signal.SIGTERM, SystemExit), (signal.SIGINT, KeyboardInterrupt)],
)
def test_signal_during_release_is_held_back_until_the_lock_is_gone(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    default_handlers: None,
    signum: int,
    raised: type[BaseException],
) -> None:
    real_discard = run_lock._discard

    def discard_interrupted(aside: Path) -> bool:
        signal.raise_signal(signum)
        return real_discard(aside)

    monkeypatch.setattr(run_lock, "_discard", discard_interrupted)
    with pytest.raises(raised), run_lock.hold(tmp_path, "parqctl test"):
        pass
    assert lock_litter(tmp_path) == []
    assert lock_records(tmp_path)[-1]["action"] == "lock.release"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_hold_works_outside_the_main_thread(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def hold_briefly() -> None:
        try:
            with run_lock.hold(tmp_path, "parqctl worker"):
                assert run_lock.inspect(tmp_path).state is LockState.LIVE
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=hold_briefly)
    worker.start()
    worker.join(timeout=10)
    assert errors == []
    assert lock_litter(tmp_path) == []


def test_release_leaves_a_lock_whose_token_is_not_ours(tmp_path: Path) -> None:
    lock = run_lock.acquire(tmp_path, "parqctl test")
    owner = read_owner(tmp_path) | {"token": "someone-else"}
    (lock_dir_of(tmp_path) / "owner.json").write_text(json.dumps(owner))

    assert lock.release() is False
    assert read_owner(tmp_path)["token"] == "someone-else"
    assert lock_litter(tmp_path) == [".run_lock"]
    assert lock_records(tmp_path)[-1]["result"] == "not-ours"


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), DiskSpaceError),
        (KeyboardInterrupt(), KeyboardInterrupt),
    ],
)
def test_failed_owner_write_removes_the_lock_dir(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: BaseException,
    expected: type[BaseException],
) -> None:
    real_write_json = run_lock.write_json

    def write_then_fail(target: Path, obj: Any) -> None:
        # Fails after owner.json is in place, as an fsync of the directory can.
        real_write_json(target, obj)
        raise failure

    monkeypatch.setattr(run_lock, "write_json", write_then_fail)
    with pytest.raises(expected):
        run_lock.acquire(tmp_path, "parqctl test")
    assert lock_litter(tmp_path) == []


# --- real holders in other processes --------------------------------------------------------


def test_live_holder_is_never_broken_and_its_lock_is_stale_once_killed(
    tmp_path: Path, spawn_holder: Callable[[Path], subprocess.Popen[str]]
) -> None:
    holder = spawn_holder(tmp_path)
    owner_before = (lock_dir_of(tmp_path) / "owner.json").read_bytes()

    status = run_lock.inspect(tmp_path)
    assert status.state is LockState.LIVE
    assert (status.pid, status.same_process) == (holder.pid, True)
    assert (status.writer, status.command) == ("parqctl", "holder under test")

    with pytest.raises(LockHeldError) as refused:
        run_lock.acquire(tmp_path, "parqctl test")
    assert f"pid {holder.pid}" in refused.value.message
    assert "holder under test" in refused.value.message
    for force in (False, True):
        with pytest.raises(LockHeldError):
            run_lock.break_lock(tmp_path, force=force)
    assert (lock_dir_of(tmp_path) / "owner.json").read_bytes() == owner_before

    holder.kill()
    holder.wait(timeout=10)
    status = run_lock.inspect(tmp_path)
    assert status.state is LockState.STALE
    assert status.pid_alive is False

    broken = run_lock.break_lock(tmp_path)
    assert (broken.state, broken.pid) == (LockState.STALE, holder.pid)
    assert lock_litter(tmp_path) == []
    with run_lock.hold(tmp_path, "parqctl after break"):
        assert run_lock.inspect(tmp_path).pid == os.getpid()


@pytest.mark.parametrize(
    ("signum", "returncode"),
    [
        (signal.SIGTERM, 128 + signal.SIGTERM),
        (signal.SIGHUP, 128 + signal.SIGHUP),
        (signal.SIGINT, -signal.SIGINT),
    ],
    ids=["SIGTERM", "SIGHUP", "SIGINT"],
)
def test_signalled_holder_releases_the_lock(
    tmp_path: Path,
    spawn_holder: Callable[[Path], subprocess.Popen[str]],
    signum: int,
    returncode: int,
) -> None:
    holder = spawn_holder(tmp_path)
    os.kill(holder.pid, signum)
    holder.wait(timeout=10)

    assert holder.returncode == returncode
    assert lock_litter(tmp_path) == []
    releases = [r for r in lock_records(tmp_path) if r["action"] == "lock.release"]
    assert [(r["pid"], r["result"]) for r in releases] == [(holder.pid, "ok")]


# --- verdicts -----------------------------------------------------------------------------


def test_alive_pid_that_started_after_the_lock_is_stale(tmp_path: Path) -> None:
    started = psutil.Process().create_time()
    write_lock(tmp_path, collector_owner(os.getpid(), ts=started - 3600))

    status = run_lock.inspect(tmp_path)
    assert status.state is LockState.STALE
    assert (status.pid_alive, status.same_process) == (True, False)
    assert "another process" in status.reason


def test_alive_pid_that_started_before_the_lock_is_live(tmp_path: Path) -> None:
    write_lock(tmp_path, collector_owner(os.getpid(), ts=time.time()))
    status = run_lock.inspect(tmp_path)
    assert (status.state, status.same_process) == (LockState.LIVE, None)


def test_zombie_holder_is_stale(tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    proc = subprocess.Popen([sys.executable, "-c", ""], text=True)
    processes.append(proc)  # reaped only at teardown: until then it is our zombie child
    deadline = time.monotonic() + 10
    while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the child did not exit"
        time.sleep(0.01)
    write_lock(tmp_path, collector_owner(proc.pid))

    status = run_lock.inspect(tmp_path)
    assert (status.state, status.pid_alive) == (LockState.STALE, False)
    assert "zombie" in status.reason


def parqctl_owner(**overrides: Any) -> dict[str, Any]:
    return collector_owner(os.getpid()) | {
        "writer": "parqctl",
        "command": "parqctl test",
        "token": "t",
        "process_start": psutil.Process().create_time(),
        "boot_time": psutil.boot_time(),
        **overrides,
    }


def test_mismatching_process_start_is_stale(tmp_path: Path) -> None:
    write_lock(tmp_path, parqctl_owner(process_start=psutil.Process().create_time() - 100))
    status = run_lock.inspect(tmp_path)
    assert (status.state, status.pid_alive, status.same_process) == (
        LockState.STALE,
        True,
        False,
    )


def test_matching_process_start_is_live(tmp_path: Path) -> None:
    write_lock(tmp_path, parqctl_owner())
    status = run_lock.inspect(tmp_path)
    assert (status.state, status.same_process) == (LockState.LIVE, True)


def test_process_start_survives_a_clock_step_when_boot_time_is_recorded(tmp_path: Path) -> None:
    # As if the wall clock was 300 s off when the lock was taken: both times move together.
    step = 300.0
    shifted = {
        "process_start": psutil.Process().create_time() + step,
        "boot_time": psutil.boot_time() + step,
    }
    write_lock(tmp_path, parqctl_owner(**shifted))
    assert run_lock.inspect(tmp_path).state is LockState.LIVE

    (lock_dir_of(tmp_path) / "owner.json").write_text(
        json.dumps(parqctl_owner(process_start=shifted["process_start"], boot_time=None))
    )
    assert run_lock.inspect(tmp_path).state is LockState.STALE


def test_foreign_host_is_broken_only_with_force(tmp_path: Path) -> None:
    write_lock(tmp_path, collector_owner(os.getpid(), host="other-host.invalid"))

    status = run_lock.inspect(tmp_path)
    assert status.state is LockState.FOREIGN
    assert status.pid_alive is None
    assert "other-host.invalid" in status.reason

    with pytest.raises(LockHeldError) as refused:
        run_lock.acquire(tmp_path, "parqctl test")
    assert "other-host.invalid" in refused.value.message
    assert "--force" in refused.value.hint

    with pytest.raises(ParqctlError) as not_forced:
        run_lock.break_lock(tmp_path)
    assert "--force" in not_forced.value.hint
    assert lock_litter(tmp_path) == [".run_lock"]

    broken = run_lock.break_lock(tmp_path, force=True)
    assert (broken.state, broken.host) == (LockState.FOREIGN, "other-host.invalid")
    assert lock_litter(tmp_path) == []


@pytest.mark.parametrize(
    "owner_text",
    [None, "", '{"pid": 12', "[1, 2]", '{"pid": "abc", "host": "h"}', '{"pid": 5}'],
    ids=["missing", "empty", "torn", "not-an-object", "bad-pid", "no-host"],
)
def test_lock_without_a_usable_owner_is_unknown(tmp_path: Path, owner_text: str | None) -> None:
    lock_dir = write_lock(tmp_path, None)
    if owner_text is not None:
        (lock_dir / "owner.json").write_text(owner_text)

    status = run_lock.inspect(tmp_path)
    assert status.state is LockState.UNKNOWN
    assert status.pid is None
    assert status.age_seconds is not None

    with pytest.raises(LockHeldError):
        run_lock.acquire(tmp_path, "parqctl test")
    with pytest.raises(ParqctlError) as not_forced:
        run_lock.break_lock(tmp_path)
    assert "--force" in not_forced.value.hint
    assert lock_litter(tmp_path) == [".run_lock"]

    assert run_lock.break_lock(tmp_path, force=True).state is LockState.UNKNOWN
    assert lock_litter(tmp_path) == []


def test_break_without_a_lock_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParqctlError, match="no lock to break"):
        run_lock.break_lock(tmp_path)


def test_break_puts_back_a_lock_that_changed_hands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeper: subprocess.Popen[str]
) -> None:
    write_lock(tmp_path, collector_owner(dead_pid()))
    new_owner = collector_owner(sleeper.pid)
    real_judge = run_lock._judge

    def judge_then_someone_retakes(lock_dir: Path, now: float) -> run_lock.LockStatus:
        status = real_judge(lock_dir, now)
        (lock_dir / "owner.json").write_text(json.dumps(new_owner))
        return status

    monkeypatch.setattr(run_lock, "_judge", judge_then_someone_retakes)
    with pytest.raises(ParqctlError, match="changed hands"):
        run_lock.break_lock(tmp_path)
    assert lock_litter(tmp_path) == [".run_lock"]
    assert read_owner(tmp_path) == new_owner


# --- audit --------------------------------------------------------------------------------


def test_audit_log_records_acquire_refusal_release_and_break(tmp_path: Path) -> None:
    lock = run_lock.acquire(tmp_path, "parqctl first")
    with pytest.raises(LockHeldError):
        run_lock.acquire(tmp_path, "parqctl second")
    lock.release()
    gone = dead_pid()
    write_lock(tmp_path, collector_owner(gone))
    run_lock.break_lock(tmp_path)
    with pytest.raises(ParqctlError):
        run_lock.break_lock(tmp_path)

    records = lock_records(tmp_path)
    assert [(r["action"], r["result"]) for r in records] == [
        ("lock.acquire", "ok"),
        ("lock.acquire", "refused"),
        ("lock.release", "ok"),
        ("lock.break", "ok"),
        ("lock.break", "refused"),
    ]
    acquired, refused, released, broken, _ = records
    assert acquired["command"] == "parqctl first"
    assert acquired["token"] == released["token"] == lock.token
    assert refused["command"] == "parqctl second"
    assert (refused["verdict"], refused["holder"]["pid"]) == ("live", os.getpid())
    assert (broken["verdict"], broken["holder"]["pid"]) == ("stale", gone)
    assert broken["holder"]["cwd"] == "/srv/collector"
