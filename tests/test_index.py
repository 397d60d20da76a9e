"""The file index: footers and per-session counts, refreshed incrementally, never crashing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, bar_table
from session_bars import (
    EARLY_CLOSE,
    daily,
    hourly,
    legacy_path,
    session_days,
    write_legacy,
    write_partitioned,
)

from core.availability.index import (
    INDEX_DIR,
    index_path,
    load_index,
    per_day_counts,
    read_file,
    refresh_index,
    schema_fingerprint,
)
from core.jobs import CancelToken, JobCancelled, Progress
from core.store.layout import Venue

DAYS = session_days(date(2025, 11, 17), date(2025, 12, 5))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Three legacy daily files, one hourly file and two monthly partitions."""
    root = tmp_path / "ws"
    for ticker in ("AAA", "BBB", "CCC"):
        write_legacy(root, "1d", ticker, daily(DAYS))
    write_legacy(root, "1h", "AAA", hourly(DAYS))
    write_partitioned(root, Venue("us", "yahoo"), "1d", "PPP", daily(DAYS))
    return root


def record(index, path: Path) -> dict:
    rel = path.relative_to(index.root).as_posix()
    rows = index.files.filter(index.files["path"] == rel).to_dicts()
    assert len(rows) == 1, f"{rel} not indexed once"
    return rows[0]


def touch(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_records_footer_facts_and_sessions(root: Path):
    index = refresh_index(root)
    assert index.files.height == 6
    aaa = record(index, legacy_path(root, "1d", "AAA"))
    assert aaa["kind"] == "legacy" and aaa["interval"] == "1d" and aaa["ticker"] == "AAA"
    assert aaa["venue"] is None and aaa["year"] is None and aaa["error"] is None
    assert aaa["rows"] == len(DAYS)
    assert aaa["min_date"] == datetime(2025, 11, 17) and aaa["max_date"] == datetime(2025, 12, 5)
    schema = index.schemas[aaa["schema_fingerprint"]]
    assert [name for name, _ in schema] == [
        "stock",
        "date",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "sequence",
    ]
    assert schema[1] == ("date", "timestamp[ns]")
    assert aaa["session_days"] == DAYS and set(aaa["session_bars"]) == {1}
    assert aaa["size"] == legacy_path(root, "1d", "AAA").stat().st_size
    hourly_record = record(index, legacy_path(root, "1h", "AAA"))
    bars = dict(zip(hourly_record["session_days"], hourly_record["session_bars"], strict=True))
    assert bars[EARLY_CLOSE] == 4 and bars[date(2025, 12, 1)] == 7
    partitions = index.files.filter(index.files["ticker"] == "PPP").sort("month")
    assert partitions["kind"].to_list() == ["partitioned", "partitioned"]
    assert partitions["venue"].to_list() == ["us:yahoo", "us:yahoo"]
    assert partitions["month"].to_list() == [11, 12] and partitions["year"].to_list() == [2025] * 2
    assert sum(partitions["rows"].to_list()) == len(DAYS)
    fingerprints = set(index.files["schema_fingerprint"].to_list())
    assert fingerprints == {schema_fingerprint(bar_table("X", []).schema)}


def test_refresh_opens_only_new_and_changed_files(root: Path):
    first = refresh_index(root)
    assert (first.stats.opened, first.stats.reused, first.stats.removed) == (6, 0, 0)
    assert index_path(root).is_file() and index_path(root).parent == root / INDEX_DIR

    unchanged = refresh_index(root)
    assert (unchanged.stats.opened, unchanged.stats.reused, unchanged.stats.removed) == (0, 6, 0)
    assert unchanged.files.equals(first.files)

    in_memory = refresh_index(root, previous=unchanged)  # a console's periodic refresh
    assert in_memory.stats.opened == 0 and in_memory.files is unchanged.files

    touch(legacy_path(root, "1d", "BBB"))
    touched = refresh_index(root)
    assert (touched.stats.opened, touched.stats.reused, touched.stats.removed) == (1, 5, 0)
    assert refresh_index(root, previous=unchanged).stats.opened == 1

    legacy_path(root, "1d", "CCC").unlink()
    removed = refresh_index(root)
    assert (removed.stats.opened, removed.stats.reused, removed.stats.removed) == (0, 5, 1)
    assert "CCC" not in removed.files["ticker"].to_list()
    assert load_index(root).files.equals(removed.files)

    full = refresh_index(root, full=True)
    assert (full.stats.opened, full.stats.reused) == (5, 0)


def test_an_unchanged_file_is_not_read_again(root: Path):
    """Same size and mtime: the index keeps what it read before, even if the bytes differ."""
    refresh_index(root)
    path = legacy_path(root, "1d", "AAA")
    st = path.stat()
    path.write_bytes(b"\0" * st.st_size)  # what a re-read would report as unreadable
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    index = refresh_index(root)
    assert index.stats.opened == 0
    assert record(index, path)["error"] is None and record(index, path)["rows"] == len(DAYS)


def test_a_rewritten_file_is_read_again(root: Path):
    refresh_index(root)
    path = write_legacy(root, "1d", "AAA", daily(DAYS[:3]))
    touch(path)  # a rewrite within the filesystem's timestamp granularity still counts
    index = refresh_index(root)
    assert index.stats.opened == 1
    assert record(index, path)["rows"] == 3 and record(index, path)["session_days"] == DAYS[:3]


def test_temp_and_partial_files_are_ignored(root: Path):
    directory = legacy_path(root, "1d", "AAA").parent
    data = legacy_path(root, "1d", "AAA").read_bytes()
    for name in (
        "AAA.parquet.tmp-123-456-abc",
        ".AAA.parquet.parqctl-tmp-1-deadbeef",
        "AAA.parquet.partial",
        "notes.txt",
    ):
        (directory / name).write_bytes(data)
    partition = root / "data/us/yahoo/stocks_1d/ticker=PPP/year=2025/month=11"
    (partition / "data.parquet.tmp-1-2-3").write_bytes(data)
    index = refresh_index(root)
    assert index.files.height == 6
    assert not any(".tmp" in p or p.endswith((".partial", ".txt")) for p in index.files["path"])


def test_corrupt_files_are_records_with_their_error(root: Path):
    truncated = legacy_path(root, "1d", "BBB")
    os.truncate(truncated, truncated.stat().st_size // 2)
    empty = write_legacy(root, "1d", "EMPTY", [])
    zero = legacy_path(root, "1d", "ZERO")
    zero.write_bytes(b"")
    no_date = legacy_path(root, "1d", "NODATE")
    pq.write_table(pa.table({"stock": ["NODATE"], "close": [1.0]}), no_date)
    index = refresh_index(root)
    assert index.files.height == 9
    assert "magic bytes" in record(index, truncated)["error"]
    assert (
        record(index, truncated)["rows"] is None
        and record(index, truncated)["schema_fingerprint"] is None
    )
    assert "0 bytes" in record(index, zero)["error"] and record(index, zero)["size"] == 0
    missing = record(index, no_date)
    assert missing["error"] == "no `date` column" and [
        n for n, _ in index.schemas[missing["schema_fingerprint"]]
    ] == ["stock", "close"]
    assert missing["rows"] == 1
    assert record(index, empty)["error"] is None and record(index, empty)["session_days"] == []
    assert index.readable.height == 6 and index.unreadable.height == 3
    assert record(index, legacy_path(root, "1d", "AAA"))["rows"] == len(DAYS)


def test_distinct_bar_times_per_day_and_zoned_dates(tmp_path: Path):
    times = [datetime(2025, 12, 1, 9, 30), datetime(2025, 12, 1, 10, 30)]
    days, bars = per_day_counts(
        pa.array(times + times[:1], pa.timestamp("ns")).to_numpy().view("int64")
    )
    assert days.tolist() == [(date(2025, 12, 1) - date(1970, 1, 1)).days]
    assert bars.tolist() == [2]  # a repeated row is counted once
    zoned = tmp_path / "zoned.parquet"
    utc = pa.array([datetime(2025, 12, 2, 3, 0)], pa.timestamp("ns", tz="UTC"))
    pq.write_table(pa.table({"date": utc.cast(pa.timestamp("ns", tz="America/New_York"))}), zoned)
    content, retried = read_file(zoned)
    # 03:00 UTC is 22:00 the day before in New York: the local wall time decides the session
    assert content.error is None and retried == 0
    assert content.days.tolist() == [(date(2025, 12, 1) - date(1970, 1, 1)).days]


def test_a_cancelled_refresh_keeps_what_it_read(tmp_path: Path):
    root = tmp_path / "ws"
    for i in range(70):
        write_legacy(root, "1d", f"T{i:03d}", daily(DAYS[:2]))
    token = CancelToken()
    seen = []

    def progress(report: Progress) -> None:
        seen.append(report.done)
        token.cancel()  # as the console's cancel button would, after the first batch

    with pytest.raises(JobCancelled):
        refresh_index(root, workers=1, progress=progress, cancel=token)
    assert seen == [64] and load_index(root).files.height == 64
    resumed = refresh_index(root)
    assert (resumed.stats.opened, resumed.stats.reused) == (6, 64)


def test_a_corrupt_or_foreign_index_is_rebuilt(root: Path):
    refresh_index(root)
    index_path(root).write_bytes(b"not an arrow file")
    assert load_index(root).files.height == 0
    rebuilt = refresh_index(root)
    assert rebuilt.stats.opened == 6 and load_index(root).files.height == 6


def test_an_unwritable_state_dir_still_answers(root: Path):
    (root / ".parqctl").write_text("a file where the state directory should be")
    index = refresh_index(root)
    assert index.files.height == 6
    assert not index.stats.persisted and "cannot write" in index.stats.persist_error


def test_a_file_rewritten_in_place_while_read_never_crashes(tmp_path: Path):
    """A writer that rewrites a file in place (not atomically) while it is being indexed."""
    path = write_legacy(tmp_path, "1d", "HOT", daily(DAYS))
    versions = [path.read_bytes(), pq.ParquetFile(path).read().slice(0, 5)]
    small = tmp_path / "small.parquet"
    pq.write_table(versions[1], small)
    versions[1] = small.read_bytes()
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            with open(path, "wb") as handle:  # truncates, then writes in pieces
                data = versions[i % 2]
                handle.write(data[: len(data) // 2])
                handle.flush()
                handle.write(data[len(data) // 2 :])
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        results = [read_file(path)[0] for _ in range(300)]
    finally:
        stop.set()
        thread.join()
    for content in results:  # each read is a clean record, an error, or a vanished file
        assert content is None or content.error is not None or content.rows in (5, len(DAYS))
    final = refresh_index(tmp_path)
    assert final.files["rows"].to_list() == [pq.ParquetFile(path).metadata.num_rows]


def test_two_refreshes_at_once_leave_a_valid_index(root: Path):
    code = (
        "import sys; from pathlib import Path; from core.availability.index import refresh_index; "
        "refresh_index(Path(sys.argv[1]), full=True)"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(root)], cwd=REPO) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    index = load_index(root)
    assert index.files.height == 6 and index.unreadable.height == 0
    expected = {"files.arrow", "summary.json", "state.json", "hot.json", index.cold.file}
    leftovers = [p.name for p in index_path(root).parent.iterdir() if p.name not in expected]
    # The loser's cold shard may stay (newer than the one named) until the next full write.
    assert all(name.startswith("cold-") and name > index.cold.file for name in leftovers)
