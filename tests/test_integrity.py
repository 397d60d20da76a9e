"""Integrity checks find every kind of damage, made for real, with the right severity."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import bar_table, run_cli, ticker_entry, tree_digest, write_tickers

from core.integrity import check as integrity
from core.integrity import quarantine
from core.integrity.findings import LAST_REPORT, Scope, Severity, last_summary
from core.safety import run_lock
from core.safety.atomic import write_json
from core.store.demo import build_demo, dead_pid
from core.store.workspace import Workspace

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
DAYS = [datetime(2025, 12, d) for d in (1, 2, 3, 4)]
LEGACY = Path("stocks_1d")
PARTS = Path("data/us/yahoo/stocks_1h")


def legacy(root: Path, name: str) -> Path:
    return root / LEGACY / f"{name}.parquet"


def write(path: Path, table: pa.Table, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="gzip", **options)
    return path


def with_column(table: pa.Table, name: str, values, kind: pa.DataType | None = None) -> pa.Table:
    array = pa.array(values, kind or table.schema.field(name).type)
    return table.set_column(table.schema.get_field_index(name), pa.field(name, array.type), array)


def partition(root: Path, ticker: str, year: int, month: int, name: str = "data.parquet") -> Path:
    return root / PARTS / f"ticker={ticker}" / f"year={year}" / f"month={month:02d}" / name


def hourly(day: datetime) -> list[datetime]:
    return [day + timedelta(hours=h) for h in range(10, 14)]


# Every finding the damaged workspace holds: (code, path or ticker) -> severity.
EXPECTED = {
    ("file.unreadable", "TRUNC.parquet"): ERROR,
    ("file.zero_bytes", "ZERO.parquet"): ERROR,
    ("schema.retyped_column", "RETYPED.parquet"): ERROR,
    ("schema.missing_column", "NOVOL.parquet"): ERROR,
    ("schema.missing_column", "NOSEQ.parquet"): WARNING,
    ("schema.timezone", "ZONED.parquet"): ERROR,
    ("schema.extra_column", "EXTRA.parquet"): WARNING,
    ("rows.duplicate", "DUP.parquet"): WARNING,
    ("rows.conflicting_duplicate", "CONFLICT.parquet"): ERROR,
    ("rows.stock_mismatch", "OTHER.parquet"): ERROR,
    ("rows.null_date", "NULLDATE.parquet"): ERROR,
    ("rows.unsorted", "UNSORTED.parquet"): WARNING,
    ("prices.negative", "NEG.parquet"): WARNING,
    ("prices.nan", "NAN.parquet"): WARNING,
    ("prices.ohlc_order", "ORDER.parquet"): WARNING,
    ("volume.negative", "NEGVOL.parquet"): WARNING,
    ("stray.temp", "GOOD.parquet.tmp-"): ERROR,
    ("stray.temp", ".GOOD.parquet.parqctl-tmp-"): WARNING,
    ("stray.temp", "GOOD.parquet.partial"): WARNING,
    ("stray.damaged", "OLD.parquet.damaged-"): WARNING,
    ("stray.unexpected", "notes.txt"): INFO,
    ("stray.unexpected", "part-0.parquet"): WARNING,
    ("rows.wrong_month", "ticker=PART/year=2025/month=11"): ERROR,
    ("schema.extra_column", "ticker=MIXED/year=2025/month=11"): WARNING,
    ("schema.extra_column", "ticker=MIXED/year=2025/month=12"): WARNING,
    ("schema.inconsistent", "MIXED"): WARNING,
    ("metadata.no_data", "GHOST"): WARNING,
    ("metadata.no_data", "GONE"): INFO,
    ("metadata.storage_points_nowhere", "MOVED"): ERROR,
    ("metadata.storage_points_nowhere", "LOST"): WARNING,
    ("metadata.unregistered", "STRAY"): WARNING,
    ("metadata.interval_unlisted", "1h"): WARNING,
    ("lock.stale", ".run_lock"): WARNING,
}


def build_damaged(root: Path) -> None:
    """A workspace with one of every problem, each in a file (or entry) of its own."""
    good = bar_table("GOOD", DAYS)
    write(legacy(root, "GOOD"), good)
    data = legacy(root, "GOOD").read_bytes()
    write(legacy(root, "TRUNC"), bar_table("TRUNC", DAYS))
    os.truncate(legacy(root, "TRUNC"), legacy(root, "TRUNC").stat().st_size // 2)
    legacy(root, "ZERO").write_bytes(b"")
    write(
        legacy(root, "RETYPED"),
        with_column(bar_table("RETYPED", DAYS), "close", ["1"] * 4, pa.string()),
    )
    write(legacy(root, "NOVOL"), bar_table("NOVOL", DAYS).drop_columns(["volume"]))
    write(legacy(root, "NOSEQ"), bar_table("NOSEQ", DAYS).drop_columns(["sequence"]))
    zoned = bar_table("ZONED", DAYS)
    local = zoned["date"].cast(pa.timestamp("ns", "America/New_York"))
    write(legacy(root, "ZONED"), zoned.set_column(1, pa.field("date", local.type), local))
    extra = bar_table("EXTRA", DAYS)
    write(legacy(root, "EXTRA"), extra.append_column("adjclose", extra["close"]))
    dup = bar_table("DUP", DAYS)
    write(legacy(root, "DUP"), dup.take([0, 1, 1, 2, 3]))
    conflict = pa.concat_tables(
        [bar_table("CONFLICT", DAYS), bar_table("CONFLICT", DAYS[1:2], 500.0)]
    )
    write(legacy(root, "CONFLICT"), conflict.sort_by("date"))
    write(legacy(root, "OTHER"), bar_table("MSFT", DAYS))
    write(
        legacy(root, "NULLDATE"),
        with_column(bar_table("NULLDATE", DAYS), "date", [*DAYS[:3], None]),
    )
    write(legacy(root, "UNSORTED"), bar_table("UNSORTED", DAYS).take([1, 0, 2, 3]))
    write(
        legacy(root, "NEG"), with_column(bar_table("NEG", DAYS), "low", [99.0, -1.0, 101.0, 102.0])
    )
    write(
        legacy(root, "NAN"),
        with_column(bar_table("NAN", DAYS), "close", [100.0, float("nan"), 102.0, None]),
    )
    write(
        legacy(root, "ORDER"),
        with_column(bar_table("ORDER", DAYS), "high", [101.0, 50.0, 103.0, 104.0]),
    )
    write(legacy(root, "NEGVOL"), with_column(bar_table("NEGVOL", DAYS), "volume", [1, -5, 3, 4]))
    write(legacy(root, "MOVED"), bar_table("MOVED", DAYS))
    write(legacy(root, "STRAY"), bar_table("STRAY", DAYS))
    # Leftovers of interrupted writers, beside GOOD.parquet.
    (root / LEGACY / f"GOOD.parquet.tmp-{dead_pid()}-1733400000000-0a1b2c").write_bytes(
        data[: len(data) // 2]
    )
    (root / LEGACY / f".GOOD.parquet.parqctl-tmp-{dead_pid()}-0a1b2c3d").write_bytes(data)
    (root / LEGACY / "GOOD.parquet.partial").write_bytes(data)
    (root / LEGACY / "OLD.parquet.damaged-20250101T000000Z").write_bytes(b"garbage")
    (root / LEGACY / "notes.txt").write_text("operator notes\n")
    # Partitions: rows of December in November's file; a column that changes type.
    write(
        partition(root, "PART", 2025, 11),
        bar_table("PART", [datetime(2025, 11, 28, 10), datetime(2025, 12, 1, 10)]),
    )
    write(partition(root, "PART", 2025, 12), bar_table("PART", hourly(DAYS[1])))
    write(partition(root, "PART", 2025, 12, "part-0.parquet"), bar_table("PART", hourly(DAYS[2])))
    november = bar_table("MIXED", hourly(datetime(2025, 11, 28)))
    write(
        partition(root, "MIXED", 2025, 11), november.append_column("flag", pa.array([1, 2, 3, 4]))
    )
    december = bar_table("MIXED", hourly(DAYS[0]))
    write(
        partition(root, "MIXED", 2025, 12), december.append_column("flag", pa.array(list("abcd")))
    )

    block = {
        "storage": {
            "mode": "partitioned",
            "venue": "us:yahoo",
            "market": "us",
            "source": "yahoo",
            "dataset": "stocks",
            "root": "data",
        }
    }
    tickers = {
        name: ticker_entry(name)
        for name in (
            "GOOD", "TRUNC", "ZERO", "RETYPED", "NOVOL", "NOSEQ", "ZONED", "EXTRA", "DUP",
            "CONFLICT", "OTHER", "NULLDATE", "UNSORTED", "NEG", "NAN", "ORDER", "NEGVOL", "GHOST",
        )
    }  # fmt: skip
    tickers["GONE"] = {**ticker_entry("GONE"), "status": "not_found"}
    tickers["GONE"]["intervals"]["1d"]["status"] = "not_found"
    tickers["MOVED"] = ticker_entry("MOVED", {"1d": {"status": "active", **block}})
    tickers["LOST"] = ticker_entry("LOST", {"1d": {"status": "active", **block}})
    for name in ("PART", "MIXED"):
        tickers[name] = ticker_entry(name, {"1h": {"status": "active", **block}})
    write_tickers(root, tickers)
    write_json(root / "intervals.json", ["1d"])
    write_json(root / "storage_config.json", {"partitioned": False, "markets": {}, "sources": {}})
    (root / ".run_lock").mkdir()
    write_json(
        root / ".run_lock" / "owner.json",
        {
            "pid": dead_pid(),
            "host": socket.gethostname(),
            "ts": time.time() - 600,
            "cwd": str(root),
        },
    )


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("damaged") / "ws"
    build_damaged(root)
    return root


@pytest.fixture(scope="module")
def report(damaged: Path) -> integrity.IntegrityReport:
    return integrity.check(Workspace.open(damaged))


def key_of(finding) -> tuple[str, str]:
    for code, where in EXPECTED:
        if code == finding.code and (
            where in (finding.path or "") or where in (finding.ticker, finding.interval)
        ):
            return code, where
    return finding.code, finding.path or ""


def test_every_finding_is_found_with_its_severity_and_nothing_else(report):
    found = {}
    for finding in report.findings:
        found.setdefault(key_of(finding), set()).add(finding.severity)
    assert found == {key: {severity} for key, severity in EXPECTED.items()}
    assert report.errors == sum(s is ERROR for s in EXPECTED.values())


def test_findings_say_what_and_what_to_do(report):
    by_key = {key_of(f): f for f in report.findings}
    assert "0 bytes" in by_key["file.zero_bytes", "ZERO.parquet"].message
    assert (
        "close is string, not double" in by_key["schema.retyped_column", "RETYPED.parquet"].message
    )
    assert "tz=America/New_York" in by_key["schema.timezone", "ZONED.parquet"].message
    assert "'MSFT' instead of 'OTHER'" in by_key["rows.stock_mismatch", "OTHER.parquet"].message
    assert (
        "2025-12-01 10:00" in by_key["rows.wrong_month", "ticker=PART/year=2025/month=11"].message
    )
    assert "2025-12-02 00:00" in by_key["rows.conflicting_duplicate", "CONFLICT.parquet"].message
    partial = by_key["stray.temp", "GOOD.parquet.tmp-"]
    assert "partial" in partial.message and "GOOD.parquet holds 4 rows" in partial.message
    assert "never rename it onto the real file" in partial.advice
    complete = by_key["stray.temp", "GOOD.parquet.partial"]
    assert "a complete Parquet file with 4 rows" in complete.message
    mixed = by_key["schema.inconsistent", "MIXED"]
    assert "column flag of MIXED 1h has 2 types" in mixed.message and mixed.scope is Scope.TICKER
    assert all(f.advice for f in report.findings)


def test_quarantine_moves_file_errors_and_never_promotes_a_temp_file(damaged: Path, tmp_path: Path):
    root = tmp_path / "ws"
    shutil.copytree(damaged, root, symlinks=True)
    run_cli("-w", str(root), "lock", "break", "--yes")
    good_before = legacy(root, "GOOD").read_bytes()
    digest_before = tree_digest(root)

    result = run_cli("-w", str(root), "integrity", "--quarantine", "--json")
    assert result.returncode == 1, result.stderr
    moved = {q["path"] for q in json.loads(result.stdout)["quarantined"]}
    file_errors = {
        f.path for f in integrity.check(Workspace.open(damaged)).findings
        if f.severity is ERROR and f.scope is Scope.FILE
    }  # fmt: skip
    assert moved == file_errors and len(moved) == 10
    assert legacy(root, "GOOD").read_bytes() == good_before
    stored = {e.original_path: e for e in quarantine.entries(root)}
    assert set(stored) == moved
    for path in moved:
        assert not (root / path).exists()
        assert (
            tree_digest(stored[path].stored_path.parent)[stored[path].stored_name]
            == digest_before[path]
        )
    again = integrity.check(Workspace.open(root))
    assert [f.code for f in again.findings if f.severity is ERROR] == [
        "metadata.storage_points_nowhere"
    ]
    summary = last_summary(root)
    assert summary is not None and (summary.errors, summary.open_errors) == (11, 1)


def test_an_unchanged_workspace_reads_no_rows_again(damaged: Path, tmp_path: Path, report):
    root = tmp_path / "ws"
    shutil.copytree(damaged, root, symlinks=True)
    shutil.rmtree(root / ".parqctl" / "integrity")  # keep the file index, drop row checks
    ws = Workspace.open(root)
    first = integrity.check(ws)
    assert first.rows_read == report.rows_read > 10 and first.index.opened == 0
    second = integrity.check(ws)
    assert (second.rows_read, second.rows_cached, second.index.opened) == (0, first.rows_read, 0)
    assert [f.as_dict() for f in second.findings] == [f.as_dict() for f in first.findings]
    write(legacy(root, "DUP"), bar_table("DUP", DAYS))  # repaired by a rewrite
    third = integrity.check(ws)
    assert (third.rows_read, third.index.opened) == (1, 1)
    assert not [f for f in third.findings if "DUP.parquet" in (f.path or "")]


def test_scope_options(report, damaged: Path):
    ws = Workspace.open(damaged)
    hourly_only = integrity.check(ws, interval="1h")
    assert hourly_only.files == 4
    assert {f.interval for f in hourly_only.findings if f.scope is Scope.FILE} == {"1h"}
    recent = integrity.check(ws, since=date(2025, 12, 1))
    paths = {f.path for f in recent.findings}
    assert not any("month=11" in (p or "") for p in paths)
    assert any("month=12" in (p or "") for p in paths)
    assert recent.files == report.files - 2
    # Filtered runs are not what health reports.
    integrity.save_report(damaged, recent)
    assert not (damaged / LAST_REPORT).exists()


def test_deep_decodes_every_row_group(tmp_path: Path):
    root = tmp_path / "ws"
    times = [datetime(2025, 1, 1) + timedelta(hours=i) for i in range(2000)]
    table = bar_table("DEEP", times)
    rng = np.random.default_rng(1)
    table = table.append_column("note", pa.array([rng.bytes(20).hex() for _ in times]))
    path = write(legacy(root, "DEEP"), table, row_group_size=1000, use_dictionary=False)
    chunk = pq.read_metadata(path).row_group(1).column(table.schema.get_field_index("note"))
    with open(path, "r+b") as handle:
        handle.seek(chunk.data_page_offset + chunk.total_compressed_size // 2)
        handle.write(b"\0" * 32)
    write_tickers(root, {"DEEP": ticker_entry("DEEP")})
    write_json(root / "intervals.json", ["1d"])
    ws = Workspace.open(root)
    shallow = integrity.check(ws)
    assert [f.code for f in shallow.findings] == ["schema.extra_column"]
    deep = integrity.check(ws, deep=True)
    [damage] = [f for f in deep.findings if f.severity is ERROR]
    assert damage.code == "file.corrupt_row_group" and "row group 1 of 2" in damage.message
    assert deep.rows_read == 1  # a shallow check does not answer a deep question


def test_a_temp_file_of_a_live_writer_is_info(tmp_path: Path):
    root = tmp_path / "ws"
    write(legacy(root, "GOOD"), bar_table("GOOD", DAYS))
    write_tickers(root, {"GOOD": ticker_entry("GOOD")})
    write_json(root / "intervals.json", ["1d"])
    with run_lock.hold(root, "a writer"):
        (root / LEGACY / f"GOOD.parquet.tmp-{os.getpid()}-1-ab").write_bytes(b"PAR1")
        [finding] = integrity.check(Workspace.open(root)).findings
    assert (finding.code, finding.severity) == ("stray.temp", INFO)


def test_demo_injections_are_all_found(tmp_path: Path):
    demo = build_demo(
        tmp_path / "demo",
        tickers=14,
        seed=11,
        end=date(2025, 12, 5),
        years_1d=2,
        years_1h=1,
        stale_lock=True,
    )
    result = run_cli("-w", str(demo.root), "integrity", "--json")
    assert result.returncode == 1, result.stderr
    findings = json.loads(result.stdout)["findings"]
    expected = {
        "truncated": ("file.unreadable", "error"),
        "zero_byte": ("file.zero_bytes", "error"),
        "duplicates": ("rows.duplicate", "warning"),
        "extra_column": ("schema.extra_column", "warning"),
        "temp_file": ("stray.temp", "error"),
        "stale_lock": ("lock.stale", "warning"),
    }
    seen = set()
    for injection in demo.injections:
        if injection.kind not in expected:
            continue
        path = os.path.relpath(injection.path, demo.root)
        code, severity = expected[injection.kind]
        path = ".run_lock" if injection.kind == "stale_lock" else path
        [finding] = [f for f in findings if f["path"] == path]
        assert (finding["code"], finding["severity"]) == (code, severity), injection
        seen.add(injection.kind)
    assert seen == set(expected)
    assert len(findings) == len(expected)  # nothing flagged in the healthy bars


def test_cli_human_output_and_exit_codes(damaged: Path, workspace: Path):
    clean = run_cli("-w", str(workspace), "integrity")
    assert clean.returncode == 0, clean.stderr
    assert "summary    0 error(s), 0 warning(s), 0 info" in clean.stdout
    result = run_cli("-w", str(damaged), "integrity", "--interval", "1h")
    assert result.returncode == 1
    assert "ERROR   rows.wrong_month (1)" in result.stdout and "what to do:" in result.stdout
    bad = run_cli("-w", str(damaged), "integrity", "--interval", "7x")
    assert bad.returncode == 2 and "unknown interval" in bad.stderr
