from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from core.safety import atomic

WRITER = """
import hashlib, sys
from pathlib import Path
from core.safety.atomic import write_bytes
target = Path(sys.argv[1])
n = 0
while True:
    n += 1
    body = (f"version {n}\\n".encode() * 2_000_000)
    write_bytes(target, body + hashlib.sha256(body).hexdigest().encode())
    print(n, flush=True)
"""


def _intact(data: bytes) -> bool:
    body, digest = data[:-64], data[-64:]
    return hashlib.sha256(body).hexdigest().encode() == digest


def test_write_json_round_trip_and_no_temp_left(tmp_path: Path):
    target = tmp_path / "plan.json"
    atomic.write_json(target, {"a": [1, "é"]})
    atomic.write_json(target, {"a": [2]})
    assert json.loads(target.read_text()) == {"a": [2]}
    assert target.read_text().endswith("\n")
    assert os.listdir(tmp_path) == ["plan.json"]


def test_temp_names_are_not_the_collectors_glob(tmp_path: Path):
    temp = atomic.temp_path_for(tmp_path / "data.parquet")
    assert temp.parent == tmp_path
    assert not temp.name.startswith("data.parquet.tmp-")
    assert atomic.is_temp_name(temp.name)


def test_a_writer_killed_mid_write_leaves_old_or_new_file(tmp_path: Path):
    """SIGKILL a process that rewrites a 20 MB file in a loop (so most kills land mid-write), at 20 seeded moments."""
    rng = random.Random(20251121)
    target = tmp_path / "target.bin"
    atomic.write_bytes(target, b"x" * 10 + hashlib.sha256(b"x" * 10).hexdigest().encode())
    seen_versions = set()
    for _ in range(20):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        writer.stdout.readline()  # at least one full write done: kill during a later one
        time.sleep(rng.uniform(0, 0.5))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        data = target.read_bytes()
        assert _intact(data), "the target is a mix of two versions"
        seen_versions.add(data.split(b"\n", 1)[0])
    assert len(seen_versions) > 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "target.bin"]
    assert leftovers, "no kill landed mid-write: the test proved nothing"
    assert all(atomic.is_temp_name(name) for name in leftovers)


def test_fsync_failure_is_a_failed_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    target = tmp_path / "tickers.json"
    atomic.write_json(target, {"old": True})

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output"):
        atomic.write_json(target, {"new": True})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["tickers.json"]


def test_exception_inside_writer_keeps_the_old_file(tmp_path: Path):
    target = tmp_path / "a.bin"
    atomic.write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic.atomic_open(target) as handle:
        handle.write(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_json_is_indented_with_deep_records_on_one_line(tmp_path: Path):
    record = {"state": "done", "legacy": {"size": 1, "digest": "ab"}, "months": [1, 2]}
    plan = {"venues": [{"intervals": {"1d": {"parqctl": {"tickers": {"AAPL": record, "ÄÖ": {}}}}}}]}
    target = tmp_path / "plan.json"
    atomic.write_json(target, plan)
    text = target.read_text(encoding="utf-8")
    assert json.loads(text) == plan
    assert text.endswith("}\n") and '"ÄÖ": {}' in text
    lines = text.splitlines()
    assert lines[1] == '  "venues": [' and lines[2] == "    {"
    assert f'"AAPL": {json.dumps(record)},' in {line.strip() for line in lines}


def test_a_state_file_beyond_its_cap_is_refused_after_reading_no_more(tmp_path: Path):
    """A state file larger than its reader accepts (parqctl never writes one) is an OSError,
    which every reader takes for a damaged file; a tail read is never refused."""
    (tmp_path / "state.json").write_bytes(b"x" * 5000)
    assert atomic.read_state_file(tmp_path, "state.json", max_bytes=5000) == b"x" * 5000
    with pytest.raises(atomic.StateFileTooLarge, match="larger than 4,999 bytes"):
        atomic.read_state_file(tmp_path, "state.json", max_bytes=4999)
    assert atomic.read_state_file(tmp_path, "state.json", limit=10, max_bytes=1) == b"x" * 10
    assert atomic.read_state_file(tmp_path, "missing.json", max_bytes=1) is None
