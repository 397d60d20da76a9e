"""Engine jobs in a child process (tui.engine_process): the same results as in a thread,
progress and errors relayed, cancellation that stops the child and leaves nothing behind,
and a console that stays usable while its check runs in one."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
from console_support import settle, settle_health, shown, status

from core.errors import MetadataError
from core.health import health_report
from core.integrity.bar_checks import CACHE_FILE
from core.integrity.check import check
from core.jobs import CancelToken, JobCancelled, Progress
from core.safety.atomic import is_temp_name
from core.store.demo import build_demo
from core.store.workspace import Workspace
from tui import engine_process
from tui.app import ParqctlApp
from tui.engine_process import run_in_child

END = date(2025, 12, 5)
NOW = 1_765_000_000.0


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory) -> Path:
    """Enough files that a check is still reading rows well after its first report."""
    root = tmp_path_factory.mktemp("engine") / "ws"
    build_demo(root, tickers=100, seed=5, end=END, years_1d=2, years_1h=1)
    return root


@pytest.fixture
def demo(demo_template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(demo_template, root, symlinks=True)
    return root


def job_children() -> list[psutil.Process]:
    """Processes the fork server started for jobs (it and the resource tracker stay)."""
    me = psutil.Process()
    found = []
    for process in me.children(recursive=True):
        try:
            if process.ppid() != me.pid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.NoSuchProcess:
            pass
    return found


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if is_temp_name(p.name)]


def comparable(report) -> dict:
    """What a check found, without what depends on where or how fast it ran."""
    return {
        "findings": [f.as_dict() for f in report.findings],
        "files": report.files,
        "rows_read": report.rows_read,
        "rows_cached": report.rows_cached,
        "checked_stats": report.checked_stats,
        "checked_at": report.checked_at,
        "elapsed_s": report.elapsed_s,
    }


def test_a_check_in_a_child_finds_what_it_finds_in_this_process(demo: Path, tmp_path: Path):
    twin = tmp_path / "twin"
    shutil.copytree(demo, twin, symlinks=True)
    here = check(Workspace(demo), clock=lambda: NOW)
    reports: list[Progress] = []
    there = run_in_child(check, Workspace(twin), progress=reports.append, clock=lambda: NOW)
    assert comparable(there) == comparable(here)
    assert there.errors and there.rows_read > 0  # the demo's injected damage, read for real
    assert {p.job for p in reports} >= {"indexing", "checking rows"}
    assert reports[-1].done == reports[-1].total  # the last report of each stage is relayed
    assert job_children() == []


def test_a_health_report_from_a_child_is_the_one_made_here(demo: Path):
    here = health_report(Workspace(demo), now=NOW)
    there = run_in_child(health_report, Workspace(demo), now=NOW)
    assert without_disk(there) == without_disk(here)
    assert there.datasets and there.problems == here.problems


def without_disk(report):
    """A report without its disk figures, which move with whatever else writes."""
    return dataclasses.replace(report, disk=None, filesystems=[], projections={})


FORKED = """
import dataclasses, os, sys, time
from pathlib import Path
from core.errors import MetadataError
from core.health import health_report
from core.store.workspace import Workspace
from tui.engine_process import fork_job

root = Path(sys.argv[1])
def without_disk(report):
    return dataclasses.replace(report, disk=None, filesystems=[], projections={})
job = fork_job(health_report, Workspace(root), now=1.0, gaps=False)  # threads: none yet
same = without_disk(job.result()) == without_disk(health_report(Workspace(root), now=1.0, gaps=False))
(root / "tickers.json").write_text("{")
try:
    fork_job(health_report, Workspace(root), now=1.0, gaps=False).result()
    error = None
except MetadataError as exc:
    error = exc.message
sleeper = fork_job(time.sleep, 60)
if sleeper is not None:
    sleeper.abandon()
    try:
        os.kill(sleeper.pid, 0)
    except ProcessLookupError:
        sleeper = "gone"
print(same, "malformed JSON" in (error or ""), sleeper)
"""


def test_a_forked_job_gives_its_result_or_its_error_and_can_be_abandoned(demo: Path):
    # In a fresh interpreter: this one runs pyarrow's threads, and forks only without any.
    result = subprocess.run(
        [sys.executable, "-c", FORKED, str(demo)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
    )
    same, error_relayed, sleeper = result.stdout.split()
    assert (same, error_relayed, sleeper) == ("True", "True", "gone")


def test_no_fork_while_another_thread_runs():
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert engine_process.fork_job(time.sleep, 0) is None
    finally:
        stop.set()
        other.join()


def test_an_error_in_the_child_is_raised_here_with_its_hint(demo: Path):
    (demo / "tickers.json").write_text("{")
    with pytest.raises(MetadataError) as in_thread:
        check(Workspace(demo))
    with pytest.raises(MetadataError) as in_child:
        run_in_child(check, Workspace(demo))
    assert in_child.value.one_line() == in_thread.value.one_line()
    assert "malformed JSON" in in_child.value.message and in_child.value.hint


def test_cancelling_stops_the_child_at_a_safe_point_and_keeps_its_work(demo: Path):
    token = CancelToken()
    held: list[psutil.Process] = []

    def progress(p: Progress) -> None:
        if p.job == "checking rows" and not token.cancelled:
            # Hold the child where it is, so that it cannot finish before the cancel
            # arrives; it goes on once the cancel is sent (when this returns).
            [child] = job_children()
            child.suspend()
            held.append(child)
            token.cancel()

    def resume_when_cancelled() -> None:
        wait_until(lambda: held)
        time.sleep(0.2)  # the relay sends the cancel right after progress() returns
        held[0].resume()

    resumer = threading.Thread(target=resume_when_cancelled)
    resumer.start()
    with pytest.raises(JobCancelled):
        run_in_child(check, Workspace(demo), progress=progress, cancel=token)
    resumer.join()
    assert job_children() == [] and temp_files(demo) == []
    kept = pq.read_metadata(demo / CACHE_FILE).num_rows
    assert kept > 0
    again = check(Workspace(demo))
    assert again.rows_read > 0  # the cancelled run stopped before the end...
    assert again.rows_cached >= kept  # ...and what it had checked was kept


def test_a_child_that_does_not_stop_is_terminated(demo: Path, monkeypatch):
    monkeypatch.setattr(engine_process, "CANCEL_GRACE_S", 0.3)
    token = CancelToken()
    stopped: list[psutil.Process] = []

    def progress(p: Progress) -> None:
        if not stopped:
            [child] = job_children()
            child.suspend()  # deaf to the cancel from now on
            stopped.append(child)
            token.cancel()

    with pytest.raises(JobCancelled, match="cancelled"):
        run_in_child(check, Workspace(demo), progress=progress, cancel=token)
    assert not stopped[0].is_running() or stopped[0].status() == psutil.STATUS_ZOMBIE
    assert job_children() == []


def _summary(app: ParqctlApp) -> str:
    return shown(app, "#integrity-summary")


async def _check_child(app, pilot) -> psutil.Process:
    """The child process of the check just started (the only one: the start-up health
    refresh is over and no other is due), held still (suspended)."""
    for _ in range(3000):
        children = job_children()
        if children:
            children[0].suspend()
            return children[0]
        await pilot.pause(0.01)
    raise AssertionError("no child process for the check")


async def test_the_console_stays_usable_while_a_check_runs_and_cancels_it(demo: Path):
    app = ParqctlApp(Workspace.open(demo), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle_health(pilot)  # the start-up health refresh is over
        await pilot.press("6", "c")
        child = await _check_child(app, pilot)
        screen = app.screen
        await pilot.press("1")  # the check cannot finish meanwhile: it is held
        assert app.current_mode == "dashboard"
        assert "OK" in status(app, "health") or "WARNING" in status(app, "health")
        await pilot.press("6")
        assert app.screen is screen and screen.cancel_token is not None
        await pilot.press("escape")
        await pilot.pause(0.2)
        child.resume()
        await settle(pilot)
        assert _summary(app).startswith("! check cancelled")
        assert screen.cancel_token is None
        assert job_children() == [] and temp_files(demo) == []


async def test_quitting_during_a_check_ends_its_child(demo: Path, monkeypatch):
    monkeypatch.setattr(engine_process, "CANCEL_GRACE_S", 0.3)
    app = ParqctlApp(Workspace.open(demo), health_refresh_s=None)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle_health(pilot)  # its child is gone: the next one is the check's
        await pilot.press("6", "c")
        child = await _check_child(app, pilot)
        await pilot.press("q")
    wait_until(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE)
    wait_until(lambda: job_children() == [])


def test_the_child_side_imports_no_ui():
    code = (
        "import sys, tui.engine_process\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
    )
    assert result.stdout.strip() == "[]"
