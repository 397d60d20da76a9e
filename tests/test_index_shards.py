"""The index's two shards: the hot one rewritten at each change, the cold one rarely.

After the collector's daily update only the hot shard is written again; a change in an
old month, or hot months that moved on, rewrite both; a cold shard that is missing or
not the one the hot shard names makes the index a damaged cache, rebuilt.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

import pytest
import test_index_freshness
from test_index_freshness import DAYS, NOW, _collector_writes, partition, rows_of

from core.availability.index import INDEX_DIR, index_path, load_index, refresh_index
from core.availability.index_state import month_key

# The same store: two tickers with months 9 to 12 of 2025 (9 and 10 cold at NOW), a legacy file.
root = test_index_freshness.root


def cold_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / INDEX_DIR).glob("cold-*.arrow"))


def stat_key(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def test_old_months_are_in_the_cold_shard_and_come_first(root: Path):
    index = load_index(root)
    assert index.cold is not None and index.cold.before == month_key(date(2025, 11, 1))
    assert index.cold.rows == 4 and cold_files(root) == [index.cold.file]
    months = index.files["month"].to_list()
    assert sorted(months[:4]) == [9, 9, 10, 10]
    assert all(m is None or m >= 11 for m in months[4:])  # the legacy file: no month
    assert index.files.height == 2 * 4 + 1


def test_the_daily_update_rewrites_the_hot_shard_alone(root: Path):
    cold = load_index(root).cold
    cold_path = root / INDEX_DIR / cold.file
    before = stat_key(cold_path), stat_key(index_path(root))
    path = partition(root, "PPP", 12)
    _collector_writes(path, [d for d in DAYS if d.month == 12][:2])
    index = refresh_index(root, now=NOW + 60)
    assert index.stats.opened == 1 and index.cold == cold
    assert stat_key(cold_path) == before[0] and stat_key(index_path(root)) != before[1]
    assert rows_of(root, path) == 2
    # What the refresh returned is what is loaded, in the same order, with the sessions.
    assert index.files.equals(load_index(root).files)
    assert refresh_index(root, now=NOW + 120, sessions=False).files.equals(
        load_index(root, sessions=False).files
    )


def test_a_change_in_an_old_month_rewrites_both_shards(root: Path):
    cold = load_index(root).cold
    path = partition(root, "QQQ", 9)
    _collector_writes(path, [d for d in DAYS if d.month == 9][:3])
    index = refresh_index(root, scan="all", now=NOW + 60)
    assert index.stats.opened == 1 and index.cold != cold and index.cold.rows == 4
    assert cold_files(root) == [index.cold.file]  # the old one is removed
    assert rows_of(root, path) == 3
    path.unlink()
    assert refresh_index(root, scan="all", now=NOW + 120).cold.rows == 3
    assert rows_of(root, path) is None


def test_the_cold_shard_follows_the_hot_months(root: Path):
    later = datetime(2026, 4, 8, 12).timestamp()  # hot from March: 2025 is all cold
    path = partition(root, "PPP", 12)
    _collector_writes(path, [d for d in DAYS if d.month == 12][:2])
    index = refresh_index(root, now=later)
    assert index.cold.before == month_key(date(2026, 3, 1)) and index.cold.rows == 8
    assert rows_of(root, path) == 2 and index.files.height == 9


def test_a_missing_or_foreign_cold_shard_makes_the_index_rebuilt(root: Path):
    cold = load_index(root).cold
    (root / INDEX_DIR / cold.file).unlink()
    assert load_index(root).files.is_empty()
    rebuilt = refresh_index(root, now=NOW + 60)
    assert rebuilt.stats.opened == 9 and load_index(root).files.height == 9
    # A cold shard of another build under the name the hot shard gives: not taken.
    other = root.parent / "other"
    shutil.copytree(root, other)
    partition(other, "QQQ", 9).unlink()
    refresh_index(other, full=True, now=NOW + 120)
    foreign = other / INDEX_DIR / load_index(other).cold.file
    foreign.replace(root / INDEX_DIR / load_index(root).cold.file)
    assert load_index(root).files.is_empty()


def test_an_index_an_earlier_parqctl_wrote_is_rebuilt_not_read(root: Path):
    """Earlier parqctl wrote IPC files with compressed buffers, which pyarrow decompresses
    to whatever size they declare: such a file is not read (the index is rebuilt), and
    what is written now is a zstd stream that the earlier parqctl cannot open either."""
    import pyarrow as pa

    from core.availability.index_shards import INDEX_SCHEMA

    whole = load_index(root)
    for version in (b"2", b"2.shards"):
        schema = INDEX_SCHEMA.with_metadata({b"parqctl.index.version": version})
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        with pa.ipc.new_file(str(index_path(root)), schema, options=options) as out:
            out.write_table(whole.files.to_arrow().cast(INDEX_SCHEMA))
        assert load_index(root).files.is_empty()
    rebuilt = refresh_index(root, now=NOW + 60)
    assert rebuilt.stats.opened == whole.files.height
    assert (
        rebuilt.files.sort("path")
        .drop("mtime_ns")
        .equals(whole.files.sort("path").drop("mtime_ns"))
    )
    with pytest.raises(pa.ArrowInvalid):
        pa.ipc.open_file(str(index_path(root)))


@pytest.mark.parametrize("shard", ["hot", "cold"])
def test_session_lists_damaged_apart_from_the_records_make_the_index_rebuilt(
    root: Path, shard: str
):
    """The session lists are stored apart from the records (most readers do not want
    them): a shard whose records read but whose lists do not is a damaged index, rebuilt
    whole, never written back with only the files that changed."""
    import struct

    whole = load_index(root)
    name = "files.arrow" if shard == "hot" else whole.cold.file
    path = root / INDEX_DIR / name
    own = path.read_bytes()
    first = struct.unpack_from("<8sQ", own)[1]
    path.write_bytes(own[: 16 + first] + b"not a zstd stream")
    assert load_index(root, sessions=False).files.height == whole.files.height
    assert load_index(root).files.is_empty()
    _collector_writes(partition(root, "PPP", 12), [d for d in DAYS if d.month == 12][:2])
    for sessions in (False, True):
        index = refresh_index(root, now=NOW + 60, sessions=sessions)
        assert index.files.height == whole.files.height
    assert load_index(root).files.height == whole.files.height
