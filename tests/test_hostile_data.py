"""Hostile bar data (issue 12): a file that decodes to gigabytes, a bar dated 2262, and
control characters in ticker names. Real Parquet files in temp workspaces, real CLI
subprocesses: each command stays within its memory, never shows a traceback, and never
writes a name's escape sequence to the terminal raw."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PARQCTL, run_cli, ticker_entry, write_bars, write_tickers

from core.safety.atomic import write_json
from core.store.bars import BAR_SCHEMA

DAYS = [datetime(2025, 12, d) for d in (1, 2, 3)]
TODAY = "2025-12-05"
GIB = 1024**3
# What one command may take on one file (the issue: "about 1 GB"); above KILL_AT the
# command is killed, so that the unfixed code fails the test quickly instead of taking
# the machine's memory (it went past 10 GB).
BUDGET = 1 * GIB
KILL_AT = 1.5 * GIB
HUGE_ROWS = 60_000_000
HUGE_GROUPS = 30
TRACEBACK = "Traceback (most recent call last)"


# --- a workspace -------------------------------------------------------------------------


def small_workspace(root: Path, tickers: dict[str, list[datetime]]) -> Path:
    for ticker, days in tickers.items():
        write_bars(root / "stocks_1d" / f"{ticker}.parquet", ticker, days)
    write_tickers(root, {t: ticker_entry(t) for t in tickers})
    write_json(root / "intervals.json", ["1d"])
    write_json(root / "storage_config.json", {"partitioned": False, "markets": {}, "sources": {}})
    return root


def write_huge_file(path: Path, rows: int = HUGE_ROWS, groups: int = HUGE_GROUPS) -> None:
    """A valid Parquet file of ``rows`` identical bars in ``groups`` row groups, in ~100 KB
    and about a second: one row group is encoded (a constant: dictionary + RLE), and the
    footer lists it ``groups`` times (each entry points at the same column chunks), the
    cheap way to the issue's 1.9 MB file of 60M rows that every reader decodes in full."""
    per_group = rows // groups
    columns = {
        name: pa.repeat(pa.scalar(value, BAR_SCHEMA.field(name).type), per_group)
        for name, value in {
            "stock": "BIG",
            "date": datetime(2025, 12, 1),
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": 1.0,
            "volume": 1,
        }.items()
    }
    table = pa.table({**columns, "sequence": pa.nulls(per_group, pa.int64())}, schema=BAR_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="gzip", row_group_size=per_group)
    data = sink.getvalue()
    footer_length = struct.unpack("<I", data[-8:-4])[0]
    body = data[: len(data) - 8 - footer_length]
    metadata = pq.read_metadata(io.BytesIO(data))
    for _ in range(groups - 1):
        metadata.append_row_groups(pq.read_metadata(io.BytesIO(data)))
    footer = io.BytesIO()
    metadata.write_metadata_file(footer)  # PAR1 + the footer + its length + PAR1
    thrift = footer.getvalue()[4:-8]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body + thrift + struct.pack("<I", len(thrift)) + b"PAR1")


@pytest.fixture(scope="module")
def huge_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("huge") / "BIG.parquet"
    write_huge_file(path)
    return path


@pytest.fixture
def huge_workspace(tmp_path: Path, huge_file: Path) -> Path:
    """AAPL and MSFT as they should be, and BIG: 60M rows that decode to gigabytes."""
    root = small_workspace(tmp_path / "ws", {"AAPL": DAYS, "MSFT": DAYS})
    os.link(huge_file, root / "stocks_1d" / "BIG.parquet")
    write_tickers(root, {t: ticker_entry(t) for t in ("AAPL", "MSFT", "BIG")})
    return root


def test_the_huge_file_is_what_the_issue_describes(huge_file: Path):
    from core.store.bars import decoded_bytes

    metadata = pq.read_metadata(huge_file)
    assert metadata.num_rows == HUGE_ROWS and metadata.num_row_groups == HUGE_GROUPS
    assert huge_file.stat().st_size < 2_000_000
    assert decoded_bytes(metadata) > 3 * GIB
    with pq.ParquetFile(huge_file) as parquet:  # every row group really decodes
        last = parquet.read_row_group(HUGE_GROUPS - 1, columns=["stock", "date"])
    assert last.num_rows == HUGE_ROWS // HUGE_GROUPS
    assert last.slice(0, 1).to_pylist() == [{"stock": "BIG", "date": datetime(2025, 12, 1)}]


# --- running a command under a memory cap -----------------------------------------------


@dataclass
class Capped:
    returncode: int
    stdout: str
    stderr: str
    peak: int  # bytes: the largest proportional set size of the process tree seen
    killed: bool


def _tree_memory(process: psutil.Process) -> int:
    """Proportional set size of a process and all its descendants (workers, fork server):
    shared pages counted once overall, so a pool of workers is not counted N times."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            total += member.memory_full_info().pss
    return total


def run_capped(*args: str, kill_at: float = KILL_AT, timeout: float = 120) -> Capped:
    env = {k: v for k, v in os.environ.items() if k != "PARQCTL_WORKSPACE"}
    child = subprocess.Popen(
        [str(PARQCTL), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    watched = psutil.Process(child.pid)
    state = {"peak": 0, "killed": False}

    def watch() -> None:
        while child.poll() is None:
            try:
                used = _tree_memory(watched)
            except psutil.Error:
                break
            state["peak"] = max(state["peak"], used)
            if used > kill_at:
                state["killed"] = True
                try:
                    members = [*watched.children(recursive=True), watched]
                except psutil.Error:
                    members = [watched]
                for member in members:
                    with contextlib.suppress(psutil.Error):
                        member.kill()
                break
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, err = child.communicate(timeout=timeout)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
        watcher.join(5)
    return Capped(child.returncode, out, err, state["peak"], state["killed"])


def assert_bounded(result: Capped) -> None:
    assert not result.killed, f"killed at {result.peak / GIB:.1f} GiB"
    assert result.peak < BUDGET, f"peak {result.peak / GIB:.2f} GiB"
    assert TRACEBACK not in result.stderr, result.stderr[-2000:]


def assert_refusal_line(line: str, path: str) -> None:
    """One line: the file, its rows and decoded size, the limits, and what to do."""
    assert "\n" not in line.strip()
    assert path in line
    assert "too large to read: 60,000,000 rows in 30 row groups" in line
    assert re.search(r"about [\d,]+ MiB decoded", line)
    assert "(limits 3,000,000 rows, 256 MiB)" in line
    assert "parqctl quarantine add" in line and "[limits]" in line


# --- bounded memory ----------------------------------------------------------------------


def test_show_refuses_the_huge_file_in_one_line(huge_workspace: Path):
    result = run_capped("-w", str(huge_workspace), "show", "BIG")
    assert_bounded(result)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("parqctl: error: bar file ")
    assert_refusal_line(lines[0], str(huge_workspace / "stocks_1d" / "BIG.parquet"))
    # another ticker is shown as ever
    assert run_cli("-w", str(huge_workspace), "show", "AAPL").returncode == 0


def test_integrity_reports_the_huge_file_as_an_error_and_checks_the_rest(huge_workspace: Path):
    result = run_capped("-w", str(huge_workspace), "integrity", "--json")
    assert_bounded(result)
    assert result.returncode == 1
    findings = json.loads(result.stdout)["findings"]
    errors = [f for f in findings if f["severity"] == "error"]
    assert [(f["code"], f["path"]) for f in errors] == [("file.too_large", "stocks_1d/BIG.parquet")]
    assert_refusal_line(
        f"{errors[0]['message']} {errors[0]['advice']}".replace("; its rows", " its rows"),
        "stocks_1d/BIG.parquet",
    )
    text = run_capped("-w", str(huge_workspace), "integrity")
    assert_bounded(text)
    assert "ERROR   file.too_large (1)" in text.stdout
    assert "parqctl quarantine add stocks_1d/BIG.parquet" in text.stdout


def test_availability_and_health_stay_bounded_and_name_the_huge_file(huge_workspace: Path):
    result = run_capped("-w", str(huge_workspace), "availability", "--today", TODAY)
    assert_bounded(result)
    assert result.returncode == 1  # an unreadable file
    assert "stocks_1d/BIG.parquet: too large to read: 60,000,000 rows" in result.stdout
    prom = huge_workspace.parent / "parqctl.prom"
    health = run_capped("-w", str(huge_workspace), "health", "--prometheus", str(prom))
    assert_bounded(health)
    assert health.returncode in (0, 1, 2)
    assert prom.is_file()


def test_migration_fails_the_huge_ticker_alone_within_memory(huge_workspace: Path):
    ws = str(huge_workspace)
    assert run_cli("-w", ws, "migrate", "plan", "--interval", "1d").returncode == 0
    big = str(huge_workspace / "stocks_1d" / "BIG.parquet")

    dry = run_capped("-w", ws, "migrate", "dry-run", "--workers", "2")
    assert_bounded(dry)
    assert dry.returncode == 1
    (line,) = [x for x in dry.stdout.splitlines() if "BIG" in x]
    assert line.startswith("  BIG: FAILS (too_large) ")
    assert_refusal_line(line, big)
    assert "ticker=AAPL/year=2025/month=12/data.parquet" in dry.stdout
    assert "ticker=MSFT/year=2025/month=12/data.parquet" in dry.stdout

    estimate = run_capped("-w", ws, "migrate", "estimate", "--workers", "2")
    assert_bounded(estimate)
    assert estimate.returncode == 0
    assert "unreadable legacy files (1): BIG" in estimate.stdout
    (line,) = [x for x in estimate.stdout.splitlines() if "too large" in x]
    assert_refusal_line(line, big)

    run = run_capped("-w", ws, "migrate", "run", "--workers", "2")
    assert_bounded(run)
    assert run.returncode == 1  # completed with failures
    (line,) = [x for x in run.stdout.splitlines() if "FAILED BIG" in x]
    assert line.startswith("  FAILED BIG (too_large): ")
    assert_refusal_line(line, big)
    partitions = huge_workspace / "data" / "us" / "yahoo" / "stocks_1d"
    assert sorted(p.name for p in partitions.iterdir()) == ["ticker=AAPL", "ticker=MSFT"]


def test_the_limits_come_from_the_config_and_a_raised_limit_takes_effect(tmp_path: Path):
    root = small_workspace(tmp_path / "ws", {"AAPL": DAYS, "MSFT": DAYS * 1})
    write_bars(
        root / "stocks_1d" / "MSFT.parquet", "MSFT", [datetime(2025, 1, 1 + i) for i in range(20)]
    )
    config = root / ".parqctl" / "config.toml"
    config.parent.mkdir()
    config.write_text("[limits]\nmax_file_rows = 10\n")
    ws = str(root)

    shown = run_cli("-w", ws, "show", "MSFT")
    assert shown.returncode == 2
    assert "too large to read: 20 rows" in shown.stderr
    assert "(limits 10 rows, 256 MiB)" in shown.stderr
    checked = run_cli("-w", ws, "integrity", "--json")
    codes = {(f["code"], f["ticker"]) for f in json.loads(checked.stdout)["findings"]}
    assert ("file.too_large", "MSFT") in codes

    config.write_text("[limits]\nmax_file_rows = 20\nmax_file_mb = 1\n")
    assert run_cli("-w", ws, "show", "MSFT").returncode == 0
    again = run_cli("-w", ws, "integrity", "--json")  # the index looks again at once
    assert again.returncode == 0, again.stdout
    assert not [f for f in json.loads(again.stdout)["findings"] if f["severity"] == "error"]

    config.write_text("[limits]\nmax_file_rows = -1\n")
    bad = run_cli("-w", ws, "show", "MSFT")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0
    assert "limits.max_file_rows must be a whole number above 0" in bad.stderr


def test_the_footer_estimate_counts_what_decoding_takes():
    from core.store.bars import FileLimits, decoded_bytes, footer_problem

    table = pa.table({"stock": ["ABCDEFGH"] * 1000, "x": [1.0] * 1000})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    metadata = pq.read_metadata(io.BytesIO(sink.getvalue()))
    assert decoded_bytes(metadata) == 1000 * (4 + 8) + 1000 * 8
    assert footer_problem(metadata, FileLimits()) is None
    assert footer_problem(metadata, FileLimits(max_file_rows=999)).startswith(
        "too large to read: 1,000 rows in 1 row groups"
    )


# --- a bar dated 2262 --------------------------------------------------------------------


@pytest.fixture
def far_workspace(tmp_path: Path) -> Path:
    """AAPL and MSFT as they should be; FAR with one bar on 2262-04-08 (a valid
    timestamp[ns], past what any calendar reaches); OLD with one in 1677."""
    return small_workspace(
        tmp_path / "ws",
        {
            "AAPL": DAYS,
            "MSFT": DAYS,
            "FAR": [*DAYS, datetime(2262, 4, 8)],
            "OLD": [datetime(1677, 9, 22, 1), *DAYS],
        },
    )


def test_availability_reports_every_ticker_despite_a_bar_in_2262(far_workspace: Path):
    result = run_cli("-w", str(far_workspace), "availability", "--today", TODAY, "--json")
    assert TRACEBACK not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["intervals"]["1d"]
    assert report["summary"]["tickers"] == 4 and report["summary"]["complete"] == 4
    assert [t["ticker"] for t in report["tickers"]] == ["AAPL", "FAR", "MSFT", "OLD"]
    far = next(t for t in report["tickers"] if t["ticker"] == "FAR")
    assert (far["first"], far["last"], far["missing_sessions"]) == ("2025-12-01", "2025-12-03", 0)
    text = run_cli("-w", str(far_workspace), "availability", "--today", TODAY, "--ticker", "FAR")
    assert text.returncode == 0, text.stderr
    assert "FAR 1d (legacy, XNYS) 2025-12-01..2025-12-03: 3 sessions expected" in text.stdout


def test_health_and_its_prometheus_file_survive_a_bar_in_2262(far_workspace: Path):
    prom = far_workspace.parent / "parqctl.prom"
    # health computes gaps from the file index: let availability build it, as in cron
    run_cli("-w", str(far_workspace), "availability", "--today", TODAY)
    result = run_cli("-w", str(far_workspace), "health", "--prometheus", str(prom))
    assert TRACEBACK not in result.stderr, result.stderr[-2000:]
    assert result.returncode in (0, 1, 2), result.stderr
    assert "gaps       1d   0 of 4 tickers" in result.stdout
    assert "parqctl_health_verdict" in prom.read_text()


def test_integrity_reports_bars_outside_the_calendars(far_workspace: Path):
    result = run_cli("-w", str(far_workspace), "integrity", "--json")
    assert result.returncode == 1
    found = {
        f["ticker"]: f["message"]
        for f in json.loads(result.stdout)["findings"]
        if f["code"] == "rows.date_out_of_range"
    }
    assert set(found) == {"FAR", "OLD"}
    assert found["FAR"].startswith("1 of 4 rows are dated outside 1900-01-01..2200-12-31")
    assert found["FAR"].endswith("2262-04-08 00:00")
    assert found["OLD"].endswith("1677-09-22 01:00")


# --- control characters in names --------------------------------------------------------

EVIL = "EVIL\x1b[31m"  # from a file name (its rows say another ticker)
GHOST = "GHOST\x07\x1b]0;pwned\x07"  # from tickers.json only (no files)
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def evil_workspace(tmp_path: Path) -> Path:
    root = small_workspace(tmp_path / "ws", {"AAPL": DAYS})
    write_bars(root / "stocks_1d" / f"{EVIL}.parquet", "WRONG", DAYS[:2])
    write_tickers(root, {t: ticker_entry(t) for t in ("AAPL", EVIL, GHOST)})
    return root


@pytest.mark.parametrize(
    "command",
    [
        ["integrity"],
        ["availability", "--today", TODAY],
        ["migrate", "plan", "--interval", "1d"],
        ["health"],
        ["show", EVIL],
    ],
    ids=["integrity", "availability", "migrate-plan", "health", "show"],
)
def test_no_command_prints_a_control_character_raw(evil_workspace: Path, command: list[str]):
    result = run_cli("-w", str(evil_workspace), *command)
    assert TRACEBACK not in result.stderr, result.stderr[-2000:]
    for stream in (result.stdout, result.stderr):
        assert not RAW_CONTROL.search(stream), RAW_CONTROL.findall(stream)
    if command[0] != "health":  # (which names no ticker)
        shown = result.stdout + result.stderr
        assert "EVIL\\x1b[31m" in shown or "GHOST\\x07\\x1b]0;pwned\\x07" in shown


def test_the_escapes_name_what_is_there(evil_workspace: Path):
    integrity = run_cli("-w", str(evil_workspace), "integrity").stdout
    assert "stocks_1d/EVIL\\x1b[31m.parquet" in integrity
    assert "tickers.json: GHOST\\x07\\x1b]0;pwned\\x07 1d" in integrity
    availability = run_cli("-w", str(evil_workspace), "availability", "--today", TODAY).stdout
    assert "no bars    1d GHOST\\x07\\x1b]0;pwned\\x07" in availability
    plan = run_cli("-w", str(evil_workspace), "migrate", "plan", "--interval", "1d").stdout
    assert "left alone: " in plan and "stocks_1d/EVIL\\x1b[31m.parquet" in plan


def test_json_output_keeps_the_names_exact(evil_workspace: Path):
    result = run_cli("-w", str(evil_workspace), "integrity", "--json")
    assert not RAW_CONTROL.search(result.stdout)
    findings = json.loads(result.stdout)["findings"]
    assert f"stocks_1d/{EVIL}.parquet" in {f["path"] for f in findings}
    assert GHOST in {f["ticker"] for f in findings}


def test_printable_and_the_escaping_stream():
    from tui.text import EscapingStream, printable

    assert printable("A\x1b[2J\x07\x9b\u202e\udc9bB\n\t") == (
        "A\\x1b[2J\\x07\\x9b\\u202e\\udc9bB\\x0a\\x09"
    )
    assert printable("line\n\tnext\x1b", lines=True) == "line\n\tnext\\x1b"
    assert printable("BRK-B ^GSPC EURUSD=X 7203.T BF.B Zürich") == (
        "BRK-B ^GSPC EURUSD=X 7203.T BF.B Zürich"
    )
    out, err = io.StringIO(), io.StringIO()
    stdout, stderr = EscapingStream(out), EscapingStream(err, keep="\n\t\r")
    assert stdout.write("a\x1bb\r\n") == 5
    stderr.write("\rprogress\x1b[K\n")
    assert out.getvalue() == "a\\x1bb\\x0d\n"
    assert err.getvalue() == "\rprogress\\x1b[K\n"
