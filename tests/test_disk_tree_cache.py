"""The per-directory cache behind ``disk``: what another program changes is reflected, on
the next call for the recent months and the tree's shape, on a full check for older months."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from conftest import run_cli

from core.disk.tree_cache import CACHE_FILE, tree_totals

NOW = datetime(2024, 6, 15, tzinfo=UTC).timestamp()  # hot: 2024-05 on


def truth(dataset: Path) -> tuple[int, int, int]:
    """(bytes, apparent, files) by a plain walk, as du counts (each inode once)."""
    allocated = apparent = files = 0
    seen = set()
    for directory, _, names in os.walk(dataset):
        st = os.lstat(directory)
        allocated, apparent = allocated + st.st_blocks * 512, apparent + st.st_size
        for name in names:
            st = os.lstat(os.path.join(directory, name))
            files += 1
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            allocated, apparent = allocated + st.st_blocks * 512, apparent + st.st_size
    return allocated, apparent, files


def write(path: Path, size: int) -> None:
    """Written as the collector writes: a temp file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(b"x" * size)
    os.replace(tmp, path)


def month_file(dataset: Path, ticker: str, year: int, month: int) -> Path:
    return dataset / f"ticker={ticker}" / f"year={year}" / f"month={month:02d}" / "data.parquet"


def make_store(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "ws"
    dataset = root / "data/us/yahoo/stocks_1d"
    for ticker in ("AAA", "BBB"):
        for year, month in ((2023, 11), (2023, 12), (2024, 1), (2024, 5), (2024, 6)):
            write(month_file(dataset, ticker, year, month), 5000)
    return root, dataset


def totals(root: Path, dataset: Path, **kw):
    result = tree_totals(root, [dataset], now=NOW, **kw)
    return result, result.totals(set())[0]


def test_first_call_walks_and_later_calls_check_only_recent_months(tmp_path: Path):
    root, dataset = make_store(tmp_path)
    first, counted = totals(root, dataset)
    assert first.checked == "full walk"
    assert counted == truth(dataset)
    again, counted = totals(root, dataset)
    assert again.checked == "recent months"
    assert counted == truth(dataset)
    # dataset, 2 tickers, year 2024 of each, months 05 and 06 of each: not 2023, not 2024-01
    assert again.directories_checked == 1 + 2 + 2 + 4
    assert again.directories_rescanned == 0


def test_recent_month_and_tree_changes_by_another_program_are_reflected(tmp_path: Path):
    root, dataset = make_store(tmp_path)
    totals(root, dataset)
    write(month_file(dataset, "AAA", 2024, 6), 40000)  # the collector's daily rewrite
    month_file(dataset, "BBB", 2024, 5).unlink()
    write(month_file(dataset, "CCC", 2021, 3), 7000)  # a new ticker, however old
    write(month_file(dataset, "AAA", 2022, 2), 9000)  # a new year in an old ticker
    result, counted = totals(root, dataset)
    assert result.checked == "recent months"
    assert counted == truth(dataset)


def test_a_directory_renamed_over_another_is_counted_afresh(tmp_path: Path):
    root, dataset = make_store(tmp_path)
    totals(root, dataset)
    replacement = tmp_path / "staged" / "ticker=AAA"
    write(replacement / "year=2023/month=11/data.parquet", 123456)
    os.rename(dataset / "ticker=AAA", tmp_path / "old-AAA")
    os.rename(replacement, dataset / "ticker=AAA")
    _, counted = totals(root, dataset)
    assert counted == truth(dataset)


def test_an_old_month_changed_by_another_program_waits_for_a_full_check(tmp_path: Path):
    root, dataset = make_store(tmp_path)
    before = truth(dataset)
    totals(root, dataset)
    write(month_file(dataset, "AAA", 2023, 11), 60000)
    (month_file(dataset, "BBB", 2023, 12).parent / "stray.bin").write_bytes(b"y" * 9000)
    result, counted = totals(root, dataset)
    assert counted == before  # documented: older months are not checked on every call
    result, counted = totals(root, dataset, refresh=True)
    assert result.checked == "all directories"
    assert counted == truth(dataset) != before


def test_a_parqctl_write_recorded_in_the_audit_log_triggers_a_full_check(tmp_path: Path):
    root, dataset = make_store(tmp_path)
    totals(root, dataset)
    month_file(dataset, "AAA", 2023, 11).unlink()  # e.g. a quarantine of an old month
    (root / ".parqctl" / "audit.jsonl").write_text('{"action": "quarantine.add"}\n')
    result, counted = totals(root, dataset)
    assert result.checked == "all directories"
    assert counted == truth(dataset)
    assert totals(root, dataset)[0].checked == "recent months"


def test_a_day_after_the_last_full_check_every_directory_is_checked(tmp_path: Path):
    root, dataset = make_store(tmp_path)
    tree_totals(root, [dataset], now=NOW)
    later = tree_totals(root, [dataset], now=NOW + 25 * 3600)
    assert later.checked == "all directories"


def test_hard_links_count_once_and_not_when_counted_elsewhere(tmp_path: Path):
    root, dataset = make_store(tmp_path)
    os.link(month_file(dataset, "AAA", 2023, 11), dataset / "ticker=AAA" / "linked.bin")
    outside = root / "legacy.parquet"
    os.link(month_file(dataset, "BBB", 2023, 11), outside)
    result, counted = totals(root, dataset)
    assert counted == truth(dataset)
    st = os.lstat(outside)
    elsewhere = result.totals({(st.st_dev, st.st_ino)})[0]
    assert elsewhere[0] == counted[0] - st.st_blocks * 512


def test_a_torn_or_foreign_cache_is_rebuilt(tmp_path: Path):
    root, dataset = make_store(tmp_path)
    totals(root, dataset)
    cache = root / CACHE_FILE
    cache.write_bytes(cache.read_bytes()[:200])
    result, counted = totals(root, dataset)
    assert result.checked == "full walk" and counted == truth(dataset)
    other = root / "data/us/yahoo/stocks_1h"
    other.mkdir()
    assert tree_totals(root, [dataset, other], now=NOW).checked == "full walk"


def test_disk_json_says_how_fresh_and_counts_what_the_tree_holds(tmp_path: Path):
    root, dataset = make_store(tmp_path)
    first = json.loads(run_cli("-w", str(root), "disk", "--json").stdout)
    write(month_file(dataset, "AAA", 2099, 1), 30000)  # a month the clock calls recent
    second = json.loads(run_cli("-w", str(root), "disk", "--json").stdout)
    assert first["checked"] == "full walk"
    assert second["checked"] == "recent months"
    (partitioned,) = [b for b in second["breakdown"] if b["kind"] == "partitioned"]
    assert (partitioned["bytes"], partitioned["apparent_bytes"], partitioned["files"]) == truth(
        dataset
    )
    text = run_cli("-w", str(root), "disk").stdout
    assert "older months as of" in text


def test_the_migrate_and_disk_commands_import_no_numpy_up_front():
    """NumPy starts a thread at import: migrate's parent must stay single-threaded to
    fork its workers (a fork server costs every worker its imports)."""
    code = (
        "import sys, tui.commands.migrate, tui.commands.disk, core.disk.usage;"
        "print('numpy' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
