"""The migration's data-safety guarantees under real failures: activation and rollback
killed between their writes, a disk the projected output would overfill, a collector
writing into a promotion a crash interrupted, refusals of unsafe input, and unlinks and
renames the filesystem refuses. Real Parquet workspaces, real processes and mounts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PARQCTL, bar_table, mounted_tmpfs, run_cli, tree_digest
from migration_support import END, build_source, copy_workspace, legacy_hashes

from core.migration import months as mo
from core.migration.activate import activate_migration
from core.migration.failpoints import FAILPOINT_ENV, TRACE_ENV
from core.migration.plan import plan_migration
from core.migration.rollback import rollback_migration
from core.migration.run import run_migration
from core.migration.verify import verify_migration
from core.safety import run_lock
from core.store.bars import write_bar_file
from core.store.layout import Venue
from core.store.workspace import Workspace
from tui.text import human_bytes

US = Venue("us", "yahoo")
DATASET = Path("data/us/yahoo/stocks_1d")
LEGACY = Path("stocks_1d")
AAPL_BLOCK = {"mode": "legacy", "root": "data", "note": "set by hand before the migration"}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A readable demo workspace with 1d legacy data only (13 tickers, 2 years): small,
    and activating its one interval sets the venue's switch too."""
    source = tmp_path_factory.mktemp("safety-source") / "ws"
    report = build_source(source)
    root = copy_workspace(
        source, tmp_path_factory.mktemp("safety-base") / "ws", readable_only=True, report=report
    )
    for interval in ("1h", "1m"):
        shutil.rmtree(root / f"stocks_{interval}")
    for stray in (root / LEGACY).glob("*.tmp-*"):
        stray.unlink()
    return root


@pytest.fixture(scope="module")
def verified(base: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("safety-verified") / "ws"
    shutil.copytree(base, root)
    plan_migration(Workspace.open(root), US)
    result = run_migration(Workspace.open(root), US, workers=1, batch_size=20)
    assert not result.failures
    assert verify_migration(Workspace.open(root), US, workers=1).ok
    return root


@pytest.fixture
def fresh(base: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(base, tmp_path / "ws"))


@pytest.fixture
def ready(verified: Path, tmp_path: Path) -> Path:
    """Migrated and verified, not active (copies keep mtimes, so verification holds)."""
    return Path(shutil.copytree(verified, tmp_path / "ws"))


def _migrate(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_cli("-w", str(root), "migrate", *args, env=env)


def _json(path: Path):
    return json.loads(path.read_text())


def _one_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("parqctl: error: ")
    return line


def _interval_record(root: Path) -> dict:
    return _json(root / "migration_plan.json")["venues"][0]["intervals"]["1d"]


def _without_state(root: Path) -> dict[str, str]:
    """Every file but parqctl's own state (the audit log grows with every refusal)."""
    return {k: v for k, v in tree_digest(root).items() if not k.startswith(".parqctl")}


@contextlib.contextmanager
def _immutable(path: Path):
    """chattr +i: even root cannot unlink, rename or create entries there."""
    result = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot make {path} immutable here: {result.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


# --- 1. activation is write-ahead; rollback restores what was there ---------------------


def _give_aapl_a_block_of_its_own(root: Path) -> None:
    tickers = _json(root / "tickers.json")
    tickers["AAPL"]["intervals"]["1d"]["storage"] = AAPL_BLOCK
    (root / "tickers.json").write_text(json.dumps(tickers, indent=2))


def test_rollback_puts_back_a_storage_block_that_was_there_before(ready: Path):
    _give_aapl_a_block_of_its_own(ready)
    tickers_before = _json(ready / "tickers.json")
    activate_migration(Workspace.open(ready), US)
    block = _json(ready / "tickers.json")["AAPL"]["intervals"]["1d"]["storage"]
    assert block["mode"] == "partitioned"
    rollback_migration(Workspace.open(ready), US)
    assert _json(ready / "tickers.json") == tickers_before


ACTIVATE_POINTS = [
    "activate-intent-recorded",
    "activate-tickers-written",
    "activate-config-written",
]


@pytest.mark.parametrize("point", ACTIVATE_POINTS)
def test_an_activation_killed_between_its_writes_is_completed_or_rolled_back(
    ready: Path, tmp_path: Path, point: str
):
    """Killed after each of its writes, activation leaves a plan that says so; rollback
    restores every recorded old value, and activating again completes it."""
    _give_aapl_a_block_of_its_own(ready)
    tickers_before = _json(ready / "tickers.json")
    config_before = _json(ready / "storage_config.json")
    trace = tmp_path / "trace"
    n = ACTIVATE_POINTS.index(point) + 1
    killed = _migrate(ready, "activate", env={FAILPOINT_ENV: f"kill@{n}", TRACE_ENV: str(trace)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert trace.read_text().split()[-1] == point
    run_lock.break_lock(ready)
    [status] = json.loads(_migrate(ready, "status", "--json").stdout)
    assert (status["stage"], status["interrupted"]) == ("activating", "activate")
    refused = _migrate(ready, "run")
    assert refused.returncode == 2 and "interrupted activation" in _one_line(refused)

    second = Path(shutil.copytree(ready, tmp_path / "second"))
    rolled_back = _migrate(ready, "rollback")
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert _json(ready / "tickers.json") == tickers_before
    assert _json(ready / "storage_config.json") == config_before
    record = _interval_record(ready)["parqctl"]
    assert "activating" not in record and not record["activation"]

    completed = _migrate(second, "activate", "--json")
    assert completed.returncode == 0, completed.stderr
    [interval] = json.loads(completed.stdout)["intervals"]
    expected = "activated" if point == "activate-intent-recorded" else "completed"
    assert (interval["action"], interval["blocks_set"]) == (expected, 14)
    ws = Workspace.open(second)
    assert all(e.storage("1d").mode == "partitioned" for e in ws.tickers.entries())
    assert ws.storage_config.is_partitioned(US) and ws.storage_config.raw["partitioned"]
    record = _interval_record(second)["parqctl"]
    assert "activating" not in record and record["activation"]["replaced"] == {"AAPL": AAPL_BLOCK}


@pytest.mark.parametrize("at", [2, 3])  # after the carry-back, after tickers.json
def test_a_rollback_killed_after_tickers_json_is_finished_by_running_it_again(ready: Path, at: int):
    tickers_before = _json(ready / "tickers.json")
    config_before = _json(ready / "storage_config.json")
    activate_migration(Workspace.open(ready), US)
    killed = _migrate(ready, "rollback", env={FAILPOINT_ENV: f"kill@{at}"})
    assert killed.returncode == -signal.SIGKILL
    run_lock.break_lock(ready)
    [status] = json.loads(_migrate(ready, "status", "--json").stdout)
    assert (status["stage"], status["interrupted"]) == ("rolling back", "rollback")
    assert "interrupted" in _one_line(_migrate(ready, "activate"))
    assert _migrate(ready, "rollback").returncode == 0
    assert _json(ready / "tickers.json") == tickers_before
    assert _json(ready / "storage_config.json") == config_before


# --- 2. a run refuses when its projected output would cross the critical watermark ------


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    with mounted_tmpfs(tmp_path / "mnt", "8m") as mount:
        yield mount


def _watermarks(root: Path, critical: float) -> None:
    (root / ".parqctl").mkdir(exist_ok=True)
    (root / ".parqctl" / "config.toml").write_text(
        f"[watermarks]\nwarn = {critical:.2f}\ncritical = {critical:.2f}\nblock = 100\n"
    )


def test_run_refuses_when_the_projected_output_would_cross_critical(base: Path, small_tmpfs: Path):
    from core.disk.watermarks import disk_status

    root = Path(shutil.copytree(base, small_tmpfs / "ws"))
    plan_migration(Workspace.open(root), US)
    used = disk_status(root, Workspace.open(root).config.watermarks).percent_used
    _watermarks(root, used + 5)  # below critical now; the output is several times that
    before = _without_state(root)

    refused = _migrate(root, "run", "--workers", "1")
    assert refused.returncode == 4, refused.stdout + refused.stderr
    line = _one_line(refused)
    for part in ("MiB free", "13 tickers left need about", "critical watermark", "(run sample)"):
        assert part in line, line
    assert "--interval" in line and "migrate estimate" in line
    assert _without_state(root) == before
    assert run_lock.inspect(root).state is run_lock.LockState.FREE
    assert not list((root / ".parqctl" / "staging").iterdir())

    estimate = _migrate(root, "estimate", "--sample", "3", "--workers", "1")
    assert estimate.returncode == 4  # refused too, but its measurement is kept
    ratio = _interval_record(root)["parqctl"]["output_ratio"]
    assert ratio["measured_by"] == "estimate" and ratio["bytes_per_legacy_byte"] > 1
    again = _migrate(root, "run", "--workers", "1")
    assert again.returncode == 4 and "(estimate)" in _one_line(again)

    _watermarks(root, 100)
    assert _migrate(root, "run", "--workers", "1").returncode == 0
    used = disk_status(root, Workspace.open(root).config.watermarks).percent_used
    _watermarks(root, used + 0.5)  # nothing is left to migrate: nothing is projected
    assert _migrate(root, "run", "--workers", "1").returncode == 0


# --- 3. resuming a promotion a crash interrupted merges what the collector wrote since --


def _run_forked(root: Path, env: dict[str, str]) -> int:
    """``migrate run`` (one worker, batches of 3) in a forked child; its exit code."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.environ.update(env)
            run_migration(Workspace.open(root), US, workers=1, batch_size=3)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.fixture(scope="module")
def first_promotion(base: Path, tmp_path_factory) -> int:
    """The number of the failpoint reached at a run's first ticker promotion."""
    root = tmp_path_factory.mktemp("safety-trace") / "ws"
    shutil.copytree(base, root)
    plan_migration(Workspace.open(root), US)
    trace = root.parent / "trace"
    assert _run_forked(root, {TRACE_ENV: str(trace)}) == 0
    names = [line.split()[1] for line in trace.read_text().splitlines()]
    return names.index("ticker-promoted") + 1


def _crash_after_first_promotion(root: Path, nth_point: int) -> tuple[str, Path]:
    """Kill a run right after its first ticker's files are renamed into place; that
    ticker and its newest partition file."""
    plan_migration(Workspace.open(root), US)
    assert _run_forked(root, {FAILPOINT_ENV: f"kill@{nth_point}"}) == -signal.SIGKILL
    run_lock.break_lock(root)
    records = _interval_record(root)["parqctl"]["tickers"]
    [ticker] = [
        t
        for t, r in records.items()
        if r["state"] == "promoting" and (root / DATASET / f"ticker={t}").is_dir()
    ]
    newest = sorted((root / DATASET / f"ticker={ticker}").rglob("data.parquet"))[-1]
    return ticker, newest


def test_resume_merges_rows_the_collector_wrote_into_a_promoted_month(
    fresh: Path, first_promotion: int
):
    ticker, newest = _crash_after_first_promotion(fresh, first_promotion)
    table = pq.read_table(newest)
    assert table.column("date")[-1].as_py().date() == END
    monday = datetime(END.year, END.month, END.day + 3)
    collector_row = bar_table(ticker, [monday], 500.0).select(table.column_names)
    write_bar_file(newest, pa.concat_tables([table, collector_row]))

    result = run_migration(Workspace.open(fresh), US, workers=1, batch_size=3)
    assert not result.failures
    [interval] = result.intervals
    assert (interval.merged_files, interval.adopted_rows) == (1, 1)  # only the touched month
    dates = pq.read_table(newest).column("date").to_pylist()
    assert dates[-1] == monday and len(dates) == table.num_rows + 1
    assert verify_migration(Workspace.open(fresh), US, workers=1).ok


def test_resume_reports_a_value_the_collector_changed_and_keeps_its_file(
    fresh: Path, first_promotion: int
):
    ticker, newest = _crash_after_first_promotion(fresh, first_promotion)
    table = pq.read_table(newest)
    close = table.column("close").to_pylist()
    close[0] += 1.0
    write_bar_file(newest, table.set_column(5, "close", pa.array(close)))
    collectors = newest.read_bytes()

    result = run_migration(Workspace.open(fresh), US, workers=1, batch_size=3)
    [failure] = result.failures
    assert (failure.ticker, failure.kind) == (ticker, "conflict")
    assert failure.conflicts[0]["columns"] == ["close"]
    assert newest.read_bytes() == collectors


# --- 4. smaller items ---------------------------------------------------------------------


def _with_a_terminal(root: Path, answer: str, *args: str) -> subprocess.CompletedProcess:
    """The CLI with a terminal on stdin (answering ``answer``) and stdout in a pipe."""
    leader, follower = os.openpty()
    try:
        os.write(leader, answer.encode())
        return subprocess.run(
            [str(PARQCTL), "-w", str(root), "migrate", *args],
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.close(leader)
        os.close(follower)


def _partition_files(root: Path) -> list[Path]:
    return sorted((root / DATASET).rglob("data.parquet"))


def test_purge_confirmation_names_directory_count_and_bytes_and_lists_on_request(ready: Path):
    files = _partition_files(ready)
    size = sum(p.stat().st_size for p in files)
    before = _without_state(ready)
    declined = _with_a_terminal(ready, "n\n", "rollback", "--purge-partitioned", "--list-files")
    assert declined.returncode == 2 and "rollback cancelled" in declined.stderr
    question = f"Delete {len(files)} partition files ({human_bytes(size)}) this migration "
    assert question in declined.stdout, declined.stdout
    assert f"created under {ready / DATASET}" in declined.stdout
    listed = [line.strip() for line in declined.stdout.splitlines() if line.startswith("  ")]
    assert listed == [str(p) for p in files]
    assert _without_state(ready) == before


def test_purge_with_json_needs_yes_and_prints_only_json(ready: Path):
    files = _partition_files(ready)
    before = _without_state(ready)
    refused = _with_a_terminal(ready, "y\n", "rollback", "--purge-partitioned", "--json")
    assert refused.returncode == 2
    assert "--yes" in _one_line(refused)
    error = _one_line(refused).removeprefix("parqctl: error: ")
    assert json.loads(refused.stdout) == {"error": error, "exit_code": 2}
    assert _without_state(ready) == before

    done = _migrate(ready, "rollback", "--purge-partitioned", "--json", "--yes")
    assert done.returncode == 0, done.stderr
    purge = json.loads(done.stdout)["purge"]
    assert purge["files"] == [str(p) for p in files]
    assert purge["directories"] == [str(ready / DATASET)]
    assert not _partition_files(ready)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("partition_path", "../outside/stocks_1d"),
        ("partition_path", "data/us/../../../outside"),
        ("legacy_path", "/tmp/stocks_1d"),
        ("legacy_path", "legacy/stocks_1d"),
    ],
)
def test_a_plan_pointing_outside_data_is_refused_in_one_line(ready: Path, key: str, value: str):
    outside = ready.parent / "outside"
    shutil.copytree(ready / DATASET, outside)  # what a purge would find there
    plan = _json(ready / "migration_plan.json")
    plan["venues"][0]["intervals"]["1d"][key] = value
    (ready / "migration_plan.json").write_text(json.dumps(plan))
    before, outside_before = _without_state(ready), tree_digest(outside)
    result = _migrate(ready, "rollback", "--purge-partitioned", "--yes")
    assert result.returncode == 2
    line = _one_line(result)
    assert str(ready / "migration_plan.json") in line and f"{key} is {value!r}" in line
    assert _without_state(ready) == before and tree_digest(outside) == outside_before


def test_a_malformed_month_list_in_the_plan_is_refused_in_one_line(ready: Path):
    plan = _json(ready / "migration_plan.json")
    plan["venues"][0]["intervals"]["1d"]["parqctl"]["tickers"]["AAPL"]["created"] = "../../x"
    (ready / "migration_plan.json").write_text(json.dumps(plan))
    before = _without_state(ready)
    result = _migrate(ready, "rollback", "--purge-partitioned", "--yes")
    assert result.returncode == 2
    assert "ticker 'AAPL' created is '../../x'" in _one_line(result)
    assert _without_state(ready) == before


def _legacy_names(root: Path) -> list[str]:
    return sorted(p.name for p in (root / LEGACY).glob("*.parquet"))


def test_finalize_records_what_it_deleted_when_an_unlink_fails(ready: Path):
    activate_migration(Workspace.open(ready), US)
    names = _legacy_names(ready)
    stuck = ready / LEGACY / names[4]
    with _immutable(stuck):
        failed = _migrate(ready, "finalize", "--delete-legacy", "--yes", "--workers", "1")
        assert failed.returncode == 2
        line = _one_line(failed)
        assert f"deleted 4 of {len(names)} legacy files" in line and str(stuck) in line
        assert "Operation not permitted" in line
        record = _interval_record(ready)["parqctl"]["legacy_deleted"]
        assert record["complete"] is False and record["files"] == 4
        assert record["deleted"] == [(LEGACY / n).as_posix() for n in names[:4]]
        assert record["failed"]["path"] == (LEGACY / names[4]).as_posix()
        assert _legacy_names(ready) == names[4:]
        [status] = json.loads(_migrate(ready, "status", "--json").stdout)
        assert (status["stage"], status["interrupted"]) == ("finalizing", "finalize")
    again = _migrate(ready, "finalize", "--delete-legacy", "--yes", "--workers", "1")
    assert again.returncode == 0, again.stderr
    assert _legacy_names(ready) == []
    record = _interval_record(ready)["parqctl"]["legacy_deleted"]
    assert record["complete"] is True and record["files"] == len(names)


def test_finalize_killed_midway_is_finished_by_running_it_again(ready: Path):
    activate_migration(Workspace.open(ready), US)
    names = _legacy_names(ready)
    killed = _migrate(
        ready,
        "finalize",
        "--delete-legacy",
        "--yes",
        "--workers",
        "1",
        env={FAILPOINT_ENV: "kill@3"},
    )
    assert killed.returncode == -signal.SIGKILL
    run_lock.break_lock(ready)
    assert _legacy_names(ready) == names[3:]
    deleting = _interval_record(ready)["parqctl"]["legacy_deleting"]
    assert deleting["files"] == [(LEGACY / n).as_posix() for n in names]
    assert _migrate(ready, "finalize", "--delete-legacy", "--yes", "--workers", "1").returncode == 0
    assert _legacy_names(ready) == []
    record = _interval_record(ready)["parqctl"]["legacy_deleted"]
    assert record["complete"] is True and record["deleted"] == deleting["files"]


def test_a_write_error_ends_the_run_in_one_line_and_resume_completes(fresh: Path):
    hashes = legacy_hashes(fresh)
    assert _migrate(fresh, "plan").returncode == 0
    (fresh / DATASET).mkdir(parents=True)
    with _immutable(fresh / DATASET):
        failed = _migrate(fresh, "run", "--workers", "1", "--batch-size", "4")
        assert failed.returncode == 2
        line = _one_line(failed)
        assert "Operation not permitted" in line and "run `parqctl migrate run` again" in line
        assert run_lock.inspect(fresh).state is run_lock.LockState.FREE
        assert not list((fresh / ".parqctl" / "staging").iterdir())
        assert not list((fresh / DATASET).iterdir())
    assert _migrate(fresh, "run", "--workers", "1").returncode == 0
    assert _migrate(fresh, "verify", "--workers", "1").returncode == 0
    assert legacy_hashes(fresh) == hashes
    records = _interval_record(fresh)["parqctl"]["tickers"]
    assert {r["state"] for r in records.values()} == {"done"}
    assert all(mo.expand(r["created"]) for r in records.values())
