"""Reading the audit log from its end: newest first, malformed lines reported as such,
memory bounded on a large or hostile log; and `parqctl audit`."""

from __future__ import annotations

import json
import os
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from conftest import run_cli

from core.safety import audit
from core.safety.atomic import UnsafeLinkError

START = datetime(2025, 12, 1, tzinfo=UTC)


def record(i: int, action: str = "lock.acquire", result: str = "ok", **details) -> str:
    """Record ``i`` of a log, written ``i`` hours after 2025-12-01 00:00 UTC."""
    ts = (START + timedelta(hours=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps({"ts": ts, "user": "op", "host": "h", "pid": 1, "action": action,
                       "result": result, "n": i, **details})  # fmt: skip


def write_log(root, lines: list[str], end: str = "\n") -> bytes:
    path = root / audit.AUDIT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\n".join(lines) + end).encode()
    path.write_bytes(data)
    return data


def test_records_come_newest_first_with_their_offsets(workspace):
    audit.append(workspace, "quarantine.add", "ok", path="stocks_1d/AAPL.parquet")
    audit.append(workspace, "migrate.verify", "failed", target="us:yahoo 1d")
    page = audit.read_newest(workspace)
    assert [r.action for r in page.records] == ["migrate.verify", "quarantine.add"]
    assert page.complete and page.size == (workspace / audit.AUDIT_FILE).stat().st_size
    newest = page.records[0]
    assert newest.result == "failed" and newest.details == {"target": "us:yahoo 1d"}
    assert newest.when is not None and newest.when.tzinfo is not None
    data = (workspace / audit.AUDIT_FILE).read_bytes()
    for r in page.records:
        assert json.loads(data[r.offset :].split(b"\n", 1)[0]) == r.raw


def test_malformed_lines_are_shown_as_such_never_a_crash(workspace):
    lines = [record(0), "garbage{", "[1, 2]", "x" * (audit.MAX_LINE_BYTES + 10), "[" * 50_000,
             record(1), '{"ts": "2025-12-01T00:00:09Z", "action": "torn']  # fmt: skip
    write_log(workspace, lines, end="")
    page = audit.read_newest(workspace)
    problems = [r.problem for r in page.records]
    assert [r.field("n") for r in page.records if r.raw] == ["1", "0"]
    assert problems[0] == "not JSON (a torn or foreign line)"
    assert problems[2] == "not JSON (a torn or foreign line)"  # nested too deep
    assert problems[3] == f"a line of {audit.MAX_LINE_BYTES + 10:,} bytes: not a record"
    assert problems[4] == "JSON list, not a record"
    assert problems[5] == "not JSON (a torn or foreign line)"
    assert page.records[5].text == "garbage{"


def test_the_newest_records_of_a_large_log_are_read_in_bounded_memory(workspace):
    """A 12 MB log: the newest records are read without holding the file (nor its one
    huge line) in memory."""
    lines = [record(i) for i in range(30_000)]
    lines.insert(15_000, "y" * 8_000_000)
    write_log(workspace, lines)
    tracemalloc.start()
    try:
        page = audit.read_newest(workspace, limit=10)
        since = audit.read_newest(workspace, since=START + timedelta(hours=29_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r.field("n") for r in page.records] == [str(i) for i in range(29_999, 29_989, -1)]
    assert not page.complete
    assert not since.complete and len(since.records) == 1000
    assert since.records[-1].when == START + timedelta(hours=29_000)
    assert peak < 3 * 1024 * 1024


def test_a_link_in_place_of_the_log_is_refused(workspace, tmp_path):
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text(record(0) + "\n")
    (workspace / ".parqctl").mkdir()
    os.symlink(outside, workspace / audit.AUDIT_FILE)
    with pytest.raises(UnsafeLinkError):
        audit.read_newest(workspace)


def test_cli_prints_newest_first_and_json(workspace):
    write_log(workspace, [record(1, "quarantine.add", path="stocks_1d/AAPL.parquet"),
                          record(2, "migrate.verify", "failed"), "garbage{"])  # fmt: skip
    text = run_cli("-w", str(workspace), "audit")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("?") and "not JSON" in lines[0]
    assert "op@h  migrate.verify  failed" in lines[1]
    assert "quarantine.add  ok" in lines[2] and "path=stocks_1d/AAPL.parquet" in lines[2]
    as_json = run_cli("-w", str(workspace), "audit", "--json", "--limit", "2")
    result = json.loads(as_json.stdout)
    assert result["complete"] is False
    assert result["records"][0]["malformed"] == "not JSON (a torn or foreign line)"
    assert result["records"][1]["action"] == "migrate.verify"


def test_cli_since_keeps_only_newer_records(workspace):
    write_log(workspace, [record(1), record(150), record(250)])  # Dec 1, 7, 11
    result = json.loads(run_cli("-w", str(workspace), "audit", "--since",
                                "2025-12-05T00:00+00:00", "--json").stdout)  # fmt: skip
    assert [r["n"] for r in result["records"]] == [250, 150]
    recent = run_cli("-w", str(workspace), "audit", "--since", "7d")
    assert recent.returncode == 0 and recent.stdout.startswith("no audit records since then")


@pytest.mark.parametrize("bad", ["yesterday", "2025-13-01"])
def test_cli_a_bad_since_is_one_line_and_changes_nothing(workspace, bad):
    write_log(workspace, [record(1)])
    before = (workspace / audit.AUDIT_FILE).read_bytes()
    result = run_cli("-w", str(workspace), "audit", "--since", bad)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--since" in result.stderr and "is not a time" in result.stderr
    assert (workspace / audit.AUDIT_FILE).read_bytes() == before


def test_cli_not_a_workspace_is_one_line(tmp_path):
    result = run_cli("-w", str(tmp_path / "nowhere"), "audit")
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
