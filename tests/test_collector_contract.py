"""parqctl against the real yf_parqed collector: its files, its reader and its run lock.

The collector runs from its own venv (``collector_support``), on its own code, with a
fake yfinance; these tests are skipped where it cannot be installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from collector_support import Collector, collector  # noqa: F401
from conftest import REPO, run_cli

from core.safety.atomic import temp_path_for

TICKERS = ("AAPL", "BRK-B", "^GSPC")
INTERVALS = ("1d", "1h")
# Recent enough for the collector to ask for 1h bars (it clamps them to 729 days).
END = date.today() - timedelta(days=7)
START = END - timedelta(days=28)
WEEKDAYS = sum(1 for n in range((END - START).days) if (START + timedelta(n)).weekday() < 5)
BARS_PER_SESSION = {"1d": 1, "1h": 7}


@pytest.fixture(scope="module")
def made(collector: Collector, tmp_path_factory) -> dict:  # noqa: F811
    """A workspace the collector made itself, and what its reader returns for it."""
    ws = tmp_path_factory.mktemp("collector") / "ws"
    answer = collector.init_workspace(ws, TICKERS, INTERVALS, START.isoformat(), END.isoformat())
    assert answer["exit_code"] == 0, answer["log"]
    reads = {iv: collector.read(ws, iv) for iv in INTERVALS}
    return {"ws": ws, "reads": reads}


@pytest.fixture
def ws(made: dict, tmp_path: Path) -> Path:
    copy = tmp_path / "ws"
    shutil.copytree(made["ws"], copy, symlinks=True)
    return copy


def snapshot(root: Path) -> dict[str, tuple]:
    """Every directory, and every file's bytes and mtime, except parqctl's audit log."""
    result = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel == ".parqctl/audit.jsonl":
            continue
        if path.is_dir():
            result[rel + "/"] = ()
        else:
            result[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return result


def audit_lines(root: Path) -> list[dict]:
    log = root / ".parqctl" / "audit.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@contextlib.contextmanager
def collector_lock(collector: Collector, ws: Path) -> Iterator[dict]:  # noqa: F811
    """The collector's GlobalRunLock held by a live process; yields its owner.json."""
    holder = collector.hold_lock(ws, 120)
    try:
        yield json.loads((ws / ".run_lock" / "owner.json").read_text())
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    assert not (ws / ".run_lock").exists(), "the collector's lock holder did not release"


@contextlib.contextmanager
def parqctl_lock(ws: Path, stop: Path) -> Iterator[tuple[subprocess.Popen, dict]]:
    """parqctl's run lock held by a live process until ``stop`` exists; yields its owner.

    After the stop file, the holder prints {"released": <its release() result>}."""
    script = textwrap.dedent(
        """
        import json, sys, time
        from pathlib import Path
        from core.safety.run_lock import hold
        ws, stop = Path(sys.argv[1]), Path(sys.argv[2])
        with hold(ws, "contract test") as lock:
            print(json.dumps(lock.owner), flush=True)
            deadline = time.monotonic() + 120
            while not stop.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            print(json.dumps({"released": lock.release()}), flush=True)
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(ws), str(stop)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield holder, json.loads(holder.stdout.readline())
    finally:
        stop.touch()
        holder.wait(timeout=30)


def test_the_collector_writes_its_legacy_layout_at_the_workspace_root(made: dict) -> None:
    ws = made["ws"]
    assert sorted(str(p.relative_to(ws)) for p in ws.rglob("*.parquet")) == sorted(
        f"stocks_{iv}/{t}.parquet" for iv in INTERVALS for t in TICKERS
    )
    assert not (ws / "data").exists()
    assert json.loads((ws / "storage_config.json").read_text()) == {
        "partitioned": False,
        "markets": {},
        "sources": {},
    }
    assert json.loads((ws / "intervals.json").read_text()) == list(INTERVALS)
    # Its update-data saves tickers.json only when a ticker returned nothing: the interval
    # entries (last_data_date, storage) it built in memory for tickers with data are lost.
    tickers = json.loads((ws / "tickers.json").read_text())
    assert {t: e["intervals"] for t, e in tickers.items()} == {t: {} for t in TICKERS}

    for iv in INTERVALS:
        for ticker in TICKERS:
            path = ws / f"stocks_{iv}" / f"{ticker}.parquet"
            meta = pq.ParquetFile(path)
            schema = meta.schema_arrow
            assert [(f.name, f.type) for f in schema] == [
                ("stock", pa.string()),
                ("date", pa.timestamp("ns")),
                ("open", pa.float64()),
                ("high", pa.float64()),
                ("low", pa.float64()),
                ("close", pa.float64()),
                ("volume", pa.int64()),
                ("sequence", pa.int64()),
            ]
            assert b"pandas" in schema.metadata
            assert meta.metadata.row_group(0).column(0).compression == "GZIP"
            frame = pd.read_parquet(path)
            assert {c: str(t) for c, t in frame.dtypes.items()} == {
                "stock": "string",
                "date": "datetime64[ns]",
                "open": "float64",
                "high": "float64",
                "low": "float64",
                "close": "float64",
                "volume": "Int64",
                "sequence": "Int64",
            }
            assert frame["sequence"].isna().all()
            assert (frame["stock"] == ticker).all()
            assert frame["date"].is_monotonic_increasing and frame["date"].is_unique

            seen = made["reads"][iv][ticker]
            assert seen["route"] == {
                "backend": "legacy",
                "path": f"stocks_{iv}/{ticker}.parquet",
                "exists": True,
            }
            assert seen["rows"] == len(frame) == WEEKDAYS * BARS_PER_SESSION[iv]
            assert seen["dtypes"] == {
                "stock": "string",
                "date": "datetime64[ns]",
                "open": "float64",
                "high": "float64",
                "low": "float64",
                "close": "float64",
                "volume": "Int64",
                "sequence": "Int64",
            }
            assert seen["min"] == frame["date"].min().isoformat()
            assert seen["max"] == frame["date"].max().isoformat()


def assert_refused(ws: Path, holder_pid: int, *args: str, code: int | None = 3) -> None:
    before, audit_before = snapshot(ws), audit_lines(ws)
    result = run_cli("--workspace", str(ws), *args)
    what = f"parqctl {' '.join(args)}"
    if code is None:
        assert result.returncode != 0, f"{what} broke a live lock"
    else:
        assert result.returncode == code, f"{what}: {result.returncode} {result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pid {holder_pid}" in lines[0], f"{what}: {result.stderr}"
    assert snapshot(ws) == before, f"{what} changed the workspace under the collector's lock"
    # Its only trace is an audit record of the refusal, appended.
    audit = audit_lines(ws)
    assert audit[: len(audit_before)] == audit_before
    assert all(entry["result"] == "refused" for entry in audit[len(audit_before) :])


def parqctl_ok(ws: Path, *args: str) -> None:
    result = run_cli("--workspace", str(ws), *args)
    assert result.returncode == 0, f"parqctl {' '.join(args)}: {result.stderr}"


def test_parqctl_writers_refuse_while_the_collector_holds_its_lock(
    collector: Collector,  # noqa: F811
    made: dict,
    ws: Path,
) -> None:
    # The operator's step before any migration, as the collector's own tool demands.
    (ws / "data" / "legacy").mkdir(parents=True)
    (ws / "stocks_1d").rename(ws / "data" / "legacy" / "stocks_1d")
    parqctl_ok(ws, "migrate", "plan", "--interval", "1d")

    with collector_lock(collector, ws) as owner:
        pid = owner["pid"]
        assert_refused(ws, pid, "migrate", "plan", "--interval", "1d")
        assert_refused(ws, pid, "migrate", "run")
        assert_refused(
            ws, pid, "quarantine", "add", "data/legacy/stocks_1d/AAPL.parquet", "--reason", "x"
        )
        assert_refused(ws, pid, "lock", "break", "--yes", code=None)

    parqctl_ok(ws, "migrate", "run")
    parqctl_ok(ws, "migrate", "verify")
    with collector_lock(collector, ws) as owner:
        assert_refused(ws, owner["pid"], "migrate", "activate")

    parqctl_ok(ws, "migrate", "activate")
    with collector_lock(collector, ws) as owner:
        assert_refused(ws, owner["pid"], "migrate", "rollback", "--yes")

    # What parqctl migrated and activated, the collector now reads from the partitions:
    # the same rows, to the byte of its own frame.
    after = collector.read(ws, "1d")
    for ticker in TICKERS:
        assert after[ticker]["route"] == {
            "backend": "partitioned",
            "path": f"data/us/yahoo/stocks_1d/ticker={ticker}",
            "exists": True,
        }
        before = made["reads"]["1d"][ticker]
        assert {k: after[ticker][k] for k in ("rows", "dtypes", "min", "max", "digest")} == {
            k: before[k] for k in ("rows", "dtypes", "min", "max", "digest")
        }


def test_the_collector_leaves_a_live_parqctl_lock_alone_when_interactive(
    collector: Collector,  # noqa: F811
    ws: Path,
    tmp_path: Path,
) -> None:
    with parqctl_lock(ws, tmp_path / "stop") as (_holder, owner):
        lock_file = ws / ".run_lock" / "owner.json"
        held = lock_file.read_bytes()
        before = snapshot(ws)

        answer = collector.run("lock-try", ws)
        assert answer["acquired"] is False
        assert answer["owner"]["pid"] == owner["pid"]
        assert answer["lock_dir_after"] is True

        # Its interactive updater asks whether to recover; on a closed stdin it gives up.
        update = collector.update(ws, START.isoformat(), END.isoformat(), non_interactive=False)
        assert update["exit_code"] == 1
        assert update["lock_before"]["token"] == owner["token"]
        assert lock_file.read_bytes() == held
        assert snapshot(ws) == before


def test_the_collector_in_cron_mode_removes_a_live_parqctl_lock(
    collector: Collector,  # noqa: F811
    made: dict,
    ws: Path,
    tmp_path: Path,
) -> None:
    # A temp file of a parqctl write in progress, where the collector's start-up cleanup looks.
    month = ws / "data" / "us" / "yahoo" / "stocks_1d" / "ticker=AAPL" / "year=2026" / "month=01"
    month.mkdir(parents=True)
    ours = temp_path_for(month / "data.parquet")
    ours.write_bytes(b"half a parquet file")

    with parqctl_lock(ws, tmp_path / "stop") as (holder, owner):
        update = collector.update(ws, START.isoformat(), END.isoformat(), non_interactive=True)
        assert update["exit_code"] == 0, update["log"]
        assert update["lock_before"]["token"] == owner["token"]
        # The real behaviour: it takes the live lock away and, when done, removes the
        # directory as if it were its own. parqctl's holder is still running.
        assert not (ws / ".run_lock").exists()
        assert update["lock_dir_after"] is False
        assert holder.poll() is None
        assert ours.read_bytes() == b"half a parquet file"
        (tmp_path / "stop").touch()
        assert json.loads(holder.stdout.readline()) == {"released": False}

    # It fetched the same window again: the files read back the same.
    again = collector.read(ws, "1d")
    for ticker in TICKERS:
        assert again[ticker]["digest"] == made["reads"]["1d"][ticker]["digest"]


def test_parqctl_counts_the_rows_the_collector_reads_in_a_root_layout(made: dict) -> None:
    ws = made["ws"]
    health = json.loads(run_cli("--workspace", str(ws), "health", "--json").stdout)
    datasets = {d["path"]: d for d in health["datasets"]}
    assert health["stranded_legacy"] == {}
    for iv in INTERVALS:
        reads = made["reads"][iv]
        for ticker in TICKERS:
            shown = run_cli("--workspace", str(ws), "show", ticker, "--interval", iv, "--json")
            assert shown.returncode == 0, shown.stderr
            answer = json.loads(shown.stdout)
            assert answer["files"] == [reads[ticker]["route"]["path"]]
            assert answer["rows"] == reads[ticker]["rows"]
        dataset = datasets[f"stocks_{iv}"]
        assert (dataset["label"], dataset["tickers"]) == (f"legacy {iv}", len(TICKERS))
        assert health["storage_modes"][iv] == {"legacy": len(TICKERS)}
