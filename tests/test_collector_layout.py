"""The collector's layout and behaviour, on real files: rollback's carry-back, a plan the
collector rewrote, a lock taken mid-write, legacy files in a home it never reads."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from migration_support import build_source, copy_workspace

from core.errors import LockLostError, MetadataError, ParqctlError
from core.health import health_report
from core.migration.activate import activate_migration
from core.migration.plan import plan_migration
from core.migration.rollback import rollback_migration
from core.migration.run import run_migration
from core.migration.verify import verify_migration
from core.safety import run_lock
from core.store.layout import Venue
from core.store.routing import read_ticker_bars
from core.store.workspace import Workspace

US = Venue("us", "yahoo")
MONTH = "data/us/yahoo/stocks_1d/ticker={t}/year=2025/month=12/data.parquet"


@pytest.fixture(scope="module")
def active(tmp_path_factory) -> Path:
    """A 1d-only workspace in the collector's layout, migrated, verified and active."""
    source = tmp_path_factory.mktemp("layout-source") / "ws"
    report = build_source(source)
    root = copy_workspace(
        source, tmp_path_factory.mktemp("layout") / "ws", readable_only=True, report=report
    )
    for interval in ("1h", "1m"):
        shutil.rmtree(root / f"stocks_{interval}")
    for stray in (root / "stocks_1d").glob("*.tmp-*"):
        stray.unlink()
    plan_migration(Workspace.open(root), US)
    assert not run_migration(Workspace.open(root), US, workers=1, batch_size=20).failures
    assert verify_migration(Workspace.open(root), US, workers=1).ok
    activate_migration(Workspace.open(root), US)
    return root


@pytest.fixture
def ws(active: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(active, tmp_path / "ws"))


def _collector_writes(root: Path, ticker: str, day: datetime, close: float) -> None:
    """What the collector's save does in a partitioned month: read, add a bar, replace."""
    path = root / MONTH.format(t=ticker)
    table = pq.read_table(path)
    row = table.slice(table.num_rows - 1, 1).to_pylist()[0]
    row.update(date=day, close=close)
    rows = [r for r in table.to_pylist() if r["date"] != day] + [row]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path, compression="gzip")


def test_rollback_carries_back_the_bars_the_collector_wrote_into_partitions(ws: Path):
    before = read_ticker_bars(Workspace.open(ws), "AAPL", "1d")
    assert before.source == "partitioned"
    _collector_writes(ws, "AAPL", datetime(2025, 12, 31), 321.0)

    result = rollback_migration(Workspace.open(ws), US)
    [carry] = result.carried
    assert carry.rows_added == 1 and [t.ticker for t in carry.tickers] == ["AAPL"]
    after = read_ticker_bars(Workspace.open(ws), "AAPL", "1d")
    assert (after.source, after.files) == ("legacy", [ws / "stocks_1d/AAPL.parquet"])
    assert after.table.num_rows == before.table.num_rows + 1
    assert after.table.column("close")[-1].as_py() == 321.0
    # run again: nothing left to carry, nothing changed
    again = rollback_migration(Workspace.open(ws), US)
    assert again.carried == [] or all(not c.tickers for c in again.carried)


def test_a_differing_bar_refuses_the_rollback_unless_forced(ws: Path):
    last = read_ticker_bars(Workspace.open(ws), "MSFT", "1d").table.column("date")[-1].as_py()
    _collector_writes(ws, "MSFT", last, 999.0)
    tickers_before = (ws / "tickers.json").read_bytes()
    legacy_before = (ws / "stocks_1d/MSFT.parquet").read_bytes()

    refused = run_cli("-w", str(ws), "migrate", "rollback", "--yes")
    assert refused.returncode == 2
    assert "differ" in refused.stderr and "MSFT" in refused.stderr and "999.0" in refused.stderr
    assert (ws / "tickers.json").read_bytes() == tickers_before
    assert (ws / "stocks_1d/MSFT.parquet").read_bytes() == legacy_before

    forced = run_cli("-w", str(ws), "migrate", "rollback", "--yes", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "kept the partitions' values" in forced.stdout
    bars = read_ticker_bars(Workspace.open(ws), "MSFT", "1d")
    assert bars.source == "legacy" and bars.table.column("close")[-1].as_py() == 999.0


def test_rollback_moves_legacy_files_back_where_the_collector_reads_them(ws: Path):
    (ws / "data/legacy").mkdir(parents=True)
    (ws / "stocks_1d").rename(ws / "data/legacy/stocks_1d")
    plan_path = ws / "migration_plan.json"
    plan = json.loads(plan_path.read_text())
    plan["venues"][0]["intervals"]["1d"]["legacy_path"] = "data/legacy/stocks_1d"
    plan["legacy_root"] = "data/legacy"
    plan_path.write_text(json.dumps(plan))
    shutil.copy(plan_path, ws / ".parqctl/migration_plan.parqctl.json")
    count = len(list((ws / "data/legacy/stocks_1d").glob("*.parquet")))

    result = rollback_migration(Workspace.open(ws), US)
    assert sum(t.moves for t in result.carried[0].tickers) == count
    assert len(list((ws / "stocks_1d").glob("*.parquet"))) == count
    assert not list((ws / "data/legacy/stocks_1d").glob("*.parquet"))
    plan = json.loads(plan_path.read_text())
    assert plan["venues"][0]["intervals"]["1d"]["legacy_path"] == "stocks_1d"
    assert plan["legacy_root"] == "."
    assert read_ticker_bars(Workspace.open(ws), "AAPL", "1d").source == "legacy"


def test_a_plan_rewritten_without_parqctls_records_is_refused_then_restored(ws: Path):
    plan_path = ws / "migration_plan.json"
    plan = json.loads(plan_path.read_text())
    for venue in plan["venues"]:
        venue.pop("parqctl", None)
        for record in venue["intervals"].values():
            record.pop("parqctl")
            record["status"] = "complete"
    plan["created_by"] = "yf-parqed-migrate"
    plan_path.write_text(json.dumps(plan, indent=4))
    tickers_before = (ws / "tickers.json").read_bytes()

    for step in (["rollback", "--yes"], ["activate"], ["finalize", "--delete-legacy", "--yes"]):
        result = run_cli("-w", str(ws), "migrate", *step)
        assert result.returncode == 2, (step, result.stdout)
        assert "rewritten by 'yf-parqed-migrate'" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert (ws / "tickers.json").read_bytes() == tickers_before
    status = run_cli("-w", str(ws), "migrate", "status")
    assert status.returncode == 0 and "records lost" in status.stdout

    restored = run_cli("-w", str(ws), "migrate", "plan", "--restore")
    assert restored.returncode == 0, restored.stderr
    assert list((ws / ".parqctl").glob("migration_plan.rewritten-*.json"))
    assert "parqctl" in json.loads(plan_path.read_text())["venues"][0]["intervals"]["1d"]
    rolled = run_cli("-w", str(ws), "migrate", "rollback", "--yes")
    assert rolled.returncode == 0, rolled.stderr
    assert read_ticker_bars(Workspace.open(ws), "AAPL", "1d").source == "legacy"


def test_a_lock_taken_mid_write_stops_the_writer_and_health_says_so(ws: Path):
    workspace = Workspace.open(ws)
    with run_lock.hold(ws, "parqctl migrate rollback"):
        # the collector's --non-interactive update: GlobalRunLock.release() of any lock
        (ws / ".run_lock/owner.json").unlink()
        (ws / ".run_lock").rmdir()
        tickers_before = (ws / "tickers.json").read_bytes()
        with pytest.raises(LockLostError, match="removed by another program") as lost:
            workspace.save_tickers()
        assert lost.value.exit_code == 3
        assert "run `parqctl migrate rollback` again to resume" in lost.value.one_line()
        assert (ws / "tickers.json").read_bytes() == tickers_before
    audit = [json.loads(line) for line in (ws / ".parqctl/audit.jsonl").read_text().splitlines()]
    assert audit[-2]["action"] == "lock.lost"
    texts = [p.text for p in health_report(Workspace.open(ws), gaps=False).problems]
    assert any("was taken from `parqctl migrate rollback`" in t for t in texts)
    # the same command run through clears it
    assert run_cli("-w", str(ws), "migrate", "rollback", "--yes").returncode == 0
    texts = [p.text for p in health_report(Workspace.open(ws), gaps=False).problems]
    assert not any("was taken from" in t for t in texts)


def test_legacy_files_the_collector_never_reads_are_a_health_warning(tmp_path: Path):
    source = tmp_path / "demo"
    result = run_cli("demo", str(source), "--tickers", "14", "--layout", "data-legacy", "--no-open")
    assert result.returncode == 0, result.stderr
    assert not (source / "stocks_1d").exists() and (source / "data/legacy/stocks_1d").is_dir()
    texts = [p.text for p in health_report(Workspace.open(source), gaps=False).problems]
    assert any(
        "only in data/legacy/stocks_1d/, which the collector never reads" in t for t in texts
    )
    shown = json.loads(run_cli("-w", str(source), "show", "AAPL", "--json").stdout)
    assert shown["read_from"] == "stranded legacy"


def test_two_legacy_homes_refuse_a_plan(tmp_path: Path):
    source = tmp_path / "demo"
    assert run_cli("demo", str(source), "--tickers", "14", "--no-open").returncode == 0
    shutil.copytree(source / "stocks_1d", source / "data/legacy/stocks_1d")
    with pytest.raises(ParqctlError, match="legacy 1d files are in stocks_1d/ and data/legacy"):
        plan_migration(Workspace.open(source), US, ["1d"])
    assert not (source / "migration_plan.json").exists()


def test_a_plan_path_other_than_the_layouts_is_refused(ws: Path):
    plan_path = ws / "migration_plan.json"
    plan = json.loads(plan_path.read_text())
    plan["venues"][0]["intervals"]["1d"]["partition_path"] = "data/elsewhere/stocks_1d"
    plan_path.write_text(json.dumps(plan))
    with pytest.raises(MetadataError, match="partition_path is 'data/elsewhere/stocks_1d'"):
        rollback_migration(Workspace.open(ws), US)


def test_integrity_names_the_legacy_file_the_collector_reads_and_the_stranded_one(
    tmp_path: Path,
):
    root = tmp_path / "demo"
    assert run_cli("demo", str(root), "--tickers", "14", "--no-open").returncode == 0
    (root / "data/legacy/stocks_1d").mkdir(parents=True)
    shutil.copy(root / "stocks_1d/AAPL.parquet", root / "data/legacy/stocks_1d/AAPL.parquet")
    (root / "stocks_1d/MSFT.parquet").rename(root / "data/legacy/stocks_1d/MSFT.parquet")
    report = json.loads(run_cli("-w", str(root), "integrity", "--json").stdout)
    found = {(f["code"], f["ticker"]): f for f in report["findings"]}
    both = found["metadata.legacy_in_two_homes", "AAPL"]
    assert both["path"] == "data/legacy/stocks_1d/AAPL.parquet"
    assert "the collector reads stocks_1d/AAPL.parquet" in both["message"]
    alone = found["metadata.legacy_stranded", "MSFT"]
    assert "stocks_1d/MSFT.parquet, which does not exist" in alone["message"]


def test_a_legacy_path_pointing_at_another_interval_is_refused(ws: Path):
    """A 1d plan reading stocks_1h would serve hourly bars as daily ones."""
    (ws / "stocks_1h").mkdir()
    plan_path = ws / "migration_plan.json"
    plan = json.loads(plan_path.read_text())
    plan["venues"][0]["intervals"]["1d"]["legacy_path"] = "stocks_1h"
    plan_path.write_text(json.dumps(plan))
    for step in (["verify"], ["activate"], ["rollback", "--yes"], ["run"]):
        result = run_cli("-w", str(ws), "migrate", *step)
        assert result.returncode == 2, (step, result.stdout)
        assert "legacy_path is 'stocks_1h'" in result.stderr
