"""Quarantine moves the filesystem refuses (an immutable directory, a rename across mount
points): one line naming the file, a non-zero exit, and nothing changed."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli, tree_digest

from core.integrity import quarantine

AAPL = Path("stocks_1d/AAPL.parquet")


def _one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("parqctl: error: ")
    return line


@contextlib.contextmanager
def _immutable(path: Path):
    result = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot make {path} immutable here: {result.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextlib.contextmanager
def _own_mount(directory: Path):
    """Bind-mount a directory onto itself: the same filesystem (same st_dev), but another
    mount point, so a rename out of it fails with EXDEV."""
    result = subprocess.run(
        ["mount", "--bind", str(directory), str(directory)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {result.stderr.strip() or 'mount refused'}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def _no_entries(root: Path) -> None:
    assert quarantine.entries(root) == []
    base = quarantine.quarantine_dir(root)
    assert not base.exists() or not list(base.iterdir())


@pytest.mark.parametrize(
    ("guard", "reason"),
    [(_immutable, "Operation not permitted"), (_own_mount, "Invalid cross-device link")],
)
def test_add_refused_by_the_filesystem_is_one_line_and_moves_nothing(
    workspace: Path, guard, reason: str
):
    before = tree_digest(workspace / "data")
    with guard(workspace / AAPL.parent):
        result = run_cli("-w", str(workspace), "quarantine", "add", str(AAPL), "--reason", "x")
    line = _one_line(result)
    assert f"cannot quarantine {AAPL}: {reason}" in line and "nothing was moved" in line
    assert tree_digest(workspace / "data") == before
    _no_entries(workspace)


@pytest.mark.parametrize(
    ("guard", "reason"),
    [(_immutable, "Operation not permitted"), (_own_mount, "Invalid cross-device link")],
)
def test_restore_refused_by_the_filesystem_is_one_line_and_keeps_the_entry(
    workspace: Path, guard, reason: str
):
    w = ["-w", str(workspace), "quarantine"]
    added = run_cli(*w, "add", str(AAPL), "--reason", "x", "--json")
    assert added.returncode == 0, added.stderr
    entry = json.loads(added.stdout)
    with guard(workspace / AAPL.parent):
        result = run_cli(*w, "restore", entry["id"])
    line = _one_line(result)
    assert f"cannot restore {entry['stored_path']} to {workspace / AAPL}: {reason}" in line
    assert not (workspace / AAPL).exists()
    [kept] = quarantine.entries(workspace)
    assert (kept.id, kept.condition) == (entry["id"], "ok")
    assert quarantine.file_sha256(kept.stored_path) == entry["sha256"]
    restored = run_cli(*w, "restore", entry["id"])
    assert restored.returncode == 0, restored.stderr
    assert quarantine.file_sha256(workspace / AAPL) == entry["sha256"]


def test_a_failed_restore_removes_the_directories_it_made(workspace: Path):
    w = ["-w", str(workspace), "quarantine"]
    entry = json.loads(run_cli(*w, "add", str(AAPL), "--reason", "x", "--json").stdout)
    elsewhere = workspace / "data" / "restored"
    elsewhere.mkdir(parents=True)
    with _own_mount(elsewhere):
        result = run_cli(*w, "restore", entry["id"], "--to", "data/restored/a/b/AAPL.parquet")
        line = _one_line(result)
        assert "data/restored/a/b/AAPL.parquet: Invalid cross-device link" in line
        assert list(elsewhere.iterdir()) == []
    assert quarantine.entries(workspace)[0].condition == "ok"
