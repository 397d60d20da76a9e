"""The CLI as an operator runs it: real subprocesses, real workspaces."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import PARQCTL, run_cli, tree_digest


def _one_line_error(result) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("parqctl: error: ")
    return lines[0]


def test_health_of_a_small_workspace(workspace: Path):
    result = run_cli("--workspace", str(workspace), "health", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == report["verdict"] == "OK" or result.returncode == 0
    assert report["tickers"] == 2
    assert report["storage_modes"] == {"1d": {"legacy": 2}}
    [dataset] = report["datasets"]
    assert (dataset["label"], dataset["tickers"], dataset["files"]) == ("legacy 1d", 2, 2)
    assert report["lock"]["state"] == "FREE"
    human = run_cli("health", env={"PARQCTL_WORKSPACE": str(workspace)})
    assert human.returncode == 0
    assert "legacy 1d" in human.stdout and "verdict    OK" in human.stdout


def test_no_workspace(tmp_path: Path):
    result = run_cli("-w", str(tmp_path / "missing"), "health")
    assert result.returncode == 6  # not a workspace: the same code in every command
    assert "does not exist" in _one_line_error(result)


def test_a_directory_that_is_not_a_workspace_is_left_alone(tmp_path: Path):
    result = run_cli("health", cwd=tmp_path)
    assert result.returncode == 6
    assert "is not a parqctl workspace" in _one_line_error(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("file", "content", "expected"),
    [
        (
            "tickers.json",
            '{"AAPL": {"ticker": "AAPL"\n',
            "tickers.json: malformed JSON at line 2, column 1",
        ),
        ("intervals.json", '["1d",]', "intervals.json: malformed JSON at line 1, column 7"),
        ("storage_config.json", '{"partitioned": 1}', "storage_config.json: partitioned should be"),
        ("migration_plan.json", '{"venues": {}}', "migration_plan.json: venues should be a list"),
        (".parqctl/config.toml", "[watermarks\n", "config.toml: malformed TOML"),
    ],
)
def test_malformed_metadata_is_named_and_nothing_is_written(
    workspace: Path, file: str, content: str, expected: str
):
    (workspace / file).parent.mkdir(exist_ok=True)
    (workspace / file).write_text(content)
    before = tree_digest(workspace)
    for command in (["health"], ["show", "AAPL"]):
        result = run_cli("-w", str(workspace), *command)
        assert result.returncode != 0
        assert expected in _one_line_error(result)
    json_result = run_cli("-w", str(workspace), "health", "--json")
    assert json.loads(json_result.stdout)["verdict"] == "UNKNOWN" and json_result.returncode == 3
    assert tree_digest(workspace) == before


def test_an_unreadable_metadata_file(workspace: Path):
    (workspace / "intervals.json").unlink()
    (workspace / "intervals.json").mkdir()  # unreadable as a file, even for root
    result = run_cli("-w", str(workspace), "health")
    assert result.returncode == 3
    assert "cannot read" in _one_line_error(result) and "intervals.json" in result.stderr


@pytest.mark.parametrize("ticker", ["../AAPL", "a/b", ".."])
def test_an_unsafe_ticker(workspace: Path, ticker: str):
    before = tree_digest(workspace)
    result = run_cli("-w", str(workspace), "show", ticker)
    assert result.returncode == 2
    assert f"unsafe ticker name {ticker!r}" in _one_line_error(result)
    assert tree_digest(workspace) == before


def test_show_reads_real_symbols(workspace: Path):
    result = run_cli("-w", str(workspace), "show", "BRK-B", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["rows"], shown["read_from"], shown["routed_to"]) == (3, "legacy", "legacy")
    assert shown["files"] == ["stocks_1d/BRK-B.parquet"]


def test_output_cut_short_by_its_reader_is_no_traceback(workspace: Path):
    """`parqctl show T | head -1` where head has already gone: a pipe with no reader."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        shown = subprocess.run(
            [str(PARQCTL), "-w", str(workspace), "show", "BRK-B"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in shown.stderr, shown.stderr
    assert shown.returncode == 141


def test_a_corrupt_bar_file_is_one_line(workspace: Path):
    path = workspace / "stocks_1d/AAPL.parquet"
    path.write_bytes(path.read_bytes()[:50])
    result = run_cli("-w", str(workspace), "show", "AAPL")
    assert result.returncode == 2
    assert "unreadable bar file" in _one_line_error(result)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["demo", "x", "--tickers", "0"], "'0' is not a positive whole number"),
        (["demo", "x", "--end", "yesterday"], "'yesterday' is not a date"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["show", "AAPL", "--interval", "7x"], "unknown interval '7x'"),
        (["lock"], "the following arguments are required"),
        (["migrate", "run", "--venue", "bad"], "bad venue 'bad'"),
    ],
)
def test_wrong_arguments(workspace: Path, args: list[str], expected: str):
    result = run_cli("-w", str(workspace), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_demo_stale_lock_is_reported_by_health_and_can_be_broken(tmp_path: Path):
    root = tmp_path / "demo"
    built = run_cli(
        "demo", str(root), "--tickers", "20", "--end", "2025-12-05", "--stale-lock", "--no-open"
    )
    assert built.returncode == 0, built.stderr
    assert "stale_lock" in built.stdout

    health = run_cli("-w", str(root), "health", "--json")
    report = json.loads(health.stdout)
    assert health.returncode == 1 and report["verdict"] == "WARNING"
    assert report["lock"]["state"] == "STALE"
    assert any("run lock" in p["text"] for p in report["problems"])

    status = run_cli("-w", str(root), "lock", "status")
    assert status.returncode == 1 and "STALE" in status.stdout and "not running" in status.stdout

    unconfirmed = run_cli("-w", str(root), "lock", "break")
    assert unconfirmed.returncode == 2 and "--yes" in _one_line_error(unconfirmed)
    assert (root / ".run_lock").exists()

    broken = run_cli("-w", str(root), "lock", "break", "--yes")
    assert broken.returncode == 0, broken.stderr
    assert not (root / ".run_lock").exists()
    assert (
        json.loads(run_cli("-w", str(root), "health", "--json").stdout)["lock"]["state"] == "FREE"
    )
    audit = [json.loads(line) for line in (root / ".parqctl/audit.jsonl").read_text().splitlines()]
    assert [(r["action"], r["result"]) for r in audit][-1] == ("lock.break", "ok")


def test_demo_refuses_a_non_empty_directory(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("mine")
    result = run_cli("demo", str(tmp_path), "--no-open")
    assert result.returncode == 2
    assert "not empty" in _one_line_error(result)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_without_a_terminal_the_console_is_refused_and_demo_does_not_open_it(
    workspace: Path, tmp_path: Path
):
    """From cron or a script (no terminal on stdin or stdout), Textual's input thread
    spun at full CPU until killed: the console says it needs one, and demo, without
    --no-open, builds the store and says how to open it."""
    for args in (["console"], []):
        result = subprocess.run(
            [str(PARQCTL), "-w", str(workspace), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert "needs a terminal" in _one_line_error(result)
    root = tmp_path / "demo"
    result = subprocess.run(
        [str(PARQCTL), "demo", str(root), "--tickers", "14"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"open it with: parqctl --workspace {root}" in result.stderr
    assert (root / "tickers.json").exists()
