"""What a hot refresh of the file index sees, and what only a full scan sees.

The index looks at the hot months (the current one and around it) at every refresh, at
old months when parqctl noted a change there (quarantine, restore, ingest), and at every
file on a full scan (on demand, or when the last one is older than FULL_SCAN_DAYS).
"""

from __future__ import annotations

import os
import shutil
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from session_bars import daily, session_days, write_legacy, write_partitioned

from core.availability.arrow_cache import read_arrow
from core.availability.index import FULL_SCAN_DAYS, INDEX_DIR, load_index, refresh_index
from core.availability.index_inventory import indexed_inventories
from core.health import health_report
from core.integrity import quarantine
from core.safety import run_lock
from core.store.layout import Venue
from core.store.workspace import Workspace

VENUE = Venue("us", "yahoo")
DAYS = session_days(date(2025, 9, 2), date(2025, 12, 5))  # four months: 9, 10, 11, 12
NOW = datetime(2025, 12, 8, 12).timestamp()  # the hot months: 11 (before the last), 12, 1


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    for ticker in ("PPP", "QQQ"):
        write_partitioned(root, VENUE, "1d", ticker, daily(DAYS))
    write_legacy(root, "1d", "LLL", daily(DAYS))
    refresh_index(root, now=NOW)
    return root


def partition(root: Path, ticker: str, month: int) -> Path:
    return root / (
        f"data/us/yahoo/stocks_1d/ticker={ticker}/year=2025/month={month:02d}/data.parquet"
    )


def rows_of(root: Path, path: Path) -> int | None:
    files = load_index(root).files
    rel = path.relative_to(root).as_posix()
    found = files.filter(files["path"] == rel)["rows"].to_list()
    return found[0] if found else None


def test_first_refresh_is_a_full_scan_and_the_next_ones_hot(root: Path):
    index = load_index(root)
    assert index.state.full_scan_at == NOW and index.state.refreshed_at == NOW
    again = refresh_index(root, now=NOW + 60)
    assert again.stats.scope == "hot" and again.stats.opened == 0
    # legacy files, and months 11, 12 (and 1) of both tickers: not months 9 and 10
    assert again.stats.looked_at == 1 + 2 * 2
    assert again.state.full_scan_at == NOW and again.state.refreshed_at == NOW + 60


def test_a_current_month_the_collector_rewrites_is_reread(root: Path):
    path = partition(root, "PPP", 12)
    assert rows_of(root, path) == len([d for d in DAYS if d.month == 12])
    _collector_writes(path, [d for d in DAYS if d.month == 12][:2])
    index = refresh_index(root, now=NOW + 60)
    assert index.stats.scope == "hot" and index.stats.opened == 1
    assert rows_of(root, path) == 2


def test_the_check_hands_its_scan_to_the_refresh_that_follows(root: Path, monkeypatch):
    from core.availability import index_scan
    from core.availability.index_state import hot_unchanged

    walks = []
    real = index_scan._scan_partitioned
    monkeypatch.setattr(
        index_scan, "_scan_partitioned", lambda *a, **k: walks.append(1) or real(*a, **k)
    )
    path = partition(root, "PPP", 12)
    _collector_writes(path, [d for d in DAYS if d.month == 12][:2])
    assert not hot_unchanged(root, now=NOW + 60)  # it walked the hot months: a change
    index = refresh_index(root, now=NOW + 60)
    assert len(walks) == 1  # one walk of the one partitioned dataset, not two or three
    assert index.stats.opened == 1 and rows_of(root, path) == 2
    again = refresh_index(root, now=NOW + 120)  # a kept scan is handed out once only
    assert len(walks) == 2 and again.stats.opened == 0  # its own check: nothing changed


def test_an_old_month_changed_outside_parqctl_is_seen_by_the_full_scan(root: Path):
    path = partition(root, "QQQ", 9)
    _collector_writes(path, [d for d in DAYS if d.month == 9][:3])
    hot = refresh_index(root, now=NOW + 60)
    assert hot.stats.opened == 0 and rows_of(root, path) != 3  # not looked at: documented
    due = refresh_index(root, scan="due", now=NOW + 120)
    assert due.stats.scope == "hot" and rows_of(root, path) != 3  # the full scan is not due
    later = NOW + (FULL_SCAN_DAYS + 1) * 86400
    scheduled = refresh_index(root, scan="due", now=later)
    assert scheduled.stats.scope == "all" and scheduled.stats.opened == 1
    assert rows_of(root, path) == 3 and scheduled.state.full_scan_at == later


def test_an_old_month_changed_outside_parqctl_is_seen_on_demand(root: Path):
    path = partition(root, "QQQ", 10)
    path.unlink()
    assert refresh_index(root, now=NOW + 60).stats.removed == 0
    assert refresh_index(root, scan="all", now=NOW + 60).stats.removed == 1
    assert rows_of(root, path) is None


def test_quarantine_and_restore_of_an_old_month_are_reflected(root: Path):
    path = partition(root, "PPP", 9)
    with run_lock.hold(root, "test") as lock:
        entry = quarantine.add(root, path, "test", lock=lock)
    moved = refresh_index(root, now=NOW + 60)
    assert moved.stats.scope == "hot" and moved.stats.removed == 1
    assert rows_of(root, path) is None
    assert not list((root / INDEX_DIR / "changed").iterdir())  # the notes were consumed
    with run_lock.hold(root, "test") as lock:
        quarantine.restore(root, entry.id, lock=lock)
    back = refresh_index(root, now=NOW + 120)
    assert back.stats.scope == "hot" and back.stats.opened == 1
    assert rows_of(root, path) == len([d for d in DAYS if d.month == 9])


def test_a_new_ticker_is_walked_whole_and_a_removed_one_dropped(root: Path):
    write_partitioned(root, VENUE, "1d", "NEW", daily(DAYS))
    index = refresh_index(root, now=NOW + 60)
    assert index.stats.scope == "hot" and index.stats.opened == 4
    shutil.rmtree(partition(root, "QQQ", 12).parents[2])
    dropped = refresh_index(root, now=NOW + 120)
    assert dropped.stats.removed == 4
    assert set(load_index(root).files["ticker"].to_list()) == {"LLL", "NEW", "PPP"}


def test_strays_in_hot_months_are_seen_and_old_ones_kept(root: Path):
    old = partition(root, "PPP", 9).with_name("data.parquet.tmp-9")
    refresh_index(root, now=NOW)  # before the stray
    old.write_bytes(b"partial")
    refresh_index(root, scan="all", now=NOW + 10)
    hot = partition(root, "QQQ", 12).with_name("data.parquet.tmp-12")
    hot.write_bytes(b"partial")
    index = refresh_index(root, now=NOW + 60)
    strays = {s.path for s in index.state.strays}
    rel = {p.relative_to(root).as_posix() for p in (old, hot)}
    assert strays == rel  # the old one from the full scan, the hot one from this refresh
    hot.unlink()
    assert {s.path for s in refresh_index(root, now=NOW + 90).state.strays} == {
        old.relative_to(root).as_posix()
    }


def test_health_counts_datasets_from_the_index(root: Path):
    ws = Workspace.open(root)
    inventories, state = indexed_inventories(root, ws.datasets())
    by_path = {inv.dataset.path.relative_to(root).as_posix(): inv for inv in inventories}
    partitioned = by_path["data/us/yahoo/stocks_1d"]
    assert sorted(partitioned.groups) == ["PPP", "QQQ"] and partitioned.files == 8
    assert partitioned.bytes == sum(
        p.stat().st_size for p in (root / "data/us/yahoo/stocks_1d").rglob("*.parquet")
    )
    assert by_path["stocks_1d"].files == 1 and state.refreshed_at == NOW
    report = health_report(ws, gaps=False, now=NOW + 5)
    assert report.as_dict()["index"] == {"refreshed_at": NOW, "full_scan_at": NOW}
    assert sum(inv.files for inv in report.datasets) == 9


def _collector_writes(path: Path, days: list[date]) -> None:
    """Rewrite a partition with these days, by temp file and rename (newer mtime)."""
    import pyarrow.parquet as pq
    from conftest import bar_table

    ticker = path.parts[-4][len("ticker=") :]
    temp = path.with_name("data.parquet.tmp-collector")
    pq.write_table(bar_table(ticker, daily(days)), temp)
    st = path.stat()
    os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    os.replace(temp, path)


def test_worker_processes_index_and_check_as_threads_do(root: Path, monkeypatch):
    from core.availability import index as index_module
    from core.integrity import check as integrity

    threads = load_index(root).files.drop("mtime_ns").sort("path")
    before = integrity.check(Workspace.open(root), scan="all")
    monkeypatch.setattr(index_module, "_PROCESS_POOL_FROM", 1)
    monkeypatch.setattr(integrity, "_PROCESS_POOL_FROM", 1)
    (root / ".parqctl").rename(root.parent / "state-aside")
    processes = refresh_index(root, full=True, now=NOW)
    assert processes.stats.opened == threads.height
    assert processes.files.drop("mtime_ns").sort("path").equals(threads)
    after = integrity.check(Workspace.open(root))
    assert after.rows_read == before.rows_read == threads.height
    assert [f.as_dict() for f in after.findings] == [f.as_dict() for f in before.findings]


def test_a_full_build_walked_by_the_workers_finds_what_a_scan_finds(root: Path, monkeypatch):
    """A first or full build of a large store has the worker processes walk the ticker
    directories as they read: the same records, strays and unreadable directories."""
    from core.availability import index as index_module

    month = partition(root, "PPP", 10).parent
    (month / "part-0.parquet").write_bytes(b"a stray beside the partition")
    (month.parent.parent / "notes.txt").write_text("a stray in a ticker directory")
    (month.parent / "month=13").mkdir()  # an odd directory: its files are strays
    (month.parent / "month=13" / "x.parquet").write_bytes(b"x")
    scanned = refresh_index(root, full=True, workers=1, now=NOW)  # the main process scans
    monkeypatch.setattr(index_module, "_WALK_IN_WORKERS_FROM", 1)
    monkeypatch.setattr(index_module, "_TICKERS_PER_TASK", 1)
    progress = []
    walked = refresh_index(root, full=True, workers=2, now=NOW, progress=progress.append)
    assert walked.files.drop("mtime_ns").equals(scanned.files.drop("mtime_ns"))
    assert walked.state.strays == scanned.state.strays and len(walked.state.strays) == 3
    assert walked.stats.opened == scanned.stats.opened == walked.files.height == 9
    assert progress and "ticker" in str(progress[-1])
    # The workers' records came in one small table a ticker; the shards hold one batch.
    for shard in (INDEX_DIR / walked.cold.file, INDEX_DIR / "files.arrow"):
        assert pa.ipc.open_file(read_arrow(root, shard)[0]).num_record_batches == 1


def test_a_cancelled_build_in_the_workers_keeps_what_they_read(root: Path, monkeypatch):
    from core.availability import index as index_module
    from core.jobs import CancelToken, JobCancelled

    monkeypatch.setattr(index_module, "_WALK_IN_WORKERS_FROM", 1)
    monkeypatch.setattr(index_module, "_TICKERS_PER_TASK", 1)
    token = CancelToken()
    with pytest.raises(JobCancelled):  # after the first ticker's files: the console's cancel
        refresh_index(
            root, full=True, workers=2, now=NOW, progress=lambda _: token.cancel(), cancel=token
        )
    kept = load_index(root).files
    assert kept.height == 4 and set(kept["ticker"].to_list()) == {"PPP"}
    resumed = refresh_index(root, now=NOW + 60)
    assert (resumed.stats.opened, resumed.stats.reused) == (5, 4)
    assert resumed.files.height == 9  # QQQ, unknown to the index, walked whole


def _index_and_check_in_a_daemon(root: str, answers) -> None:
    from core.availability import index as index_module
    from core.integrity import check as integrity

    index_module._PROCESS_POOL_FROM = integrity._PROCESS_POOL_FROM = 1  # every read "many"
    try:
        index = refresh_index(Path(root), full=True, now=NOW)
        report = integrity.check(Workspace.open(Path(root)), scan="all")
        answers.put((index.stats.opened, report.rows_read))
    except BaseException as exc:  # the parent asserts on what arrives
        answers.put(repr(exc))


def test_a_daemonic_process_indexes_and_checks_in_threads(root: Path):
    """The console runs health and integrity in a daemonic child (from the fork server, as
    tui.engine_process does), which may not start workers of its own: past the pool
    threshold it reads in threads instead of failing."""
    from core import fork_server

    context = fork_server.context()
    answers = context.Queue()
    child = context.Process(
        target=_index_and_check_in_a_daemon, args=(str(root), answers), daemon=True
    )
    child.start()
    answer = answers.get(timeout=120)
    child.join(30)
    files = load_index(root).files.height
    assert answer == (files, files)


def test_availability_of_an_unchanged_workspace_is_the_saved_report(root: Path, capsys):
    import json

    from tui.cli import main

    def availability() -> dict:
        code = main(["-w", str(root), "availability", "--json", "--today", "2025-12-08"])
        report = json.loads(capsys.readouterr().out)
        return {**report, "exit": code}

    first = availability()  # the first in real time: the full scan is due
    saved = availability()
    assert first["index"]["scope"] == "all" and saved["index"]["scope"] == "hot"
    assert saved["index"]["read"] == 0 and saved["index"]["files"] == 9
    assert {k: v for k, v in saved.items() if k != "index"} == {
        k: v for k, v in first.items() if k != "index"
    }
    legacy = root / "stocks_1d" / "LLL.parquet"
    _rewrite_legacy(legacy, DAYS[:-5])
    changed = availability()
    assert changed["index"]["read"] == 1
    assert changed["intervals"]["1d"] != first["intervals"]["1d"]


def _rewrite_legacy(path: Path, days: list[date]) -> None:
    import pyarrow.parquet as pq
    from conftest import bar_table

    temp = path.with_name(path.name + ".tmp-test")
    pq.write_table(bar_table(path.stem, daily(days)), temp)
    os.replace(temp, path)


def test_a_ticker_directory_parqctl_replaced_is_walked_again(root: Path):
    from core.availability import index_journal

    ticker_dir = partition(root, "PPP", 9).parents[2]
    shutil.rmtree(ticker_dir)
    write_partitioned(root, VENUE, "1d", "PPP", daily(DAYS[:3]))  # September only, 3 bars
    hot = refresh_index(root, now=NOW + 60)  # months 11 and 12 gone; 9 and 10 not looked at
    assert (hot.stats.opened, hot.stats.removed) == (0, 2)
    index_journal.note_changed(root, [ticker_dir])
    index = refresh_index(root, now=NOW + 120)
    assert index.stats.scope == "hot" and (index.stats.opened, index.stats.removed) == (1, 1)
    assert rows_of(root, partition(root, "PPP", 9)) == 3
    assert rows_of(root, partition(root, "PPP", 10)) is None


def test_a_missing_summary_is_written_again_by_the_next_refresh(root: Path):
    (root / INDEX_DIR / "summary.json").unlink()
    assert indexed_inventories(root, Workspace.open(root).datasets())[0][0].files == 1
    refresh_index(root, scan="all", now=NOW + 60)  # nothing changed, summary rewritten
    assert (root / INDEX_DIR / "summary.json").is_file()
