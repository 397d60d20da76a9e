"""``parqctl sql``: the views against the engine's own answers, the lock-down, errors,
interruption, output formats, on real Parquet files in temporary workspaces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PARQCTL, REPO, run_cli, ticker_entry, tree_digest, write_bars, write_tickers

from core.availability.index import refresh_index
from core.safety import audit
from core.safety.atomic import write_json
from core.sql import QueryError, QueryInterrupted, SqlEngine
from core.sql.engine import TEMP_DIR, describe_error
from core.store.bars import BAR_COLUMNS
from core.store.demo import build_demo
from core.store.layout import Venue
from core.store.metadata import StorageBlock
from core.store.routing import read_ticker_bars
from core.store.workspace import Workspace

TICKERS = ("AAPL", "BRK-B", "EURUSD=X", "GC=F", "^GSPC")
JAN = [datetime(2025, 1, d) for d in (2, 3, 6, 7)]
FEB = [datetime(2025, 2, d) for d in (3, 4)]
PART = "data/us/yahoo/stocks_{iv}/ticker={t}/year={y}/month={m:02d}/data.parquet"
TODAY = date(2025, 12, 5)


def _partitioned_block() -> dict:
    return StorageBlock.partitioned_raw(Venue("us", "yahoo"), "2025-12-05T00:00:00Z")


def _hours(days: list[datetime]) -> list[datetime]:
    return [d + timedelta(hours=h) for d in days for h in (9.5, 10.5, 11.5)]


def _metadata(root: Path, tickers: dict[str, dict], *, partitioned: bool = False) -> None:
    write_tickers(root, tickers)
    write_json(root / "intervals.json", ["1d", "1h"])
    write_json(
        root / "storage_config.json", {"partitioned": partitioned, "markets": {}, "sources": {}}
    )


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    """Every ticker in the collector's own legacy home, 1d and 1h."""
    root = tmp_path / "legacy"
    for t in TICKERS:
        write_bars(root / f"stocks_1d/{t}.parquet", t, JAN + FEB)
        write_bars(root / f"stocks_1h/{t}.parquet", t, _hours(JAN))
    _metadata(root, {t: ticker_entry(t) for t in TICKERS})
    return root


@pytest.fixture
def partitioned(tmp_path: Path) -> Path:
    """Every ticker partitioned by month (``ticker=EURUSD=X`` among them), the global
    switch on, no legacy file."""
    root = tmp_path / "partitioned"
    for t in TICKERS:
        write_bars(root / PART.format(iv="1d", t=t, y=2025, m=1), t, JAN)
        write_bars(root / PART.format(iv="1d", t=t, y=2025, m=2), t, FEB)
        write_bars(root / PART.format(iv="1h", t=t, y=2025, m=1), t, _hours(JAN))
    _metadata(root, {t: ticker_entry(t) for t in TICKERS}, partitioned=True)
    return root


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """AAPL routed to partitions while its stale legacy file stays; BRK-B legacy beside
    partitions it does not read; EURUSD=X partitions only and not in tickers.json; GC=F
    legacy only in data/legacy/ (stranded); ^GSPC routed to partitions that do not exist."""
    root = tmp_path / "mixed"
    for t in ("AAPL", "BRK-B", "^GSPC"):
        write_bars(root / f"stocks_1d/{t}.parquet", t, JAN)
    for t in ("AAPL", "BRK-B", "EURUSD=X"):
        write_bars(root / PART.format(iv="1d", t=t, y=2025, m=1), t, JAN[:2])
        write_bars(root / PART.format(iv="1d", t=t, y=2025, m=2), t, FEB)
    write_bars(root / "data/legacy/stocks_1d/GC=F.parquet", "GC=F", FEB)
    routed = {"1d": {"status": "active", "storage": _partitioned_block()}}
    _metadata(
        root,
        {
            "AAPL": ticker_entry("AAPL", routed),
            "BRK-B": ticker_entry("BRK-B"),
            "GC=F": ticker_entry("GC=F"),
            "^GSPC": ticker_entry("^GSPC", routed),
        },
    )
    return root


def _rows(engine: SqlEngine, sql: str) -> list[dict]:
    return engine.execute(sql).fetch(10**9).to_pylist()


def _bars_of(engine: SqlEngine, interval: str, ticker: str) -> pa.Table:
    columns = ", ".join(BAR_COLUMNS)
    return engine.execute(
        f"SELECT {columns} FROM bars_{interval} WHERE ticker = $${ticker}$$ ORDER BY date"
    ).fetch(10**9)


@pytest.mark.parametrize("layout", ["legacy", "partitioned", "mixed"])
def test_bars_views_equal_what_routing_reads(layout: str, request):
    root = request.getfixturevalue(layout)
    ws = Workspace.open(root)
    with SqlEngine.open(root) as engine:
        intervals = [
            v.name.removeprefix("bars_") for v in engine.views() if v.name.startswith("bars_")
        ]
        assert intervals == ["1h", "1d"]  # intervals.json names 1h in the mixed one too
        for interval in intervals:
            total = 0
            for ticker in TICKERS:
                expected = read_ticker_bars(ws, ticker, interval)
                got = _bars_of(engine, interval, ticker)
                want = expected.table.select(list(BAR_COLUMNS)).cast(got.schema)
                assert got.equals(want), (layout, interval, ticker)
                total += got.num_rows
                if got.num_rows:
                    assert engine.catalog.bar_files[interval].sources[ticker] == expected.source
            count = _rows(engine, f"SELECT count(*) AS n FROM bars_{interval}")
            assert count == [{"n": total}]


def test_mixed_workspace_reads_one_layout_per_ticker(mixed: Path):
    with SqlEngine.open(mixed) as engine:
        rows = _rows(
            engine,
            "SELECT ticker, count(*) AS n, min(date) AS first FROM bars_1d GROUP BY ALL ORDER BY 1",
        )
        sources = engine.catalog.bar_files["1d"].sources
    assert {r["ticker"]: r["n"] for r in rows} == {
        "AAPL": 4,  # its partitions (2 + 2), not its 4 legacy rows on top
        "BRK-B": 4,  # its legacy file, not the partitions it is not routed to
        "EURUSD=X": 4,  # partitions, the only layout it has; named from the directory
        "GC=F": 2,  # the stranded legacy file, read_ticker_bars' last resort
        "^GSPC": 4,  # routed to partitions that do not exist: its legacy file
    }
    assert sources == {
        "AAPL": "partitioned",
        "BRK-B": "legacy",
        "EURUSD=X": "partitioned",
        "GC=F": "stranded legacy",
        "^GSPC": "legacy",
    }


def test_ticker_comes_from_the_path_not_the_file(partitioned: Path):
    """A partition of EURUSD=X whose rows say another stock is still EURUSD=X's."""
    write_bars(partitioned / PART.format(iv="1d", t="EURUSD=X", y=2025, m=3), "WRONG", JAN[:1])
    with SqlEngine.open(partitioned) as engine:
        rows = _rows(engine, "SELECT ticker, stock FROM bars_1d WHERE stock = 'WRONG'")
    assert rows == [{"ticker": "EURUSD=X", "stock": "WRONG"}]


def _spoil_others(root: Path, keep: str) -> int:
    """Overwrite every bar file of every ticker but ``keep`` with bytes that are not
    Parquet: any query that opens one of them fails."""
    spoiled = 0
    for path in root.rglob("*.parquet"):
        if f"ticker={keep}/" in str(path) or path.name == f"{keep}.parquet":
            continue
        path.write_bytes(b"not parquet at all")
        spoiled += 1
    return spoiled


@pytest.mark.parametrize("layout", ["legacy", "partitioned"])
def test_a_filter_on_ticker_opens_only_that_tickers_files(layout: str, request):
    root = request.getfixturevalue(layout)
    assert _spoil_others(root, "EURUSD=X") > 0
    with SqlEngine.open(root) as engine:
        rows = _rows(
            engine,
            "SELECT count(*) AS n FROM bars_1d WHERE ticker = 'EURUSD=X' "
            "AND date BETWEEN '2025-02-01' AND '2025-02-28'",
        )
        assert rows == [{"n": 2}]
        assert _rows(engine, "SELECT count(*) AS n FROM bars_1d WHERE ticker IN ('EURUSD=X')")
        # Without the filter the spoiled files are read, and the error names one.
        with pytest.raises(QueryError) as caught:
            _rows(engine, "SELECT count(*) FROM bars_1d")
    message = str(caught.value)
    assert "\n" not in message and "cannot read" in message and ".parquet" in message


def test_unreadable_files_the_index_knows_are_left_out_and_said(legacy: Path):
    (legacy / "stocks_1d/AAPL.parquet").write_bytes(b"truncated")
    refresh_index(legacy)
    with SqlEngine.open(legacy) as engine:
        rows = _rows(engine, "SELECT count(DISTINCT ticker) AS n FROM bars_1d")
        assert rows == [{"n": len(TICKERS) - 1}]
        assert any("stocks_1d/AAPL.parquet" in note for note in engine.notes)
        files = _rows(engine, "SELECT path, readable FROM files WHERE NOT readable")
    assert files == [{"path": "stocks_1d/AAPL.parquet", "readable": False}]


def test_views_are_listed_without_opening_a_file(partitioned: Path):
    _spoil_others(partitioned, "nobody")
    with SqlEngine.open(partitioned) as engine:
        views = {v.name: v.column_names for v in engine.views()}
        assert engine.catalog.bar_files == {}  # nothing listed, nothing read
    assert list(views) == [
        "bars_1h",
        "bars_1d",
        "tickers",
        "files",
        "gaps",
        "findings",
        "audit",
        "quarantine",
    ]
    assert views["bars_1d"] == ["ticker", *BAR_COLUMNS]


def test_a_missing_interval_names_the_views_there_are(legacy: Path):
    with SqlEngine.open(legacy) as engine, pytest.raises(QueryError) as caught:
        engine.execute("SELECT * FROM bars_5m")
    assert str(caught.value) == (
        "no view bars_5m in this workspace; the views are bars_1h, bars_1d, tickers, files, "
        "gaps, findings, audit, quarantine (line 1, column 15)"
    )


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT * FORM bars_1d",
            'Parser Error: syntax error at or near "bars_1d" (line 1, column 15)',
        ),
        (
            "SELECT 1;\n\nSELECT nope\nFROM bars_1d",
            'Binder Error: Referenced column "nope" not found in FROM clause!',
        ),
    ],
)
def test_errors_are_one_line_with_the_position(legacy: Path, sql: str, expected: str):
    with SqlEngine.open(legacy) as engine, pytest.raises(QueryError) as caught:
        engine.execute(sql)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(expected)
    if "nope" in sql:
        assert message.endswith("(line 3, column 8)")


def test_describe_error_finds_the_column_in_a_cut_snippet():
    sql = "SELECT " + ", ".join(f"c{i}" for i in range(60)) + " FROM t WHERE bad"
    at = sql.index("bad")
    snippet = "LINE 1: ...FROM t WHERE bad"
    text = f'Binder Error: Referenced column "bad" not found\n\n{snippet}\n{" " * snippet.index("bad")}^'
    assert describe_error(text, sql) == (
        'Binder Error: Referenced column "bad" not found',
        1,
        at + 1,
    )


REFUSED = {
    "copy to a file": "COPY (SELECT 1) TO '{out}/x.csv'",
    "copy a view out": "COPY bars_1d TO '{out}/bars.parquet' (FORMAT parquet)",
    "copy into the data tree": "COPY (SELECT 1) TO '{root}/data/x.csv'",
    # What DuckDB's allow-lists would let through: a bar file overwritten in place.
    "overwrite a bar file": (
        "COPY (SELECT 1 AS a) TO '{root}/stocks_1d/AAPL.parquet' (FORMAT parquet, USE_TMP_FILE false)"
    ),
    "export database": "EXPORT DATABASE '{out}/export'",
    "attach a file": "ATTACH '{out}/new.duckdb' AS other",
    "install an extension": "INSTALL httpfs",
    "load an extension": "LOAD httpfs",
    "read a file outside": "SELECT * FROM read_text('/etc/hostname')",
    "read a csv outside": "SELECT * FROM read_csv('/etc/passwd', sep = ':')",
    "read a workspace file directly": "SELECT * FROM read_parquet('{root}/stocks_1d/AAPL.parquet')",
    "list files": "SELECT * FROM glob('/etc/*')",
    "turn external access on": "SET enable_external_access = true",
    "unlock the configuration": "SET lock_configuration = false",
    "raise the memory limit": "PRAGMA memory_limit = '100GB'",
    "reset a setting": "RESET memory_limit",
    "move the temp directory": "SET temp_directory = '{root}/data'",
    "write a profile": "PRAGMA enable_profiling = 'json'",
    "a persistent secret": "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "read over the network": "SELECT * FROM 'https://example.com/x.parquet'",
}


def test_every_write_path_is_refused_with_one_line(legacy: Path, tmp_path: Path):
    out = tmp_path / "elsewhere"
    out.mkdir()
    before = tree_digest(legacy)
    with SqlEngine.open(legacy) as engine:
        session_tmp = engine.temp_dir
        for what, template in REFUSED.items():
            sql = template.format(out=out, root=legacy)
            with pytest.raises(QueryError) as caught:
                engine.execute(sql).fetch(10)
            message = str(caught.value)
            assert "\n" not in message, what
            assert any(
                why in message
                for why in (
                    "Permission Error",
                    "configuration has been locked",
                    "extension",  # not there, and never installed or loaded automatically
                )
            ), (what, message)
        # The views still work after all that.
        assert _rows(engine, "SELECT count(*) AS n FROM bars_1d") == [{"n": 30}]
    assert list(out.iterdir()) == []
    after = tree_digest(legacy)
    assert {k: v for k, v in after.items() if not k.startswith(".parqctl")} == before
    assert not session_tmp.exists()


def test_in_memory_tables_are_fine_and_gone_with_the_session(legacy: Path):
    with SqlEngine.open(legacy) as engine:
        engine.execute("CREATE TABLE mine AS SELECT ticker, count(*) AS n FROM bars_1d GROUP BY 1")
        assert _rows(engine, "SELECT sum(n) AS n FROM mine") == [{"n": 30}]
    with SqlEngine.open(legacy) as engine, pytest.raises(QueryError):
        engine.execute("SELECT * FROM mine")


def test_spills_to_its_own_temp_dir_under_parqctl_within_the_memory_limit(legacy: Path):
    seen: list[list[str]] = []
    with SqlEngine.open(legacy, memory_limit="48MiB", threads=1) as engine:
        temp = engine.temp_dir
        assert temp.parent == legacy / TEMP_DIR
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                seen.append(os.listdir(temp) if temp.exists() else [])
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            rows = _rows(
                engine,
                "SELECT count(*) AS n FROM (SELECT i, random() AS r, repeat('x', 40) AS s "
                "FROM range(2500000) t(i) ORDER BY r)",
            )
        finally:
            stop.set()
            watcher.join()
    assert rows == [{"n": 2500000}]
    assert any(names for names in seen), "the sort did not spill"
    assert not temp.exists()
    assert not (legacy / "data").exists()


def test_a_running_query_is_interrupted_and_the_engine_goes_on(legacy: Path):
    with SqlEngine.open(legacy) as engine:
        timer = threading.Timer(0.3, engine.interrupt)
        timer.start()
        started = time.perf_counter()
        with pytest.raises(QueryInterrupted):
            engine.execute("SELECT count(*) FROM range(1000000000000) a").fetch(1)
        assert time.perf_counter() - started < 10
        assert _rows(engine, "SELECT count(*) AS n FROM bars_1d") == [{"n": 30}]
        temp = engine.temp_dir
    assert not temp.exists()


def test_temp_dirs_of_dead_sessions_are_removed(legacy: Path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = legacy / TEMP_DIR / f"{dead.pid}-0badc0de"
    left.mkdir(parents=True)
    (left / "duckdb_temp_block").write_bytes(b"x" * 100)
    with SqlEngine.open(legacy):
        assert not left.exists()


# --- the metadata views -------------------------------------------------------------------


def test_tickers_view_flattens_tickers_json_with_routing(mixed: Path):
    with SqlEngine.open(mixed) as engine:
        rows = _rows(
            engine, "SELECT ticker, interval, status, storage, venue FROM tickers ORDER BY 1"
        )
    assert rows == [
        {
            "ticker": "AAPL",
            "interval": "1d",
            "status": "active",
            "storage": "partitioned",
            "venue": "us:yahoo",
        },
        {
            "ticker": "BRK-B",
            "interval": "1d",
            "status": "active",
            "storage": "legacy",
            "venue": None,
        },
        {
            "ticker": "GC=F",
            "interval": "1d",
            "status": "active",
            "storage": "legacy",
            "venue": None,
        },
        {
            "ticker": "^GSPC",
            "interval": "1d",
            "status": "active",
            "storage": "partitioned",
            "venue": "us:yahoo",
        },
    ]


def test_audit_and_findings_and_quarantine_views(legacy: Path):
    audit.append(legacy, "quarantine.add", "ok", path="stocks_1d/AAPL.parquet", reason="test")
    (legacy / ".parqctl/integrity").mkdir(parents=True)
    report = {
        "checked_at_ts": 1764900000.0,
        "findings": [
            {
                "severity": "error",
                "code": "file.unreadable",
                "path": "stocks_1d/AAPL.parquet",
                "message": "truncated",
                "advice": "quarantine it",
                "scope": "file",
                "ticker": "AAPL",
                "interval": "1d",
            }
        ],
    }
    write_json(legacy / ".parqctl/integrity/last_report.json", report)
    with SqlEngine.open(legacy) as engine:
        records = _rows(engine, "SELECT action, result, details FROM audit")
        findings = _rows(engine, "SELECT severity, code, path, checked_at FROM findings")
        quarantined = _rows(engine, "SELECT count(*) AS n FROM quarantine")
    assert records == [
        {
            "action": "quarantine.add",
            "result": "ok",
            "details": json.dumps({"path": "stocks_1d/AAPL.parquet", "reason": "test"}),
        }
    ]
    assert findings == [
        {
            "severity": "error",
            "code": "file.unreadable",
            "path": "stocks_1d/AAPL.parquet",
            "checked_at": datetime(2025, 12, 5, 2, 0),
        }
    ]
    assert quarantined == [{"n": 0}]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sqldemo") / "ws"
    build_demo(root, tickers=14, seed=3, end=TODAY, years_1d=2, years_1h=1)
    return root


def test_gaps_view_equals_availability_json(demo: Path):
    result = run_cli("-w", str(demo), "availability", "--json", "--today", TODAY.isoformat())
    assert result.returncode == 1, result.stderr  # the demo has gaps
    expected = sorted(
        (
            ticker["ticker"],
            interval,
            gap["start"],
            gap["end"],
            gap["sessions"],
            gap["lost_sessions"],
            gap["status"],
            gap["recoverable_until"],
        )
        for interval, report in json.loads(result.stdout)["intervals"].items()
        for ticker in report["tickers"]
        for gap in ticker["gaps"]
    )
    assert expected
    with SqlEngine.open(demo, today=TODAY) as engine:
        rows = engine.execute(
            "SELECT ticker, interval, strftime(first_missing, '%Y-%m-%d'), "
            "strftime(last_missing, '%Y-%m-%d'), sessions, lost_sessions, status, "
            "strftime(recoverable_until, '%Y-%m-%d') FROM gaps ORDER BY ALL"
        ).fetch(10**6)
    assert sorted(tuple(r.values()) for r in rows.to_pylist()) == expected


def test_files_view_is_the_file_index(demo: Path):
    index = refresh_index(demo, sessions=False)
    with SqlEngine.open(demo) as engine:
        rows = _rows(
            engine, "SELECT path, layout, ticker, interval, rows, bytes FROM files ORDER BY path"
        )
    assert [r["path"] for r in rows] == index.files["path"].to_list()
    assert [r["rows"] for r in rows] == index.files["rows"].to_list()
    assert [r["bytes"] for r in rows] == index.files["size"].to_list()


def test_the_sql_engine_never_loads_textual():
    code = (
        "import sys\n"
        "import core.sql, core.sql.engine, core.sql.views, core.sql.output, core.sql.history\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "[]"


# --- the command --------------------------------------------------------------------------


def _sql(root: Path, *args: str):
    return run_cli("-w", str(root), "sql", *args)


def test_cli_formats(legacy: Path, tmp_path: Path):
    query = (
        "SELECT ticker, date, close, volume FROM bars_1d WHERE ticker = 'EURUSD=X' ORDER BY date"
    )
    table = _sql(legacy, query)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ticker", "date", "close", "volume"]
    assert lines[2].split() == ["EURUSD=X", "2025-01-02", "00:00:00", "100.0", "1000"]
    assert len(lines) == 2 + 6 and "(6 rows," in table.stderr

    csv = _sql(legacy, query, "--format", "csv")
    assert csv.stdout.splitlines()[:2] == [
        '"ticker","date","close","volume"',
        '"EURUSD=X",2025-01-02 00:00:00,100,1000',
    ]
    as_json = json.loads(_sql(legacy, query, "--format", "json").stdout)
    assert as_json[0] == {
        "ticker": "EURUSD=X",
        "date": "2025-01-02 00:00:00",
        "close": 100.0,
        "volume": 1000,
    }
    assert len(as_json) == 6

    out = tmp_path / "eurusd.parquet"
    written = _sql(legacy, query, "--out", str(out))
    assert written.returncode == 0, written.stderr
    assert f"wrote 6 rows to {out}" in written.stderr
    back = pq.read_table(out)
    assert back.column_names == ["ticker", "date", "close", "volume"]
    assert back.num_rows == 6 and back.schema.field("date").type == pa.timestamp("ns")
    assert [p.name for p in tmp_path.iterdir()] == ["eurusd.parquet", "legacy"]  # no temp file

    limited = _sql(legacy, query, "--limit", "2", "--format", "json")
    assert len(json.loads(limited.stdout)) == 2


def test_cli_runs_a_file_of_statements_and_lists_the_views(legacy: Path, tmp_path: Path):
    script = tmp_path / "q.sql"
    script.write_text(
        "-- rows per ticker\nCREATE TEMP TABLE n AS SELECT ticker, count(*) AS c FROM bars_1h GROUP BY 1;\n"
        "SELECT sum(c) AS rows FROM n;\n"
    )
    result = _sql(legacy, "-f", str(script), "--format", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['"rows"', "60"]
    views = _sql(legacy, "--views", "--format", "json")
    listed = json.loads(views.stdout)
    assert list(listed) == [
        "bars_1h",
        "bars_1d",
        "tickers",
        "files",
        "gaps",
        "findings",
        "audit",
        "quarantine",
    ]
    assert listed["gaps"]["columns"][2] == {"name": "first_missing", "type": "DATE"}
    assert "bars_1d:" in _sql(legacy, "--views").stdout


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (
            ["SELEC 1"],
            1,
            'parqctl: error: Parser Error: syntax error at or near "SELEC" (line 1, column 1)',
        ),
        (["SELECT nope FROM bars_1d"], 1, 'Referenced column "nope" not found'),
        (
            ["SELECT * FROM bars_15m"],
            1,
            "no view bars_15m in this workspace; the views are bars_1h",
        ),
        (["COPY bars_1d TO '/tmp/parqctl-never.csv'"], 1, "file system operations are disabled"),
        (["SELECT 1", "--format", "parquet"], 2, "--format parquet needs --out PATH"),
        (["SELECT 1", "--out", "{root}/data/x.csv"], 2, "inside the workspace's data/"),
        (["SELECT 1", "--out", "{root}/stocks_1d/x.csv"], 2, "inside the workspace's stocks_1d/"),
        (["SELECT 1", "--out", "{root}/tickers.json"], 2, "exists: pass --force to replace it"),
        (["SELECT 1", "--out", "{root}/x.txt"], 2, "cannot tell the format of"),
        (
            ["SELECT 1", "--out", "{root}/x.csv", "--format", "table"],
            2,
            "--format table is for the screen",
        ),
        ([], 2, "no query given"),
    ],
)
def test_cli_errors_are_one_line(legacy: Path, args: list[str], code: int, expected: str):
    (legacy / "data").mkdir()
    before = tree_digest(legacy)
    result = _sql(legacy, *(a.format(root=legacy) for a in args))
    assert result.returncode == code, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("parqctl: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert result.stdout == ""
    after = tree_digest(legacy)
    assert {k: v for k, v in after.items() if not k.startswith(".parqctl")} == before
    assert not Path("/tmp/parqctl-never.csv").exists()


def test_cli_out_replaces_only_with_force_and_atomically(legacy: Path, tmp_path: Path):
    out = tmp_path / "rows.csv"
    out.write_text("old\n")
    refused = _sql(legacy, "SELECT 1 AS one", "--out", str(out))
    assert refused.returncode == 2 and out.read_text() == "old\n"
    failed = _sql(
        legacy, "SELECT 1 AS one UNION ALL SELECT error('boom')", "--out", str(out), "--force"
    )
    assert failed.returncode == 1 and "boom" in failed.stderr
    assert out.read_text() == "old\n"  # a failed query leaves the old file as it was
    done = _sql(legacy, "SELECT 1 AS one", "--out", str(out), "--force")
    assert done.returncode == 0 and out.read_text() == '"one"\n1\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["legacy", "rows.csv"]


def test_cli_ctrl_c_interrupts_and_leaves_nothing_behind(legacy: Path, tmp_path: Path):
    out = tmp_path / "never.csv"
    env = {k: v for k, v in os.environ.items() if k != "PARQCTL_WORKSPACE"}
    process = subprocess.Popen(
        [
            str(PARQCTL),
            "-w",
            str(legacy),
            "sql",
            "SELECT a.range AS i FROM range(100000000) a, range(100000) b",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 30
    sessions = legacy / TEMP_DIR
    while time.monotonic() < deadline and not (
        sessions.is_dir() and any(sessions.iterdir()) and list(tmp_path.glob(".never.csv*"))
    ):
        time.sleep(0.05)
    time.sleep(0.3)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert process.returncode == 130, stderr
    assert "query interrupted" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["legacy"]  # no out, no temp file
    assert list(sessions.iterdir()) == []


def test_prefilled_queries_run(legacy: Path):
    from core.sql.prefill import bars_around, finding_file, literal

    assert literal("it's") == "'it''s'"
    (legacy / ".parqctl/integrity").mkdir(parents=True)
    write_json(
        legacy / ".parqctl/integrity/last_report.json",
        {
            "checked_at_ts": 1764900000.0,
            "findings": [
                {
                    "severity": "warning",
                    "code": "rows.duplicate",
                    "path": "stocks_1d/EURUSD=X.parquet",
                    "message": "2 rows repeated",
                    "advice": "re-fetch",
                }
            ],
        },
    )
    with SqlEngine.open(legacy) as engine:
        bars = _rows(engine, bars_around("EURUSD=X", "1d", date(2025, 1, 3), days=1))
        assert [r["date"] for r in bars] == [datetime(2025, 1, 2), datetime(2025, 1, 3)]
        found = _rows(engine, finding_file("stocks_1d/EURUSD=X.parquet"))
    assert [(r["code"], r["ticker"], r["rows"], r["readable"]) for r in found] == [
        ("rows.duplicate", "EURUSD=X", 6, True)
    ]


def test_refresh_builds_the_views_again_from_the_disk(legacy: Path):
    with SqlEngine.open(legacy) as engine:
        assert _rows(engine, "SELECT count(*) AS n FROM bars_1d WHERE ticker = 'NEW'") == [{"n": 0}]
        write_bars(legacy / "stocks_1d/NEW.parquet", "NEW", JAN)
        assert _rows(engine, "SELECT count(*) AS n FROM bars_1d WHERE ticker = 'NEW'") == [{"n": 0}]
        engine.refresh()
        assert _rows(engine, "SELECT count(*) AS n FROM bars_1d WHERE ticker = 'NEW'") == [{"n": 4}]


def test_no_progress_bar_and_locked_from_the_start(legacy: Path):
    with SqlEngine.open(legacy) as engine:
        rows = _rows(
            engine,
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_progress_bar', "
            "'enable_progress_bar_print', 'lock_configuration', 'enable_external_access') "
            "ORDER BY name",
        )
    assert rows == [
        {"name": "enable_external_access", "value": "false"},
        {"name": "enable_progress_bar", "value": "false"},
        {"name": "enable_progress_bar_print", "value": "false"},
        {"name": "lock_configuration", "value": "true"},
    ]


def test_the_table_shows_two_columns_of_one_name_by_position(workspace: Path, capsys):
    from tui.cli import main

    assert main(["-w", str(workspace), "sql", "SELECT 1 AS a, 2 AS a, 'x' AS b"]) == 0
    assert capsys.readouterr().out.splitlines() == ["a  a  b", "-  -  -", "1  2  x"]
