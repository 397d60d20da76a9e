"""Nothing outside the workspace is created, renamed or deleted, whatever a symlink says;
a volume the operator declares in [storage] extra_roots is the one exception."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from conftest import PARQCTL, run_cli, tree_digest
from migration_support import copy_workspace

from core.migration.failpoints import FAILPOINT_ENV

TICKER_DIR = "data/us/yahoo/stocks_1d/ticker={t}"


@pytest.fixture
def ws(source, tmp_path: Path) -> Path:
    root, report = source
    copy = copy_workspace(root, tmp_path / "ws", readable_only=True, report=report)
    for interval in ("1h", "1m"):
        shutil.rmtree(copy / f"stocks_{interval}")
    for stray in (copy / "stocks_1d").glob("*.tmp-*"):
        stray.unlink()
    return copy


def _migrate(root: Path, *args: str):
    return run_cli("-w", str(root), "migrate", *args)


def _link_ticker_outside(root: Path, outside: Path, ticker: str) -> None:
    """``ticker=<T>`` replaced by a link to a directory outside the workspace."""
    ticker_dir = root / TICKER_DIR.format(t=ticker)
    ticker_dir.parent.mkdir(parents=True, exist_ok=True)
    if ticker_dir.exists():
        shutil.copytree(ticker_dir, outside, dirs_exist_ok=True)
        shutil.rmtree(ticker_dir)
    else:
        outside.mkdir(parents=True)
    ticker_dir.symlink_to(outside, target_is_directory=True)


def test_a_run_never_writes_through_a_link_out_of_the_workspace(ws: Path, tmp_path: Path):
    outside = tmp_path / "outside"
    _link_ticker_outside(ws, outside, "MSFT")
    assert _migrate(ws, "plan", "--interval", "1d").returncode == 0
    result = _migrate(ws, "run", "--batch-size", "1", "--workers", "1")
    assert result.returncode == 2, result.stdout
    [line] = result.stderr.strip().splitlines()
    assert "ticker=MSFT is a symbolic link to" in line and "outside the workspace" in line
    assert list(outside.rglob("*")) == []
    # the tickers promoted before it stay; a resume after the link is gone finishes
    (ws / TICKER_DIR.format(t="MSFT")).unlink()
    assert _migrate(ws, "run").returncode == 0
    assert _migrate(ws, "verify").returncode == 0


def test_rollback_purge_and_finalize_never_delete_through_a_link(ws: Path, tmp_path: Path):
    for step in (["plan", "--interval", "1d"], ["run"], ["verify"]):
        assert _migrate(ws, *step).returncode == 0
    outside = tmp_path / "outside"
    _link_ticker_outside(ws, outside, "MSFT")
    before = tree_digest(outside)
    assert before
    purge = _migrate(ws, "rollback", "--purge-partitioned", "--yes")
    assert purge.returncode == 2 and "symbolic link" in purge.stderr
    assert tree_digest(outside) == before

    legacy_outside = tmp_path / "legacy-outside"
    shutil.copytree(ws / "stocks_1d", legacy_outside)
    shutil.rmtree(ws / "stocks_1d")
    (ws / "stocks_1d").symlink_to(legacy_outside, target_is_directory=True)
    kept = tree_digest(legacy_outside)
    finalize = _migrate(ws, "finalize", "--delete-legacy", "--yes")
    assert finalize.returncode != 0
    assert tree_digest(legacy_outside) == kept


def test_a_declared_volume_is_written_through(ws: Path, tmp_path: Path):
    volume = tmp_path / "volume"
    _link_ticker_outside(ws, volume / "ticker=MSFT", "MSFT")
    (ws / ".parqctl").mkdir(exist_ok=True)
    (ws / ".parqctl/config.toml").write_text(f'[storage]\nextra_roots = ["{volume}"]\n')
    for step in (["plan", "--interval", "1d"], ["run"], ["verify"]):
        result = _migrate(ws, *step)
        assert result.returncode == 0, (step, result.stderr)
    assert list((volume / "ticker=MSFT").rglob("data.parquet"))


def test_extra_roots_must_be_absolute_paths(ws: Path):
    (ws / ".parqctl").mkdir(exist_ok=True)
    (ws / ".parqctl/config.toml").write_text('[storage]\nextra_roots = ["relative"]\n')
    result = run_cli("-w", str(ws), "health")
    assert result.returncode != 0 and "storage.extra_roots must be" in result.stderr


def test_a_link_swapped_in_while_the_run_is_under_way_is_caught(ws: Path, tmp_path: Path):
    """The run stops itself right after taking the lock; the link appears; it goes on."""
    assert _migrate(ws, "plan", "--interval", "1d").returncode == 0
    env = {**os.environ, FAILPOINT_ENV: "stop@1"}
    run = subprocess.Popen(
        [str(PARQCTL), "-w", str(ws), "migrate", "run", "--workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while psutil.Process(run.pid).status() != psutil.STATUS_STOPPED:
            assert time.monotonic() < deadline, "the run never reached its first failpoint"
            time.sleep(0.05)
        outside = tmp_path / "outside"
        _link_ticker_outside(ws, outside, "MSFT")
        run.send_signal(signal.SIGCONT)
        _, stderr = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 2
    assert "ticker=MSFT is a symbolic link to" in stderr
    assert list(outside.rglob("*")) == []


def test_a_dataset_on_another_volume_is_read_once_declared(ws: Path, tmp_path: Path):
    volume = tmp_path / "volume"
    shutil.move(ws / "stocks_1d", volume / "stocks_1d")
    (ws / "stocks_1d").symlink_to(volume / "stocks_1d", target_is_directory=True)

    undeclared = json.loads(run_cli("-w", str(ws), "health", "--json").stdout)
    assert undeclared["datasets"] == []
    [link] = undeclared["dataset_links"]
    assert (link["path"], link["declared"]) == ("stocks_1d", False)
    assert any("not declared" in p["text"] for p in undeclared["problems"])
    assert _migrate(ws, "plan", "--interval", "1d").returncode != 0

    (ws / ".parqctl").mkdir(exist_ok=True)
    (ws / ".parqctl/config.toml").write_text(f'[storage]\nextra_roots = ["{volume}"]\n')
    declared = json.loads(run_cli("-w", str(ws), "health", "--json").stdout)
    assert [d["path"] for d in declared["datasets"]] == ["stocks_1d"]
    assert declared["dataset_links"][0]["declared"] is True
    assert not any("not declared" in p["text"] for p in declared["problems"])
    text = run_cli("-w", str(ws), "health").stdout
    assert "stocks_1d -> " in text and "declared in extra_roots" in text
    shown = json.loads(run_cli("-w", str(ws), "show", "AAPL", "--json").stdout)
    assert shown["read_from"] == "legacy" and shown["rows"] > 0
