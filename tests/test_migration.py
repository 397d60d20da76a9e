"""The migration engine on real Parquet workspaces: plan, run, verify, activate, roll back."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, bar_table, run_cli, tree_digest
from migration_support import copy_workspace, legacy_hashes

from core.errors import DiskSpaceError, ParqctlError
from core.migration import months as mo
from core.migration.activate import activate_migration
from core.migration.dryrun import dry_run
from core.migration.finalize import finalize_migration
from core.migration.plan import plan_migration
from core.migration.rollback import rollback_migration
from core.migration.run import run_migration
from core.migration.verify import verify_migration
from core.safety import audit
from core.store.bars import write_bar_file
from core.store.layout import Venue
from core.store.metadata import StorageBlock
from core.store.routing import read_ticker_bars
from core.store.workspace import Workspace

US = Venue("us", "yahoo")
IVS = ["1d", "1h"]


@pytest.fixture
def demo(source, tmp_path) -> Path:
    root, report = source
    return copy_workspace(root, tmp_path / "ws", readable_only=False, report=report)


def _ws(root: Path) -> Workspace:
    return Workspace.open(root)


def _migrate(root: Path, intervals: list[str] = IVS):
    plan_migration(_ws(root), US, intervals)
    return run_migration(_ws(root), US, intervals, workers=1, batch_size=3)


def _injection(source, kind: str):
    return next(i for i in source[1].injections if i.kind == kind)


def _legacy_rows(root: Path, interval: str, ticker: str) -> pa.Table:
    path = root / f"stocks_{interval}" / f"{ticker}.parquet"
    return pq.read_table(path).replace_schema_metadata(None)


def _partition_file(root: Path, interval: str, ticker: str, year: int, month: int) -> Path:
    return (
        root / "data/us/yahoo" / f"stocks_{interval}" / f"ticker={ticker}"
        / f"year={year:04d}" / f"month={month:02d}" / "data.parquet"
    )  # fmt: skip


def test_the_collector_reads_exactly_the_legacy_rows_after_activation(clean: Path, source):
    before = legacy_hashes(clean)
    result = _migrate(clean)
    assert not result.failures and all(i.complete for i in result.intervals)
    assert verify_migration(_ws(clean), US, workers=1).ok
    activated = activate_migration(_ws(clean), US)
    assert {i.action for i in activated.intervals} == {"activated"}

    ws = _ws(clean)
    duplicated = _injection(source, "duplicates").ticker
    for interval in IVS:
        for path in sorted((clean / f"stocks_{interval}").glob("*.parquet")):
            ticker = path.stem
            bars = read_ticker_bars(ws, ticker, interval)
            assert bars.source == "partitioned", (ticker, interval)
            expected = _legacy_rows(clean, interval, ticker)
            if ticker == duplicated and interval == "1h":
                # the three exact repeats are collapsed (and were reported)
                assert bars.table.num_rows == expected.num_rows - 3
                expected = pa.Table.from_pylist(
                    list({r["date"]: r for r in expected.to_pylist()}.values()), expected.schema
                )
            assert bars.table.equals(expected), (ticker, interval)
            block = ws.tickers.get(ticker).storage(interval)
            assert block is not None and block.mode == "partitioned" and block.venue == US
    raw = ws.tickers.get("AAPL").raw["intervals"]["1d"]["storage"]
    assert set(raw) == set(StorageBlock.partitioned_raw(US, "x"))
    assert legacy_hashes(clean) == before
    actions = [r["action"] for r in audit.read(clean)]
    for step in ("migrate.plan", "migrate.run", "migrate.verify", "migrate.activate"):
        assert step in actions


def test_the_plan_keeps_the_collectors_fields(clean: Path):
    _migrate(clean, ["1d"])
    plan = json.loads((clean / "migration_plan.json").read_text())
    assert plan["schema_version"] == 1 and plan["legacy_root"] == "."
    [venue] = plan["venues"]
    assert (venue["id"], venue["market"], venue["source"], venue["status"]) == (
        "us:yahoo", "US", "yahoo", "complete",
    )  # fmt: skip
    day = venue["intervals"]["1d"]
    assert day["legacy_path"] == "stocks_1d"
    assert day["partition_path"] == "data/us/yahoo/stocks_1d"
    assert day["jobs"]["total"] == day["jobs"]["completed"] == 13
    assert day["totals"]["legacy_rows"] == day["totals"]["partition_rows"] > 0
    assert day["resume_token"] is None and set(day["verification"]) == {"method", "verified_at"}


def test_an_existing_plan_is_only_reset_with_force(clean: Path):
    _migrate(clean, ["1d"])
    kept = plan_migration(_ws(clean), US, ["1d"])
    assert kept.intervals[0].action == "kept"
    assert _ws(clean).migration_plan.raw["venues"][0]["intervals"]["1d"]["status"] == "complete"
    reset = plan_migration(_ws(clean), US, ["1d"], force=True)
    assert reset.intervals[0].action == "reset"
    assert _ws(clean).migration_plan.raw["venues"][0]["intervals"]["1d"]["status"] == "pending"


def test_dry_run_writes_nothing(demo: Path, source):
    plan_migration(_ws(demo), US, IVS)
    before = tree_digest(demo)
    results = {r.interval: r for r in dry_run(_ws(demo), US, workers=1)}
    assert tree_digest(demo) == before
    day = results["1d"]
    failed = {o.ticker: o.kind for o in day.failures}
    assert failed == {_injection(source, "truncated").ticker: "unreadable"}
    aapl = next(o for o in day.outcomes if o.ticker == "AAPL")
    assert [f.action for f in aapl.files] == ["new"] * len(aapl.files)
    assert sum(f.rows for f in aapl.files) == _legacy_rows(demo, "1d", "AAPL").num_rows
    dup = next(
        o for o in results["1h"].outcomes if o.ticker == _injection(source, "duplicates").ticker
    )
    assert len(dup.collapsed) == 3


def test_collector_written_partitions_are_merged_not_lost(clean: Path):
    legacy = _legacy_rows(clean, "1d", "AAPL")
    last = legacy.column("date")[-1].as_py()
    overlap = [
        last - timedelta(days=d) for d in (3, 0) if (last - timedelta(days=d)).month == last.month
    ]
    stored_overlap = legacy.filter(
        pa.compute.is_in(legacy.column("date"), pa.array(overlap, pa.timestamp("ns")))
    )
    newer = [last + timedelta(days=1)]
    same_month = pa.concat_tables([stored_overlap, bar_table("AAPL", newer, 500.0)])
    same_month_file = _partition_file(clean, "1d", "AAPL", last.year, last.month)
    write_bar_file(same_month_file, same_month)
    next_month = datetime(last.year + (last.month == 12), last.month % 12 + 1, 3)
    newer_file = _partition_file(clean, "1d", "AAPL", next_month.year, next_month.month)
    write_bar_file(newer_file, bar_table("AAPL", [next_month], 600.0))
    newer_bytes = newer_file.read_bytes()

    result = _migrate(clean, ["1d"])
    assert not result.failures
    assert newer_file.read_bytes() == newer_bytes  # a month the legacy file lacks: untouched
    merged = pq.read_table(same_month_file)
    assert set(newer) <= set(merged.column("date").to_pylist())
    assert verify_migration(_ws(clean), US, workers=1).ok
    activate_migration(_ws(clean), US)
    bars = read_ticker_bars(_ws(clean), "AAPL", "1d").table
    assert bars.num_rows == legacy.num_rows + 2
    assert set(legacy.column("date").to_pylist()) < set(bars.column("date").to_pylist())


def test_a_stored_row_with_other_values_is_a_conflict_not_an_overwrite(clean: Path):
    legacy = _legacy_rows(clean, "1d", "MSFT")
    row = legacy.slice(5, 1)
    when = row.column("date")[0].as_py()
    changed = row.set_column(5, "close", pa.array([row.column("close")[0].as_py() + 1.0]))
    path = _partition_file(clean, "1d", "MSFT", when.year, when.month)
    write_bar_file(path, changed)
    stored = path.read_bytes()
    result = _migrate(clean, ["1d"])
    [failure] = result.failures
    assert (failure.ticker, failure.kind) == ("MSFT", "conflict")
    assert failure.conflicts[0]["columns"] == ["close"]
    assert failure.conflicts[0]["date"].startswith(when.date().isoformat())
    assert path.read_bytes() == stored
    assert sum(i.migrated for i in result.intervals) == 13 - 1


def test_legacy_duplicates_collapse_when_equal_and_fail_when_not(clean: Path, source):
    dup = _injection(source, "duplicates").ticker
    times = [datetime(2025, 3, 3, 9, 30) + timedelta(hours=i) for i in range(5)]
    table = bar_table("BAD", times)
    twin = table.slice(2, 1).set_column(6, "volume", pa.array([1], pa.int64()))
    write_bar_file(clean / "stocks_1h/BAD.parquet", pa.concat_tables([table, twin]))
    [hour] = _migrate(clean, ["1h"]).intervals
    assert hour.collapsed[dup] and len(hour.collapsed[dup]) == 3
    [failure] = hour.failures
    assert (failure.ticker, failure.kind) == ("BAD", "conflict")
    assert failure.conflicts[0]["columns"] == ["volume"]


def test_an_extra_column_is_carried_and_verified(clean: Path, source):
    ticker = _injection(source, "extra_column").ticker
    _migrate(clean, ["1d"])
    files = sorted((clean / "data/us/yahoo/stocks_1d" / f"ticker={ticker}").rglob("data.parquet"))
    assert files and all("adjclose" in pq.read_schema(f).names for f in files)
    assert verify_migration(_ws(clean), US, workers=1).ok
    table = pq.read_table(files[3])
    values = table.column("adjclose").to_pylist()
    values[1] += 0.0001
    pq.write_table(table.set_column(8, "adjclose", pa.array(values)), files[3], compression="gzip")
    result = verify_migration(_ws(clean), US, ["1d"], workers=1)
    [failure] = result.intervals[0].failures
    assert failure.ticker == ticker and "adjclose" in failure.problems[0]


@pytest.mark.parametrize("column", ["open", "volume", "date"])
def test_one_changed_value_in_a_partition_file_fails_verify(clean: Path, column: str):
    _migrate(clean, ["1h"])
    path = sorted((clean / "data/us/yahoo/stocks_1h/ticker=AAPL").rglob("data.parquet"))[4]
    table = pq.read_table(path)
    values = table.column(column).to_pylist()
    values[7] = values[7] + (timedelta(minutes=1) if column == "date" else 1)
    i = table.column_names.index(column)
    pq.write_table(
        table.set_column(
            i, table.schema.field(column), pa.array(values, table.schema.field(column).type)
        ),
        path,
    )
    result = verify_migration(_ws(clean), US, workers=1)
    assert not result.ok
    assert [f.ticker for i in result.intervals for f in i.failures] == ["AAPL"]
    with pytest.raises(ParqctlError, match="has not passed verification"):
        activate_migration(_ws(clean), US, ["1h"])


def _aapl_1h_month_files(root: Path) -> list[Path]:
    return sorted((root / "data/us/yahoo/stocks_1h/ticker=AAPL").rglob("data.parquet"))


def _only_failure(root: Path) -> list[str]:
    result = verify_migration(_ws(root), US, ["1h"], workers=1)
    [failure] = result.intervals[0].failures
    assert failure.ticker == "AAPL"
    return failure.problems


def test_verify_names_a_file_holding_rows_of_another_month(clean: Path):
    _migrate(clean, ["1h"])
    first, second = _aapl_1h_month_files(clean)[4:6]
    moved = pq.read_table(second).slice(0, 1)
    pq.write_table(pa.concat_tables([pq.read_table(first), moved]), first, compression="gzip")
    pq.write_table(pq.read_table(second).slice(1), second, compression="gzip")
    relative = first.relative_to(clean / "data/us/yahoo/stocks_1h").as_posix()
    assert _only_failure(clean) == [f"{relative}: holds rows of another month"]


def test_verify_reports_a_column_of_another_type_in_one_file(clean: Path):
    _migrate(clean, ["1h"])
    path = _aapl_1h_month_files(clean)[7]
    table = pq.read_table(path)
    i = table.column_names.index("volume")
    table = table.set_column(i, "volume", table.column("volume").cast(pa.float64()))
    pq.write_table(table, path, compression="gzip")
    [problem] = _only_failure(clean)
    assert problem.endswith("column volume is double, not int64")


def test_verify_names_a_session_missing_from_the_partitions(clean: Path):
    _migrate(clean, ["1h"])
    path = _aapl_1h_month_files(clean)[3]
    table = pq.read_table(path)
    day = table.column("date")[0].as_py().date()
    keep = [d.date() != day for d in table.column("date").to_pylist()]
    pq.write_table(table.filter(pa.array(keep)), path, compression="gzip")
    problems = _only_failure(clean)
    assert f"1 sessions missing in the partitions: {day.isoformat()}" in problems


def test_activation_refuses_when_legacy_changed_since_verify(clean: Path):
    _migrate(clean, ["1d"])
    verify_migration(_ws(clean), US, workers=1)
    path = clean / "stocks_1d/AAPL.parquet"
    write_bar_file(path, pq.read_table(path).slice(1))
    with pytest.raises(ParqctlError, match="changed or appeared since verification"):
        activate_migration(_ws(clean), US, ["1d"])


def test_rollback_routes_back_and_purges_only_what_it_created(clean: Path):
    legacy = _legacy_rows(clean, "1d", "AAPL")
    first = legacy.column("date")[0].as_py()
    collector_file = _partition_file(clean, "1d", "AAPL", first.year, first.month)
    write_bar_file(collector_file, legacy.slice(0, 1))
    _migrate(clean, ["1d"])
    verify_migration(_ws(clean), US, workers=1)
    activate_migration(_ws(clean), US)
    asked = []
    result = rollback_migration(
        _ws(clean), US, purge=True, confirm_purge=lambda p: asked.append(p) or True
    )
    assert result.blocks_removed == 14 and asked and asked[0].kept_merged == 1
    ws = _ws(clean)
    assert read_ticker_bars(ws, "AAPL", "1d").source == "legacy"
    assert all(e.storage("1d") is None for e in ws.tickers.entries())
    left = sorted((clean / "data/us/yahoo").rglob("*.parquet"))
    assert left == [collector_file]  # held collector rows before the migration: kept
    interval = ws.migration_plan.raw["venues"][0]["intervals"]["1d"]
    assert interval["status"] == "pending" and interval["jobs"]["completed"] == 0


def test_finalize_deletes_legacy_only_after_activation_and_then_blocks_rollback(clean: Path):
    _migrate(clean, ["1d"])
    verify_migration(_ws(clean), US, workers=1)
    with pytest.raises(ParqctlError, match="not active"):
        finalize_migration(_ws(clean), US, ["1d"], confirm=lambda p: True, workers=1)
    activate_migration(_ws(clean), US, ["1d"])
    declined = finalize_migration(_ws(clean), US, ["1d"], confirm=lambda p: False, workers=1)
    assert not declined.deleted and len(declined.deletion.files) == 13
    assert len(list((clean / "stocks_1d").glob("*.parquet"))) == 13
    done = finalize_migration(_ws(clean), US, ["1d"], confirm=lambda p: True, workers=1)
    assert done.deleted and not list((clean / "stocks_1d").glob("*.parquet"))
    assert read_ticker_bars(_ws(clean), "AAPL", "1d").source == "partitioned"
    with pytest.raises(ParqctlError, match="no longer there"):
        rollback_migration(_ws(clean), US, ["1d"])


def test_cli_run_reports_unreadable_files_and_ends_with_failures(demo: Path, source):
    truncated = _injection(source, "truncated")
    w = ["-w", str(demo), "migrate"]
    assert run_cli(*w, "plan", "--interval", "1d").returncode == 0
    result = run_cli(*w, "run", "--interval", "1d", "--workers", "2", "--batch-size", "5")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "parqctl: completed with 1 failures"
    assert (
        f"parqctl quarantine add {truncated.path.relative_to(source[0]).name}"
        in result.stdout.replace(str(demo / "stocks_1d") + "/", "")
    )
    assert (demo / truncated.path.relative_to(source[0])).exists()
    status = json.loads(run_cli(*w, "status", "--json").stdout)
    [day] = status
    assert (day["done"], day["failed"], day["status"]) == (13, 1, "migrating")
    assert day["failures"][0]["ticker"] == truncated.ticker
    verify = run_cli(*w, "verify", "--interval", "1d", "--workers", "1")
    assert verify.returncode == 1 and truncated.ticker in verify.stdout


def test_cli_refuses_an_unknown_interval_in_one_line(clean: Path):
    result = run_cli("-w", str(clean), "migrate", "run", "--interval", "1d")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no migration plan" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_process_holding_the_lock_never_imports_pyarrow():
    """It forks its workers: pyarrow's threads must not exist in it yet."""
    code = (
        "import sys\n"
        "import core.migration.run, core.migration.verify, core.migration.activate\n"
        "import core.migration.rollback, core.migration.plan, core.migration.status\n"
        "import tui.commands.migrate\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pyarrow', 'numpy', 'pandas', 'polars', 'textual', 'rich')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "[]"


def test_months_listed_in_the_plan_match_the_files(clean: Path):
    _migrate(clean, ["1h"])
    plan = json.loads((clean / "migration_plan.json").read_text())
    record = plan["venues"][0]["intervals"]["1h"]["parqctl"]["tickers"]["AAPL"]
    on_disk = mo.partition_files(clean / "data/us/yahoo/stocks_1h/ticker=AAPL")
    assert sorted(on_disk) == mo.expand(record["created"])


def test_run_refuses_to_start_past_the_critical_watermark(demo: Path):
    plan_migration(_ws(demo), US, IVS)
    (demo / ".parqctl" / "config.toml").write_text(
        "[watermarks]\nwarn = 1\ncritical = 2\nblock = 99\n"
    )
    with pytest.raises(DiskSpaceError, match="past the critical watermark"):
        run_migration(_ws(demo), US, workers=1)
    assert not (demo / "data" / "us").exists()
    assert not (demo / ".run_lock").exists()


def test_bars_that_cannot_be_combined_fail_that_ticker_only(clean: Path):
    legacy = _legacy_rows(clean, "1d", "AAPL")
    last = legacy.column("date")[-1].as_py()
    stored = bar_table("AAPL", [last + timedelta(days=1)], 500.0)
    stored = stored.append_column("note", pa.array([{"a": 1}], pa.struct([("a", pa.int64())])))
    write_bar_file(_partition_file(clean, "1d", "AAPL", last.year, last.month), stored)
    (clean / "stocks_1d/AAPL.parquet").write_bytes(
        _with_note_column(_legacy_rows(clean, "1d", "AAPL"))
    )

    result = _migrate(clean, ["1d"])
    assert [f.ticker for f in result.failures] == ["AAPL"]
    assert (clean / "data/us/yahoo/stocks_1d/ticker=MSFT").is_dir()


def _with_note_column(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table.append_column("note", pa.array(["x"] * table.num_rows)), sink)
    return sink.getvalue().to_pybytes()


def test_purge_keeps_a_crashed_promotion_the_collector_wrote_into(clean: Path):
    _migrate(clean, ["1d"])
    plan_path = clean / "migration_plan.json"
    plan = json.loads(plan_path.read_text())
    record = plan["venues"][0]["intervals"]["1d"]["parqctl"]["tickers"]["AAPL"]
    record["state"] = "promoting"  # as a run killed between its renames and its checkpoint
    record.pop("tree", None)
    plan_path.write_text(json.dumps(plan))
    aapl_files = sorted((clean / "data/us/yahoo/stocks_1d/ticker=AAPL").rglob("data.parquet"))
    newest = aapl_files[-1]
    table = pq.read_table(newest)
    collector_row = bar_table("AAPL", [table.column("date")[-1].as_py() + timedelta(hours=1)])
    write_bar_file(newest, pa.concat_tables([table, collector_row.select(table.column_names)]))
    kept_bytes = newest.read_bytes()

    result = rollback_migration(
        _ws(clean), US, purge=True, force=True, confirm_purge=lambda p: True
    )
    assert "AAPL" in result.purge.kept_changed
    assert newest.read_bytes() == kept_bytes
    assert not (clean / "data/us/yahoo/stocks_1d/ticker=MSFT").exists()


def test_a_stopped_run_with_a_failure_is_audited_as_cancelled(demo: Path, source):
    from core.jobs import CancelToken

    truncated = _injection(source, "truncated")
    plan_migration(_ws(demo), US, ["1d"])
    token = CancelToken()

    def stop_after_the_failure(progress) -> None:
        if progress.message == truncated.ticker:
            token.cancel()

    result = run_migration(
        _ws(demo), US, ["1d"], workers=1, batch_size=2, progress=stop_after_the_failure, token=token
    )
    assert result.cancelled and [f.ticker for f in result.failures] == [truncated.ticker]
    [ended] = [
        r for r in audit.read(demo) if r["action"] == "migrate.run" and r["result"] != "started"
    ]
    assert ended["result"] == "cancelled"
