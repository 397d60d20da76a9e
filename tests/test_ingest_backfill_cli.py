"""``parqctl backfill`` as a process: the demo's injected gaps from recorded responses,
closed in availability; a SIGKILL mid-run loses nothing written and leaves no partial bar
file; no network leaves the workspace byte-identical."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import REPO, run_cli, tree_digest
from fixtures.ingest_fakes import fast_config, make_workspace, record_demo_gaps, session_times

from core.store.demo import build_demo

TODAY = "2025-12-15"
END = date(2025, 12, 12)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, Path, list]:
    base = tmp_path_factory.mktemp("demo")
    root = base / "ws"
    report = build_demo(root, tickers=20, end=END, years_1d=2, years_1h=1)
    fast_config(root)
    recordings = base / "recordings"
    record_demo_gaps(report.injections, recordings)
    return root, recordings, report.injections


def test_backfill_of_the_demo_gaps_from_recorded_responses(demo, tmp_path):
    built, recordings, injections = demo
    root = tmp_path / "ws"
    shutil.copytree(built, root)
    gaps = {(i.ticker, i.interval) for i in injections if i.kind == "gap"}
    before = run_cli("-w", str(root), "availability", "--today", TODAY)
    assert "  18  " in before.stdout or " 18 " in before.stdout  # each gap ticker misses 18

    env = {"PARQCTL_YAHOO_RECORDINGS": str(recordings)}
    result = run_cli("-w", str(root), "backfill", "--today", TODAY, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"backfill: 2 requests for 36 missing sessions of {len(gaps)} ticker/intervals" in (
        result.stdout
    )
    assert "2/2 requests" in result.stderr  # progress on stderr (a line per request off a tty)
    for ticker, interval in gaps:
        line = next(x for x in result.stdout.splitlines() if x.startswith(f"{ticker} "))
        assert line.split()[1] == interval
        assert line.split()[-2:] == ["18", "0"], line

    after = run_cli("-w", str(root), "availability", "--today", TODAY, "--json")
    report = json.loads(after.stdout)
    for interval in ("1d", "1h"):
        assert report["intervals"][interval]["summary"]["missing_sessions"] == 0
    again = run_cli("-w", str(root), "backfill", "--today", TODAY, env=env)
    assert again.returncode == 0
    assert again.stdout.startswith("nothing to backfill")


def test_no_network_leaves_the_workspace_byte_identical(demo, tmp_path):
    built, _, _ = demo
    root = tmp_path / "ws"
    shutil.copytree(built, root)
    run_cli("-w", str(root), "availability", "--today", TODAY)  # the index is current
    # (but for the time the index last looked, which every refresh records)
    looked = ".parqctl/index/state.json"
    before = {k: v for k, v in tree_digest(root).items() if k != looked}
    recordings = tmp_path / "down"
    recordings.mkdir()
    (recordings / "unreachable.txt").write_text("[Errno -3] Temporary failure in name resolution")
    env = {"PARQCTL_YAHOO_RECORDINGS": str(recordings)}
    result = run_cli("-w", str(root), "backfill", "--today", TODAY, env=env)
    assert result.returncode == 5
    assert result.stderr.strip().splitlines()[-1] == (
        "parqctl: error: cannot reach Yahoo Finance ([Errno -3] Temporary failure in name "
        "resolution); nothing was changed"
    )
    assert {k: v for k, v in tree_digest(root).items() if k != looked} == before


# --- SIGKILL -------------------------------------------------------------------------------

KILLABLE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path[:0] = [{repo!r}, {tests!r}]
    from fixtures.ingest_fakes import FakeYahoo
    from core.ingest import store, yahoo
    marker, mode, at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])

    def stall():
        marker.write_text("stalled")
        time.sleep(120)

    def slow():  # a request that takes a while to be answered
        marker.write_text("slow")
        time.sleep(1.5)

    if mode == "request":
        yahoo.default_source = lambda: FakeYahoo(script={{at: stall}})
    elif mode == "slow":
        yahoo.default_source = lambda: FakeYahoo(script={{at: slow}})
    elif mode == "clean":
        yahoo.default_source = lambda: FakeYahoo()
    else:  # stop for good half-way through the at-th file write: its temp file written
        yahoo.default_source = lambda: FakeYahoo()
        real, writes = store.write_bar_file, []

        def write(path, table, **kw):
            writes.append(path)
            if len(writes) < at:
                return real(path, table, **kw)
            from core.safety.atomic import atomic_path
            from core.store.bars import with_pandas_metadata
            import pyarrow.parquet as pq
            with atomic_path(path) as tmp:
                pq.write_table(with_pandas_metadata(table), tmp, compression="gzip")
                stall()

        store.write_bar_file = write
    from tui.cli import main
    sys.exit(main(["-w", sys.argv[4], "backfill", "--today", "{today}"]))
    """
)


@pytest.fixture
def gappy(tmp_path) -> Path:
    """Five requests' worth of gaps (the backfill test module's workspace, smaller)."""
    bars = {
        "1d": {"DAY": session_times("1d", "2025-01-02", "2025-12-12", ["2025-03-03", "2025-11-03"])},
        "5m": {"FIV": session_times("5m", "2025-10-15", "2025-12-12", ["2025-10-20", "2025-12-10"])},
        "1m": {"MIN": session_times("1m", "2025-11-17", "2025-12-12", ["2025-11-19", "2025-12-09"])},
    }  # fmt: skip
    root = make_workspace(tmp_path / "ws", bars, intervals=("1d", "5m", "1m"))
    fast_config(root, '[retention_days]\n"1m" = 30\n')
    return root


DEAD_PROXY = {k: "http://127.0.0.1:9" for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}


def backfill_process(root: Path, marker: Path, mode: str, at: int = 0) -> subprocess.Popen:
    """``parqctl backfill`` in a process of its own, its Yahoo a fake (and, should anything
    get past it, every proxy a dead end)."""
    script = KILLABLE.format(repo=str(REPO), tests=str(REPO / "tests"), today=TODAY)
    return subprocess.Popen(
        [sys.executable, "-c", script, str(marker), mode, str(at), str(root)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **DEAD_PROXY},
    )


def kill_at(root: Path, tmp_path: Path, mode: str, at: int) -> None:
    marker = tmp_path / "stalled"
    proc = backfill_process(root, marker, mode, at)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the backfill never reached the stall"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def bar_files(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): pq.read_metadata(p).num_rows
        for p in sorted(root.glob("stocks_*/*.parquet"))
    }


def temp_files(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*parqctl-tmp-*")]


def finish(root: Path, monkeypatch) -> None:
    """What the operator does next: break the dead run's lock, run backfill again (here,
    in this process, its Yahoo the fake)."""
    from fixtures.ingest_fakes import FakeYahoo

    from core.ingest import yahoo
    from tui.cli import main

    assert main(["-w", str(root), "lock", "break", "--yes"]) == 0
    monkeypatch.setattr(yahoo, "default_source", lambda: FakeYahoo())
    assert main(["-w", str(root), "backfill", "--today", TODAY]) == 0
    assert temp_files(root) == []
    assert main(["-w", str(root), "availability", "--today", TODAY]) == 0


def test_sigkill_while_waiting_for_yahoo_loses_nothing_written(gappy, tmp_path, monkeypatch):
    rows = bar_files(gappy)
    kill_at(gappy, tmp_path, "request", 3)  # the first 1m window and the 5m one are written
    after = bar_files(gappy)
    assert after["stocks_5m/FIV.parquet"] == rows["stocks_5m/FIV.parquet"] + 2 * 78
    assert after["stocks_1m/MIN.parquet"] == rows["stocks_1m/MIN.parquet"] + 390
    assert after["stocks_1d/DAY.parquet"] == rows["stocks_1d/DAY.parquet"]
    assert temp_files(gappy) == []
    json.loads((gappy / "tickers.json").read_text())  # whole, and saved after each window
    finish(gappy, monkeypatch)


def test_sigkill_mid_write_leaves_the_old_file_whole_and_no_partial_bar_file(
    gappy, tmp_path, monkeypatch
):
    rows = bar_files(gappy)
    before = (gappy / "stocks_5m/FIV.parquet").read_bytes()
    # The requests go out 1m (until 12-19, first by interval), 5m (12-19), 1m, 1d: the
    # second file written is FIV's; the process dies with its new content half-renamed.
    kill_at(gappy, tmp_path, "write", 2)
    assert (gappy / "stocks_5m/FIV.parquet").read_bytes() == before  # the old file, whole
    assert bar_files(gappy)["stocks_1m/MIN.parquet"] == rows["stocks_1m/MIN.parquet"] + 390
    leftovers = temp_files(gappy)
    assert len(leftovers) == 1 and Path(leftovers[0]).name.startswith(".FIV.parquet.")
    # the collector's reader opens <T>.parquet / data.parquet only: a hidden temp is never read
    assert not leftovers[0].endswith(".parquet")
    finish(gappy, monkeypatch)  # the next run removes the dead writer's temp file first


def test_sigterm_stops_after_the_request_in_progress_with_it_written(gappy, tmp_path):
    rows = bar_files(gappy)
    marker = tmp_path / "slow"
    proc = backfill_process(gappy, marker, "slow", 3)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "stopping after the request in progress" in err
    assert "cancelled after 3 of 4 requests; everything fetched before is written" in out
    after = bar_files(gappy)
    assert after["stocks_1m/MIN.parquet"] == rows["stocks_1m/MIN.parquet"] + 2 * 390
    assert after["stocks_1d/DAY.parquet"] == rows["stocks_1d/DAY.parquet"]  # never asked
    assert not (gappy / ".run_lock").exists()
    results = [
        json.loads(line)
        for line in (gappy / ".parqctl/audit.jsonl").read_text().splitlines()
        if '"ingest.backfill"' in line
    ]
    assert results[-1]["result"] == "cancelled" and results[-1]["requests"] == 3
