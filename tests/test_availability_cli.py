"""``parqctl availability`` as a real subprocess: the JSON shape, human text, exit codes."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest
from conftest import run_cli
from session_bars import (
    EARLY_CLOSE,
    daily,
    hourly,
    session_days,
    write_legacy,
    write_metadata,
)

START, END = date(2025, 11, 17), date(2025, 12, 5)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "ws"
    skip = [date(2025, 11, 26), EARLY_CLOSE]
    write_legacy(root, "1d", "HOLI", daily(session_days(START, END, skip=skip)))
    write_legacy(root, "1d", "FULL", daily(session_days(START, END)))
    bad = write_legacy(root, "1d", "BAD", daily(session_days(START, END)))
    os.truncate(bad, 100)
    write_legacy(root, "1h", "FULL", hourly(session_days(START, END), cut={EARLY_CLOSE: 3}))
    write_metadata(root, {"HOLI": ["1d"], "FULL": ["1d", "1h"], "BAD": ["1d"]})
    return root


def test_json_output_and_incremental_index(root: Path):
    first = run_cli("-w", str(root), "availability", "--json", "--today", "2025-12-10")
    assert first.returncode == 1, first.stderr  # gaps found
    report = json.loads(first.stdout)
    assert report["workspace"] == str(root)
    assert report["index"]["files"] == 4 and report["index"]["read"] == 4
    daily_iv = report["intervals"]["1d"]
    assert daily_iv["calendar"] == "XNYS" and daily_iv["retention_days"] is None
    tickers = {t["ticker"]: t for t in daily_iv["tickers"]}
    assert sorted(tickers) == ["BAD", "FULL", "HOLI"]
    holi = tickers["HOLI"]
    assert {k: holi[k] for k in ("first", "last", "expected_sessions", "present_sessions")} == {
        "first": "2025-11-17",
        "last": "2025-12-05",
        "expected_sessions": 14,
        "present_sessions": 12,
    }
    assert holi["partial_sessions"] == 0
    assert holi["gaps"] == [
        {
            "start": "2025-11-26",
            "end": "2025-11-28",
            "sessions": 2,
            "recoverable_until": None,
            "lost_sessions": 0,
            "status": "recoverable",
        }
    ]
    assert tickers["BAD"]["unreadable_files"][0]["path"] == "stocks_1d/BAD.parquet"
    hourly_full = report["intervals"]["1h"]["tickers"][0]
    assert hourly_full["partial"] == [{"session": "2025-11-28", "bars": 3, "expected": 4}]
    assert report["intervals"]["1h"]["retention_days"] == 730

    again = run_cli("-w", str(root), "availability", "--json", "-i", "1d")
    assert json.loads(again.stdout)["index"]["read"] == 0
    assert list(json.loads(again.stdout)["intervals"]) == ["1d"]
    forced = run_cli("-w", str(root), "availability", "--json", "--refresh", "-t", "FULL")
    assert json.loads(forced.stdout)["index"]["read"] == 4


def test_human_output_lists_the_named_tickers_gaps(root: Path):
    result = run_cli("-w", str(root), "availability", "-t", "HOLI", "BAD", "-i", "1d")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("interval  calendar  tickers  complete") for line in lines)
    assert any(line.startswith("1d ") and "XNYS" in line for line in lines)
    gap_lines = [line for line in lines if line.strip().startswith("gap ")]
    assert gap_lines == [
        "  gap      2025-11-26..2025-11-28     2 sessions  recoverable (never expires)"
    ]
    assert any(line.startswith("unreadable 1d stocks_1d/BAD.parquet") for line in lines)
    assert "BAD 1d: no readable bars" in lines


def test_a_complete_workspace_exits_zero(workspace: Path):
    result = run_cli("-w", str(workspace), "availability")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1d        XNYS" in result.stdout


def test_bad_input_is_one_line(root: Path):
    unknown = run_cli("-w", str(root), "availability", "-t", "NOPE")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.count("\n") == 1 and "NOPE" in unknown.stderr
    bad_date = run_cli("-w", str(root), "availability", "--since", "yesterday")
    assert bad_date.returncode == 2 and "not a date" in bad_date.stderr
