"""parqctl's migration against the real yf_parqed collector, end to end.

One workspace made by the collector itself (ten tickers, 1d and 1h, its legacy layout at
the root), copied per test. Every claim is checked with the collector's own reader: the
rows it returns, their dtypes and a digest of all eight columns, and where it routes.
Skipped where the collector cannot be installed (see ``collector_support``).

``pytest -s`` prints the row counts of the full chain, the lock race and what every
migrate step does on a plan the collector's migration tool rewrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path

import pytest
from collector_support import Collector, collector  # noqa: F401
from conftest import PARQCTL, REPO, run_cli

from core.migration.failpoints import FAILPOINT_ENV, TRACE_ENV

TICKERS = (
    "AAPL",
    "MSFT",
    "GOOG",
    "AMZN",
    "NVDA",
    "BRK-B",
    "BF.B",
    "^GSPC",
    "EURUSD=X",
    "7203.T",
)
INTERVALS = ("1d", "1h")
# The history the collector fetched when it made the workspace (recent enough for 1h bars),
# and a later range its cron update adds afterwards.
END = date.today() - timedelta(days=14)
START = END - timedelta(days=60)
LATER = (END.isoformat(), (date.today() - timedelta(days=1)).isoformat())
COMPARED = ("rows", "dtypes", "min", "max", "days", "digest")
DTYPES = {
    "stock": "string",
    "date": "datetime64[ns]",
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "volume": "Int64",
    "sequence": "Int64",
}
LOCK_LOST = "the run lock"


@pytest.fixture(scope="module")
def made(collector: Collector, tmp_path_factory) -> dict:  # noqa: F811
    """The collector-made workspace and what the collector's reader returns for it."""
    ws = tmp_path_factory.mktemp("collector-migration") / "ws"
    answer = collector.init_workspace(ws, TICKERS, INTERVALS, START.isoformat(), END.isoformat())
    assert answer["exit_code"] == 0, answer["log"]
    reads = collector.read_many(ws, INTERVALS)
    for iv in INTERVALS:
        assert sorted(reads[iv]) == sorted(TICKERS)
        for ticker, seen in reads[iv].items():
            assert seen["route"]["backend"] == "legacy", (iv, ticker, seen["route"])
            assert seen["route"]["path"] == f"stocks_{iv}/{ticker}.parquet"
            assert seen["dtypes"] == DTYPES
            assert seen["rows"] > 0
    return {"ws": ws, "reads": reads}


@pytest.fixture
def ws(made: dict, tmp_path: Path) -> Path:
    copy = tmp_path / "ws"
    shutil.copytree(made["ws"], copy, symlinks=True)
    return copy


# --- helpers -----------------------------------------------------------------------------


def parqctl(ws: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("--workspace", str(ws), *args)


def parqctl_ok(ws: Path, *args: str) -> subprocess.CompletedProcess:
    result = parqctl(ws, *args)
    assert result.returncode == 0, (
        f"parqctl {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )
    return result


def parqctl_json(ws: Path, *args: str) -> dict:
    return json.loads(parqctl_ok(ws, *args, "--json").stdout)


def migrate_all(ws: Path) -> None:
    """plan, run, verify and activate both intervals with parqctl."""
    parqctl_ok(ws, "migrate", "plan", *interval_args(INTERVALS))
    parqctl_ok(ws, "migrate", "run")
    parqctl_ok(ws, "migrate", "verify")
    parqctl_ok(ws, "migrate", "activate")


def interval_args(intervals: Iterable[str]) -> list[str]:
    return [arg for iv in intervals for arg in ("--interval", iv)]


def compared(reads: dict) -> dict:
    """{interval: {ticker: the fields that say which rows the collector returns}}."""
    return {
        iv: {t: {k: seen[k] for k in COMPARED} for t, seen in by_ticker.items()}
        for iv, by_ticker in reads.items()
    }


def routes(reads: dict) -> dict:
    return {
        iv: {t: seen["route"] for t, seen in by_ticker.items()} for iv, by_ticker in reads.items()
    }


def partition_route(iv: str, ticker: str) -> dict:
    return {
        "backend": "partitioned",
        "path": f"data/us/yahoo/stocks_{iv}/ticker={ticker}",
        "exists": True,
    }


def legacy_route(iv: str, ticker: str) -> dict:
    return {"backend": "legacy", "path": f"stocks_{iv}/{ticker}.parquet", "exists": True}


def row_summary(reads: dict) -> dict[str, str]:
    """Per interval: total rows and the per-ticker counts (one number where all agree)."""
    out = {}
    for iv, by_ticker in reads.items():
        counts = sorted({seen["rows"] for seen in by_ticker.values()})
        each = str(counts[0]) if len(counts) == 1 else f"{counts[0]}..{counts[-1]}"
        total = sum(seen["rows"] for seen in by_ticker.values())
        out[iv] = f"{total:>6} rows ({len(by_ticker)} tickers x {each})"
    return out


def print_table(title: str, stages: list[tuple[str, dict]]) -> None:
    print(f"\n{title}")
    print(f"  {'stage':<34} " + "  ".join(f"{iv:<32}" for iv in INTERVALS))
    for stage, reads in stages:
        summary = row_summary(reads)
        print(f"  {stage:<34} " + "  ".join(f"{summary[iv]:<32}" for iv in INTERVALS))


def files_state(ws: Path, *extra: str) -> dict[str, str]:
    """sha256 of every file under data/ and stocks_*/ (and of ``extra`` files)."""
    out = {}
    paths = [
        p for top in ("data", *(f"stocks_{iv}" for iv in INTERVALS)) for p in (ws / top).rglob("*")
    ]
    paths += [ws / name for name in extra if (ws / name).exists()]
    for path in sorted(paths):
        if path.is_file():
            out[str(path.relative_to(ws))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def audit_lines(ws: Path) -> list[dict]:
    log = ws / ".parqctl" / "audit.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


SHOW_MANY = """
import contextlib, io, json, sys
from tui.cli import main
answers = []
for interval, ticker in json.loads(sys.argv[2]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--workspace", sys.argv[1], "show", ticker, "--interval", interval, "--json"])
    answers.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(answers))
"""


def show_all(ws: Path, tickers: Iterable[str], intervals: Iterable[str]) -> dict:
    """{interval: {ticker: parqctl show T --interval IV --json}}: parqctl's CLI ``main`` run
    for each in one process (twenty starts of parqctl would cost more than the test)."""
    jobs = [(iv, t) for iv in intervals for t in tickers]
    proc = subprocess.run(
        [sys.executable, "-c", SHOW_MANY, str(ws), json.dumps(jobs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, dict] = {}
    for (iv, ticker), (code, stdout, stderr) in zip(jobs, json.loads(proc.stdout), strict=True):
        assert code == 0, f"show {ticker} -i {iv}: {stderr}"
        out.setdefault(iv, {})[ticker] = json.loads(stdout)
    return out


# --- 1. the full chain -------------------------------------------------------------------


def test_full_chain_migrate_activate_collector_update_rollback(
    collector: Collector,  # noqa: F811
    made: dict,
    ws: Path,
) -> None:
    before = made["reads"]
    config_before = json.loads((ws / "storage_config.json").read_text())
    tickers_before = json.loads((ws / "tickers.json").read_text())

    migrate_all(ws)
    assert json.loads((ws / "storage_config.json").read_text()) == {
        "partitioned": True,
        "markets": {},
        "sources": {"us/yahoo": True},
    }
    activated = collector.read_many(ws, INTERVALS)
    # The collector now reads the partitions parqctl wrote: the same rows, to the digest.
    assert compared(activated) == compared(before)
    assert routes(activated) == {
        iv: {t: partition_route(iv, t) for t in TICKERS} for iv in INTERVALS
    }

    # Its cron update over a later range writes new bars into the partitions; the legacy
    # files at the root, which parqctl read in place, are left as they were.
    legacy_before = files_state(ws)
    legacy_before = {p: h for p, h in legacy_before.items() if p.startswith("stocks_")}
    update = collector.update(ws, *LATER)
    assert update["exit_code"] == 0, update["log"]
    written = collector.read_many(ws, INTERVALS)
    assert routes(written) == routes(activated)
    for iv in INTERVALS:
        for ticker in TICKERS:
            assert written[iv][ticker]["rows"] > activated[iv][ticker]["rows"], (iv, ticker)
            assert written[iv][ticker]["max"] > activated[iv][ticker]["max"], (iv, ticker)
            assert written[iv][ticker]["dtypes"] == DTYPES
    assert {p: h for p, h in files_state(ws).items() if p.startswith("stocks_")} == legacy_before

    # parqctl sees what the collector sees.
    shown = show_all(ws, TICKERS, INTERVALS)
    # The same answer as from the installed command.
    assert parqctl_json(ws, "show", "BRK-B", "--interval", "1h") == shown["1h"]["BRK-B"]
    for iv in INTERVALS:
        for ticker in TICKERS:
            answer, seen = shown[iv][ticker], written[iv][ticker]
            assert answer["read_from"] == "partitioned", (iv, ticker, answer)
            assert answer["rows"] == seen["rows"], (iv, ticker, answer["rows"], seen["rows"])
            assert answer["first"] == seen["min"].replace("T", " ")
            assert answer["last"] == seen["max"].replace("T", " ")
            assert all(f.startswith(seen["route"]["path"] + "/") for f in answer["files"])
    availability = parqctl(ws, "availability", "--json")
    assert availability.returncode in (0, 1), availability.stderr
    report = json.loads(availability.stdout)
    for iv in INTERVALS:
        by_ticker = {t["ticker"]: t for t in report["intervals"][iv]["tickers"]}
        assert sorted(by_ticker) == sorted(TICKERS)
        for ticker in TICKERS:
            got, seen = by_ticker[ticker], written[iv][ticker]
            assert got["first"] == seen["min"][:10] and got["last"] == seen["max"][:10]
            # Every day the collector returns bars for is a session present, or a day the
            # fake yfinance answered that is not a session (a holiday): none is left out.
            assert got["present_sessions"] + len(got["off_session_days"]) == seen["days"]
            assert got["unreadable_files"] == []
    integrity = parqctl(ws, "integrity", "--json")
    assert integrity.returncode == 0, integrity.stdout + integrity.stderr
    checked = json.loads(integrity.stdout)
    assert checked["counts"]["error"] == 0, checked["findings"]

    # Rollback: the collector reads its legacy files at the root again, and they hold every
    # row it read from the partitions just before, its own new bars included.
    rollback = parqctl(ws, "migrate", "rollback", "--yes")
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    back = collector.read_many(ws, INTERVALS)
    assert routes(back) == {iv: {t: legacy_route(iv, t) for t in TICKERS} for iv in INTERVALS}
    assert compared(back) == compared(written)
    assert json.loads((ws / "storage_config.json").read_text()) == config_before
    assert json.loads((ws / "tickers.json").read_text()) == tickers_before

    print_table(
        "test 1: the collector's reader, rows per stage",
        [
            ("before (legacy, root)", before),
            ("after parqctl activate (partitions)", activated),
            ("after the collector wrote", written),
            ("after parqctl rollback (legacy)", back),
        ],
    )
    print("  rollback said:\n    " + "\n    ".join(rollback.stdout.strip().splitlines()))


# --- 2. the collector's cron update takes the lock during migrate run ----------------------


def failpoint_index(ws: Path, name: str, nth: int, args: list[str], tmp_path: Path) -> int:
    """The number of the ``nth`` failpoint called ``name`` in a traced run on a copy."""
    copy = tmp_path / "calibration"
    shutil.copytree(ws, copy, symlinks=True)
    trace = tmp_path / "trace.txt"
    result = run_cli("--workspace", str(copy), *args, env={TRACE_ENV: str(trace)})
    assert result.returncode == 0, result.stderr
    numbers = [
        int(number)
        for number, point in (line.split() for line in trace.read_text().splitlines())
        if point == name
    ]
    assert len(numbers) >= nth, trace.read_text()
    shutil.rmtree(copy)
    return numbers[nth - 1]


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_collector_cron_update_removes_the_lock_during_migrate_run(
    collector: Collector,  # noqa: F811
    made: dict,
    ws: Path,
    tmp_path: Path,
) -> None:
    """Deterministic overlap: parqctl's own failpoint SIGSTOPs `migrate run` just after its
    second batch's checkpoint; while it is stopped the REAL collector's
    `update-data --non-interactive` removes parqctl's live lock, fetches a later range into
    the root legacy files parqctl is migrating, and releases; then parqctl continues."""
    before = made["reads"]
    parqctl_ok(ws, "migrate", "plan", *interval_args(INTERVALS))
    run_args = ["migrate", "run", "--batch-size", "1", "--workers", "1"]
    stop_at = failpoint_index(ws, "batch-checkpointed", 2, run_args, tmp_path)

    env = {k: v for k, v in os.environ.items() if k != "PARQCTL_WORKSPACE"}
    env[FAILPOINT_ENV] = f"stop@{stop_at}"
    run = subprocess.Popen(
        [str(PARQCTL), "--workspace", str(ws), *run_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while process_state(run.pid) != "T":
            assert run.poll() is None, f"migrate run ended before its stop: {run.communicate()}"
            assert time.monotonic() < deadline, "migrate run never reached its stop"
            time.sleep(0.02)
        owner = json.loads((ws / ".run_lock" / "owner.json").read_text())
        assert owner["pid"] == run.pid and owner.get("writer") == "parqctl"
        plan = json.loads((ws / "migration_plan.json").read_text())
        done = {
            (iv, t)
            for iv, record in plan["venues"][0]["intervals"].items()
            for t, state in record.get("parqctl", {}).get("tickers", {}).items()
            if state.get("state") == "done"
        }
        assert len(done) == 2, done  # mid-run: two tickers done, eighteen to go

        update = collector.update(ws, *LATER, non_interactive=True)
        assert update["exit_code"] == 0, update["log"]
        assert update["lock_before"]["token"] == owner["token"]  # it took parqctl's live lock
        assert update["lock_dir_after"] is False
        os.kill(run.pid, signal.SIGCONT)
        stdout, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.kill(run.pid, signal.SIGCONT)
            run.kill()
            run.wait(timeout=30)

    assert run.returncode == 3, f"rc {run.returncode}\n{stdout}{stderr}"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and LOCK_LOST in lines[0], stderr
    lost = [e for e in audit_lines(ws) if e["action"] == "lock.lost"]
    assert len(lost) == 1 and lost[0]["token"] == owner["token"], lost
    assert not (ws / ".run_lock").exists()

    # Nothing lost: the collector reads every row it had, plus the bars it just fetched.
    grown = collector.read_many(ws, INTERVALS)
    for iv in INTERVALS:
        for ticker in TICKERS:
            assert grown[iv][ticker]["route"] == legacy_route(iv, ticker)
            assert grown[iv][ticker]["min"] == before[iv][ticker]["min"]
            assert grown[iv][ticker]["rows"] > before[iv][ticker]["rows"], (iv, ticker)

    resumed = parqctl_ok(ws, "migrate", "run")
    verified = parqctl_ok(ws, "migrate", "verify")
    parqctl_ok(ws, "migrate", "activate")
    activated = collector.read_many(ws, INTERVALS)
    assert routes(activated) == {
        iv: {t: partition_route(iv, t) for t in TICKERS} for iv in INTERVALS
    }
    assert compared(activated) == compared(grown)

    print_table(
        f"test 2: the collector's cron update during `migrate run` (stopped at failpoint "
        f"{stop_at}, after 2 of 20 tickers)",
        [
            ("before", before),
            ("after the collector's update", grown),
            ("after resume, verify, activate", activated),
        ],
    )
    print("  interrupted run, stderr: " + stderr.strip())
    print("  resume: " + " | ".join(resumed.stdout.strip().splitlines()))
    print("  verify: " + " | ".join(verified.stdout.strip().splitlines()))


# --- 3. the collector's migration tool rewrites parqctl's plan ----------------------------

STEPS = {
    "status": ["migrate", "status"],
    "activate": ["migrate", "activate"],
    "rollback": ["migrate", "rollback", "--yes"],
    "finalize": ["migrate", "finalize", "--delete-legacy", "--yes"],
    "verify": ["migrate", "verify"],
    "run": ["migrate", "run"],
}
METADATA = ("tickers.json", "storage_config.json", "migration_plan.json", "intervals.json")


def test_every_step_after_the_collectors_mark_rewrote_the_plan(
    collector: Collector,  # noqa: F811
    made: dict,
    ws: Path,
    tmp_path: Path,
) -> None:
    before = made["reads"]
    parqctl_ok(ws, "migrate", "plan", "--interval", "1d")
    parqctl_ok(ws, "migrate", "run")
    parqctl_ok(ws, "migrate", "verify")
    assert (
        "parqctl"
        in json.loads((ws / "migration_plan.json").read_text())["venues"][0]["intervals"]["1d"]
    )

    marked = collector.cli(
        "yf-parqed-migrate", "mark", "us:yahoo", "1d", "--status", "complete", "--base-dir", ws
    )
    assert marked.returncode == 0, marked.stdout + marked.stderr
    plan = json.loads((ws / "migration_plan.json").read_text())
    interval = plan["venues"][0]["intervals"]["1d"]
    # The premise: its model has no place for parqctl's records and dropped them.
    assert plan["created_by"] == "yf-parqed-migrate"
    assert "parqctl" not in interval and "parqctl" not in plan
    legacy_rows = sum(seen["rows"] for seen in before["1d"].values())
    assert interval["totals"] == {"legacy_rows": legacy_rows, "partition_rows": legacy_rows}
    assert interval["jobs"] == {"total": len(TICKERS), "completed": len(TICKERS)}

    outcomes: dict[str, subprocess.CompletedProcess] = {}
    problems: list[str] = []
    for name, args in STEPS.items():
        copy = tmp_path / f"after-mark-{name}"
        shutil.copytree(ws, copy, symlinks=True)
        state = files_state(copy, *METADATA)
        result = outcomes[name] = parqctl(copy, *args)
        after = files_state(copy, *METADATA)
        if name == "status":
            continue
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            if len(lines) != 1:
                problems.append(f"{name}: refused with {len(lines)} lines of stderr")
            if after != state:
                changed = sorted(set(after.items()) ^ set(state.items()))
                problems.append(f"{name}: refused but changed {changed}")
            continue
        # Exit 0: it must have done its work from the workspace's real state.
        reads = collector.read_many(copy, ["1d"])
        if compared(reads) != compared({"1d": before["1d"]}):
            problems.append(f"{name}: exit 0 but the collector's rows changed")
        expected_backend = {"activate": "partitioned", "finalize": "partitioned"}.get(
            name, "legacy"
        )
        wrong = [
            t for t, seen in reads["1d"].items() if seen["route"]["backend"] != expected_backend
        ]
        if wrong:
            problems.append(
                f"{name}: exit 0 but the collector does not read {expected_backend}: {wrong}"
            )

    print("\ntest 3: after `yf-parqed-migrate mark us:yahoo 1d --status complete`")
    for name, result in outcomes.items():
        print(f"  parqctl {' '.join(STEPS[name])}: exit {result.returncode}")
        for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            for line in text.strip().splitlines():
                print(f"    {stream}: {line}")

    status = outcomes["status"]
    assert status.returncode == 0, status.stderr
    text = status.stdout + status.stderr
    assert "yf-parqed-migrate" in text, text
    assert "rewritten" in text and "parqctl's records" in text, text
    records = parqctl_json(ws, "migrate", "status")
    [one] = records
    # The collector's own fields, as it wrote them; no parqctl stage it cannot vouch for.
    assert (one["status"], one["jobs_total"], one["jobs_completed"]) == (
        "complete",
        len(TICKERS),
        len(TICKERS),
    )
    assert (one["legacy_rows"], one["partition_rows"]) == (legacy_rows, legacy_rows)
    assert one["verified_at"] == interval["verification"]["verified_at"]
    assert one["stage"] not in ("migrated", "verified", "active", "finalized"), one
    assert one["activated_at"] is None and one["legacy_deleted_at"] is None
    assert problems == []


# --- 4. where the collector puts a ticker added after activation --------------------------


def test_a_new_ticker_lands_where_the_global_switch_says(
    collector: Collector,  # noqa: F811
    made: dict,
    ws: Path,
    tmp_path: Path,
) -> None:
    """parqctl's activation of every interval turns the global switch on, so the collector
    puts a ticker added later in the partitions; the collector's own migration tool sets
    only sources["us/yahoo"], which its routing of tickers without a storage block ignores
    (`YFParqed._build_storage_request` asks `is_partitioned_enabled()` with no venue), so
    there a new ticker lands at the root legacy home."""
    new = "NEWT"

    # After parqctl's activation: the partitions.
    migrate_all(ws)
    config = json.loads((ws / "storage_config.json").read_text())
    assert config["partitioned"] is True and config["sources"] == {"us/yahoo": True}
    update = collector.update(ws, *LATER, tickers=[new])
    assert update["exit_code"] == 0, update["log"]
    reads = collector.read_many(ws, INTERVALS, [new])
    entry = json.loads((ws / "tickers.json").read_text())[new]
    assert all("storage" not in v for v in entry.get("intervals", {}).values()), entry
    placed = {}
    for iv in INTERVALS:
        seen = reads[iv][new]
        assert seen["route"] == partition_route(iv, new)
        assert seen["rows"] > 0
        files = sorted(
            str(p.relative_to(ws)) for p in (ws / seen["route"]["path"]).rglob("*.parquet")
        )
        assert files and all(f.endswith("/data.parquet") and "/year=" in f for f in files)
        assert not (ws / f"stocks_{iv}" / f"{new}.parquet").exists()
        assert not (ws / "data" / "legacy").exists()
        shown = parqctl_json(ws, "show", new, "--interval", iv)
        assert shown["read_from"] == "partitioned", shown
        assert shown["files"] == files
        assert shown["rows"] == seen["rows"]
        placed[iv] = (files[0].rsplit("/year=", 1)[0] + "/...", shown["decided_by"])

    # A rollback turns the switch off, so the collector would look for NEWT at the root:
    # parqctl carries it there, though it was never planned and has no storage block.
    rollback = parqctl(ws, "migrate", "rollback", "--yes")
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    back = collector.read_many(ws, INTERVALS, [new])
    assert routes(back) == {iv: {new: legacy_route(iv, new)} for iv in INTERVALS}
    assert compared(back) == compared(reads)

    # Only the source override, as the collector's own migration leaves it: the root.
    contrast = tmp_path / "sources-only"
    shutil.copytree(made["ws"], contrast, symlinks=True)
    toggled = collector.cli(
        "yf-parqed",
        "--wrk-dir",
        contrast,
        "partition-toggle",
        "--market",
        "us",
        "--source",
        "yahoo",
        cwd=contrast,
    )
    assert toggled.returncode == 0, toggled.stdout + toggled.stderr
    assert json.loads((contrast / "storage_config.json").read_text()) == {
        "partitioned": False,
        "markets": {},
        "sources": {"us/yahoo": True},
    }
    update = collector.update(contrast, *LATER, tickers=[new])
    assert update["exit_code"] == 0, update["log"]
    reads = collector.read_many(contrast, INTERVALS, [new])
    legacy_placed = {}
    for iv in INTERVALS:
        seen = reads[iv][new]
        assert seen["route"] == legacy_route(iv, new)
        assert seen["rows"] > 0
        assert not (contrast / "data").exists()
        shown = parqctl_json(contrast, "show", new, "--interval", iv)
        assert shown["files"] == [f"stocks_{iv}/{new}.parquet"], shown
        assert shown["rows"] == seen["rows"]
        legacy_placed[iv] = (shown["files"][0], shown["decided_by"])

    print("\ntest 4: where the collector puts NEWT, added after activation")
    for iv in INTERVALS:
        print(f"  {iv} global partitioned=true (parqctl activate): {placed[iv]}")
        print(f"  {iv} sources us/yahoo only (collector's tool):  {legacy_placed[iv]}")
    print("  rollback after NEWT landed in the partitions:")
    print("    " + "\n    ".join(rollback.stdout.strip().splitlines()))
