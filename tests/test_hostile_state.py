"""Hostile state files (issue 12, "Writes and deletes outside the workspace"): a forged
quarantine manifest, and symbolic links (or FIFOs) in place of parqctl's own state
directory and files. Every attack runs the real `parqctl` against a real workspace and
checks that nothing outside it changed, nothing inside it was lost, and the command ended
in one line rather than a traceback (or a hang)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import PARQCTL, run_cli, tree_digest, write_bars

from core.integrity import quarantine
from core.migration import staging
from core.safety import audit, run_lock
from core.safety.atomic import write_json

AAPL = Path("stocks_1d/AAPL.parquet")
BRK = Path("stocks_1d/BRK-B.parquet")
MSFT = Path("stocks_1d/MSFT.parquet")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``parqctl -w root ...`` with a timeout of its own: a hang is a failure, not a wait."""
    env = {k: v for k, v in os.environ.items() if k != "PARQCTL_WORKSPACE"}
    return subprocess.run(
        [str(PARQCTL), "-w", str(root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("parqctl: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the workspace, with a file in it that nothing may touch."""
    place = tmp_path / "outside"
    place.mkdir()
    (place / "victim.parquet").write_bytes(b"not yours")
    return place


@pytest.fixture
def ws(workspace: Path) -> Path:
    """The conftest workspace plus a live MSFT file that is never quarantined."""
    write_bars(workspace / MSFT, "MSFT", [datetime(2025, 12, d) for d in (1, 2, 3)])
    return workspace


def quarantined(root: Path, rel: Path = AAPL, age_days: float = 0) -> dict:
    """Quarantine ``rel`` with the real CLI; returns its manifest (aged by ``age_days``)."""
    added = run_cli("-w", str(root), "quarantine", "add", str(rel), "--reason", "x", "--json")
    assert added.returncode == 0, added.stderr
    entry = json.loads(added.stdout)
    manifest = manifest_of(root, entry["id"])
    if age_days:
        manifest["quarantined_at"] = time.time() - age_days * 86400
        forge(root, manifest)
    return manifest


def manifest_of(root: Path, entry_id: str) -> dict:
    return json.loads((root / quarantine.QUARANTINE_DIR / entry_id / "manifest.json").read_text())


def forge(root: Path, manifest: dict) -> None:
    write_json(root / quarantine.QUARANTINE_DIR / manifest["id"] / "manifest.json", manifest)


def payload_of(root: Path, manifest: dict) -> Path:
    return root / quarantine.QUARANTINE_DIR / manifest["id"] / "payload" / AAPL.name


def assert_quarantine_still_works(root: Path, entry_id: str, reason: str) -> None:
    """list shows the entry as invalid with its reason; add still works."""
    listed = cli(root, "quarantine", "list")
    assert "Traceback" not in listed.stderr, listed.stderr
    assert listed.returncode == 1, (listed.stdout, listed.stderr)
    [line] = [line for line in listed.stdout.splitlines() if line.startswith(entry_id)]
    assert "[invalid:" in line and reason in line, line
    as_json = json.loads(cli(root, "quarantine", "list", "--json").stdout)
    [record] = [e for e in as_json["entries"] if e["id"] == entry_id]
    assert record["condition"] == "invalid" and reason in record["problem"]
    added = cli(root, "quarantine", "add", str(BRK), "--reason", "still works")
    assert added.returncode == 0, added.stderr
    assert not (root / BRK).exists()


# --- 1. a forged manifest -----------------------------------------------------------------


@pytest.mark.parametrize("forged", ["absolute", "traversal"])
def test_a_forged_stored_name_never_steers_purge(ws: Path, outside: Path, forged: str):
    manifest = quarantined(ws, age_days=40)
    payload = payload_of(ws, manifest)
    kept, live_msft, before = sha(payload), sha(ws / MSFT), tree_digest(outside)
    manifest["stored_name"] = (
        str(outside / "victim.parquet") if forged == "absolute" else f"../../../../{MSFT}"
    )
    forge(ws, manifest)

    result = cli(ws, "quarantine", "purge", "--older-than", "30d", "--yes")

    assert "Traceback" not in result.stderr, result.stderr
    assert tree_digest(outside) == before
    assert sha(ws / MSFT) == live_msft
    assert sha(payload) == kept
    assert manifest_of(ws, manifest["id"]) == manifest  # left alone, not even rewritten
    assert f"{manifest['id']}" in result.stderr and "left alone" in result.stderr
    assert_quarantine_still_works(ws, manifest["id"], "stored_name")
    assert not [r for r in audit.read(ws) if r["action"] == "quarantine.purge"]


@pytest.mark.parametrize(
    "original_path",
    [
        "ABSOLUTE",
        "../outside/AAPL.parquet",
        "data/../../outside/AAPL.parquet",
        "stocks_1d/../../outside/AAPL.parquet",
        "migration_plan.json",
        ".parqctl/config.toml",
    ],
)
def test_a_tampered_original_path_never_steers_restore(ws: Path, outside: Path, original_path: str):
    manifest = quarantined(ws)
    payload = payload_of(ws, manifest)
    kept, before, inside = sha(payload), tree_digest(outside), set(tree_digest(ws))
    forged = str(outside / "AAPL.parquet") if original_path == "ABSOLUTE" else original_path
    manifest["original_path"] = forged
    forge(ws, manifest)

    line = one_line_error(cli(ws, "quarantine", "restore", manifest["id"]))

    assert "invalid" in line and "original_path" in line, line
    assert tree_digest(outside) == before
    assert set(tree_digest(ws)) == inside  # nothing created in the workspace either
    assert sha(payload) == kept
    assert_quarantine_still_works(ws, manifest["id"], "original_path")


def test_restore_to_a_path_outside_the_workspace_is_refused(ws: Path, outside: Path):
    manifest = quarantined(ws)
    payload = payload_of(ws, manifest)
    before = tree_digest(outside)
    for to in (str(outside / "AAPL.parquet"), "../outside/AAPL.parquet"):
        line = one_line_error(cli(ws, "quarantine", "restore", manifest["id"], "--to", to))
        assert "outside the workspace" in line, line
    assert tree_digest(outside) == before and payload.exists()


def test_a_replaced_payload_is_neither_purged_nor_restored(ws: Path):
    manifest = quarantined(ws)
    payload = payload_of(ws, manifest)
    original = payload.read_bytes()
    # Same size, other bytes: only the sha256 tells.
    payload.write_bytes(bytes(b ^ 0xFF for b in original[:16]) + original[16:])
    for command in (["purge", manifest["id"], "--yes"], ["restore", manifest["id"]]):
        line = one_line_error(cli(ws, "quarantine", *command))
        assert "sha256" in line, line
        assert payload.exists() and not (ws / AAPL).exists()
    # Another size: the listing already says so.
    payload.write_bytes(original + b"more")
    assert_quarantine_still_works(ws, manifest["id"], "size")


def test_a_symlinked_payload_directory_is_never_purged_through(ws: Path, outside: Path):
    manifest = quarantined(ws)
    payload = payload_of(ws, manifest)
    decoy = outside / "payload"
    decoy.mkdir()
    (decoy / AAPL.name).write_bytes(payload.read_bytes())  # a perfect copy: sha256 matches
    payload.rename(ws / AAPL)  # put the real one back by hand
    payload.parent.rmdir()
    payload.parent.symlink_to(decoy)
    before = tree_digest(outside)

    line = one_line_error(cli(ws, "quarantine", "purge", manifest["id"], "--yes"))

    assert "invalid" in line and "payload" in line, line
    assert tree_digest(outside) == before
    assert_quarantine_still_works(ws, manifest["id"], "payload")


@pytest.mark.parametrize(
    "content",
    ["[]", "not json", pytest.param("[" * 100000, id="deeply-nested"), "FIFO", "LINK"],
)
def test_an_unreadable_manifest_is_listed_as_invalid(ws: Path, outside: Path, content: str):
    manifest = quarantined(ws)
    path = ws / quarantine.QUARANTINE_DIR / manifest["id"] / "manifest.json"
    path.unlink()
    if content == "FIFO":
        os.mkfifo(path)
    elif content == "LINK":
        path.symlink_to(outside / "victim.parquet")
    else:
        path.write_text(content)
    assert_quarantine_still_works(ws, manifest["id"], "manifest")
    assert tree_digest(outside)["victim.parquet"] == hashlib.sha256(b"not yours").hexdigest()


# --- 2. symbolic links in place of parqctl's state ----------------------------------------


def _link(ws: Path, rel: str, target: Path) -> Path:
    link = ws / rel
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


def test_a_symlinked_state_directory_is_refused_by_every_writer(ws: Path, outside: Path):
    state = outside / "state"
    (state / "quarantine").mkdir(parents=True)
    (state / "audit.jsonl").write_text("")
    link = _link(ws, ".parqctl", state)
    before, inside = tree_digest(outside), tree_digest(ws)
    for command in (
        ["quarantine", "add", str(AAPL), "--reason", "x"],
        ["quarantine", "list"],
        ["migrate", "plan", "--interval", "1d"],
    ):
        line = one_line_error(cli(ws, *command))
        assert f"{link} is a symbolic link to {state}" in line, (command, line)
        assert "replace it with a directory" in line
        assert tree_digest(outside) == before, command
        assert tree_digest(ws) == inside, command


@pytest.mark.parametrize("name", ["audit.jsonl", "disk_history.jsonl"])
def test_a_symlinked_state_file_is_never_appended_to(ws: Path, outside: Path, name: str):
    target = outside / name
    target.write_text("")
    link = _link(ws, f".parqctl/{name}", target)
    before = tree_digest(outside)
    if name == "audit.jsonl":
        line = one_line_error(cli(ws, "quarantine", "add", str(AAPL), "--reason", "x"))
        assert f"{link} is a symbolic link to {target}" in line, line
        assert (ws / AAPL).exists()
    else:  # readers carry on and say so (health, for now, only in its JSON)
        for command in (["disk"], ["health", "--json"]):
            result = cli(ws, *command)
            assert "Traceback" not in result.stderr, result.stderr
            assert f"{link} is a symbolic link to {target}" in result.stdout + result.stderr
    assert tree_digest(outside) == before


def test_a_fifo_as_the_audit_log_does_not_hang_a_writer(ws: Path):
    os.makedirs(ws / ".parqctl")
    os.mkfifo(ws / ".parqctl" / "audit.jsonl")
    line = one_line_error(cli(ws, "quarantine", "add", str(AAPL), "--reason", "x", timeout=30))
    assert "audit.jsonl is not a regular file" in line, line
    assert (ws / AAPL).exists()


def test_a_refused_lock_is_not_audited_through_a_link(ws: Path, outside: Path):
    target = outside / "audit.jsonl"
    target.write_text("")
    with run_lock.hold(ws, "test: someone else"):
        (ws / ".parqctl" / "audit.jsonl").unlink()
        _link(ws, ".parqctl/audit.jsonl", target)
        before = tree_digest(outside)
        result = cli(ws, "quarantine", "add", str(AAPL), "--reason", "x")
        assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
        assert tree_digest(outside) == before
        (ws / ".parqctl" / "audit.jsonl").unlink()  # so the test's own release can audit
    assert (ws / AAPL).exists()


def test_a_symlinked_quarantine_directory_is_refused(ws: Path, outside: Path):
    link = _link(ws, ".parqctl/quarantine", outside)
    before = tree_digest(outside)
    line = one_line_error(cli(ws, "quarantine", "add", str(AAPL), "--reason", "x"))
    assert f"{link} is a symbolic link to {outside}" in line, line
    assert tree_digest(outside) == before and (ws / AAPL).exists()
    one_line_error(cli(ws, "quarantine", "list"))


def test_a_symlinked_staging_directory_is_refused_by_migrate_run(ws: Path, outside: Path):
    stale = outside / "staging" / "run-20250101T000000Z-1-abcdef"
    stale.mkdir(parents=True)
    (stale / "precious.txt").write_text("keep")
    planned = cli(ws, "migrate", "plan", "--interval", "1d")
    assert planned.returncode == 0, planned.stderr
    link = _link(ws, ".parqctl/staging", outside / "staging")
    before = tree_digest(outside)
    for command in (["migrate", "run"], ["migrate", "estimate"]):
        line = one_line_error(cli(ws, *command))
        assert f"{link} is a symbolic link to {outside / 'staging'}" in line, line
        assert tree_digest(outside) == before
        assert sorted(os.listdir(outside / "staging")) == [stale.name]
    assert not (ws / "data" / "us").exists()


# A link swapped in after the command started (after the lock was taken and audited): each
# write checks again, in the library, where the window can be hit exactly.


def test_links_swapped_in_mid_command_are_refused_at_the_write(ws: Path, outside: Path):
    from core.safety.atomic import UnsafeLinkError

    state = ws / ".parqctl"
    with run_lock.hold(ws, "test") as lock:
        (state / "quarantine").mkdir(exist_ok=True)
        (state / "quarantine").rmdir()
        (state / "quarantine").symlink_to(outside)
        with pytest.raises(UnsafeLinkError, match="quarantine is a symbolic link"):
            quarantine.add(ws, ws / AAPL, "x", lock=lock)
        assert (ws / AAPL).exists() and os.listdir(outside) == ["victim.parquet"]
        (state / "quarantine").unlink()

        (outside / "staging").mkdir()
        area = staging.new_area(ws)
        stale = outside / "staging" / area.name
        stale.mkdir()
        (stale / "precious.txt").write_text("keep")
        os.rename(state / "staging", ws / "staging-aside")
        (state / "staging").symlink_to(outside / "staging")
        with pytest.raises(UnsafeLinkError, match="staging is a symbolic link"):
            staging.discard(area)
        with pytest.raises(UnsafeLinkError, match="staging is a symbolic link"):
            staging.clear_stale(ws)
        with pytest.raises(UnsafeLinkError, match="staging is a symbolic link"):
            staging.new_area(ws)
        assert (stale / "precious.txt").read_text() == "keep"
        (state / "staging").unlink()

        os.rename(state / "audit.jsonl", ws / "audit-aside")
        (state / "audit.jsonl").symlink_to(outside / "victim.parquet")
        with pytest.raises(UnsafeLinkError, match=r"audit\.jsonl is a symbolic link"):
            audit.append(ws, "test", "ok")
        assert (outside / "victim.parquet").read_bytes() == b"not yours"
        (state / "audit.jsonl").unlink()
        os.rename(ws / "audit-aside", state / "audit.jsonl")


def test_a_symlinked_index_directory_is_neither_written_nor_cleaned_through(
    ws: Path, outside: Path
):
    """The index is parqctl's cache: a `.parqctl/index` linked elsewhere makes commands
    carry on without saving it (and say so), never write or remove a file out there."""
    (outside / "cold-0.arrow").write_bytes(b"looks like an old cold shard")
    (outside / "changed").mkdir()
    (outside / "changed" / "note.json").write_text(json.dumps([str(AAPL)]))
    link = _link(ws, ".parqctl/index", outside)
    before = tree_digest(outside)
    for command in (["availability", "--json"], ["integrity", "--json"], ["health", "--json"]):
        result = cli(ws, *command)
        assert "Traceback" not in result.stderr, (command, result.stderr)
        assert result.returncode in (0, 1), (command, result.stderr)
        assert tree_digest(outside) == before, command
    saved = json.loads(cli(ws, "availability", "--json").stdout)["index"]
    assert not saved["saved"] and f"{link} is a symbolic link" in saved["save_error"]


@pytest.mark.parametrize(
    "name", ["files.arrow", "state.json", "hot.json", "summary.json", "changed/note.json"]
)
def test_a_fifo_in_the_index_directory_hangs_no_reader(ws: Path, name: str):
    """Each file of the index is read without waiting on a FIFO put in its place: the
    index is then a damaged cache (rebuilt), never a command that does not return."""
    assert cli(ws, "availability", "--json").returncode in (0, 1)
    fifo = ws / ".parqctl" / "index" / name
    fifo.parent.mkdir(parents=True, exist_ok=True)
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    for command in (["availability", "--json"], ["health", "--json"], ["integrity", "--json"]):
        result = cli(ws, *command, timeout=60)  # a hang fails here
        assert "Traceback" not in result.stderr, (command, result.stderr)
        assert result.returncode in (0, 1), (command, result.stderr)


DEEP_JSON = "[" * 100_000  # a few kilobytes that Python's JSON parser recursed into


HEALTH, AVAILABILITY = ["health", "--json"], ["availability", "--json"]


@pytest.mark.parametrize(
    ("rel", "commands"),
    [
        ("tickers.json", [HEALTH]),
        ("intervals.json", [HEALTH]),
        ("storage_config.json", [HEALTH]),
        ("migration_plan.json", [HEALTH]),
        (".run_lock/owner.json", [["lock", "status"], HEALTH]),
        (".parqctl/lock_lost.json", [["lock", "status"]]),
        (".parqctl/audit.jsonl", [["audit"], ["sql", "SELECT count(*) FROM audit"]]),
        (".parqctl/disk_history.jsonl", [["disk", "--json"]]),
        (".parqctl/ingest/confirmed_empty.json", [AVAILABILITY]),
        (".parqctl/index/state.json", [HEALTH, AVAILABILITY]),
        (".parqctl/index/hot.json", [HEALTH, AVAILABILITY]),
        (".parqctl/index/summary.json", [HEALTH]),
        (".parqctl/index/changed/note.json", [AVAILABILITY]),
    ],
)
def test_json_nested_too_deep_is_a_malformed_file_not_a_crash(
    ws: Path, rel: str, commands: list[list[str]]
):
    """Python's JSON parser raises RecursionError on deep nesting, which no reader took for
    a malformed file: each state or metadata file nested thousands deep ends the commands
    that read it in their usual way or in one line, never in a traceback."""
    assert cli(ws, *AVAILABILITY).returncode in (0, 1)
    target = ws / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(DEEP_JSON)
    for command in commands:
        result = cli(ws, *command)
        assert "Traceback" not in result.stderr, (command, result.stderr)
        assert "RecursionError" not in result.stdout + result.stderr, command
        if result.returncode not in (0, 1, 2, 3):
            one_line_error(result)


def _peak_rss_kib(*command: str) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``command``; its peak resident memory with its children's (KiB), read by a
    parent of its own so that no other test's child counts."""
    probe = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=120)\n"
        "sys.stderr.write(done.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(done.returncode)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PARQCTL_WORKSPACE"}
    done = subprocess.run(
        [sys.executable, "-c", probe, *command], capture_output=True, text=True, env=env
    )
    return done, int(done.stdout.split()[-1])


def _stream_bomb(path: Path, size: int, *, apart: bool) -> None:
    """What parqctl writes now (core.availability.arrow_cache): zstd streams behind a
    header. The first one decompresses to ``size`` zero bytes; or, ``apart``, the first
    is the file's own and the second (the session lists) is the bomb."""
    import struct

    import pyarrow as pa

    from core.availability.arrow_cache import MAGIC

    sink = pa.BufferOutputStream()
    zeros = bytes(64 << 20)
    with pa.CompressedOutputStream(sink, "zstd") as out:
        for _ in range(size // len(zeros)):
            out.write(zeros)
    bomb = sink.getvalue().to_pybytes()
    if apart:
        own = path.read_bytes()
        first = struct.unpack_from("<8sQ", own)[1]
        path.write_bytes(own[: 16 + first] + bomb)
    else:
        path.write_bytes(struct.pack("<8sQ", MAGIC, len(bomb)) + bomb)


def _buffer_bomb(path: Path, size: int, scratch: Path) -> None:
    """What parqctl wrote before (an IPC file with zstd buffers): the index's columns, one
    record whose path is ``size`` zero bytes. Compressed from a sparse file, mapped."""
    import numpy as np
    import pyarrow as pa

    from core.availability.index_shards import INDEX_SCHEMA

    sparse = scratch / "sparse"
    with open(sparse, "wb") as handle:
        handle.truncate(size)
    with pa.memory_map(str(sparse)) as mapped:
        offsets = pa.py_buffer(np.array([0, size], dtype=np.int32))
        huge = pa.Array.from_buffers(pa.string(), 1, [None, offsets, mapped.read_buffer()])
        columns = [huge] + [pa.nulls(1, field.type) for field in list(INDEX_SCHEMA)[1:]]
        table = pa.Table.from_arrays(columns, schema=INDEX_SCHEMA)
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        schema = INDEX_SCHEMA.with_metadata({b"parqctl.index.version": b"2.shards"})
        with pa.ipc.new_file(str(path), schema, options=options) as out:
            out.write_table(table)
    sparse.unlink()


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        (name, kind)
        for name in ("files.arrow", "cold", "calendars/XNYS.arrow")
        for kind in ("stream", "apart", "buffers")
        if not (kind == "apart" and name.startswith("calendars"))  # (no second stream)
    ],
)
def test_a_decompression_bomb_in_the_index_stays_under_a_gigabyte(
    ws: Path, tmp_path: Path, name: str, kind: str
):
    """A cache file of kilobytes that decompresses to 1.25 GiB, in place of the hot shard,
    the cold shard or a calendar's sessions, as a zstd stream (the whole file, or its
    session lists alone) or as an IPC file with compressed buffers (which pyarrow decompressed to whatever size they declared): never
    decompressed beyond the cap, taken for a damaged cache (rebuilt), and the command
    stays under a gigabyte."""
    from core.availability.index import INDEX_DIR, load_index

    assert cli(ws, "availability", "--json").returncode in (0, 1)
    index_dir = ws / INDEX_DIR
    if name == "cold":
        name = load_index(ws).cold.file
    bomb = index_dir / name
    assert bomb.exists()
    if kind in ("stream", "apart"):
        _stream_bomb(bomb, 5 << 28, apart=kind == "apart")
    else:
        _buffer_bomb(bomb, 5 << 28, tmp_path)
    assert bomb.stat().st_size < 1 << 20
    done, peak_kib = _peak_rss_kib(str(PARQCTL), "-w", str(ws), "availability", "--json")
    assert "Traceback" not in done.stderr and done.returncode in (0, 1), done.stderr
    assert peak_kib < 1 << 20, f"peak {peak_kib / 1024:.0f} MiB"
    assert not load_index(ws).files.is_empty()  # rebuilt in its place


def test_the_row_check_cache_is_never_waited_on_nor_written_through_a_link(ws: Path, outside: Path):
    """Integrity read its row-check cache by path (a FIFO in its place hung `integrity`
    forever) and wrote it without looking for links (a linked `.parqctl/integrity` got
    the cache written outside the workspace)."""
    import shutil

    assert cli(ws, "integrity", "--json").returncode in (0, 1)
    cache = ws / ".parqctl" / "integrity" / "row_checks.parquet"
    assert cache.exists()
    cache.unlink()
    os.mkfifo(cache)
    result = cli(ws, "integrity", "--json", timeout=60)  # a hang fails here
    assert "Traceback" not in result.stderr and result.returncode in (0, 1), result.stderr
    shutil.rmtree(cache.parent)
    _link(ws, ".parqctl/integrity", outside)
    before = tree_digest(outside)
    result = cli(ws, "integrity", "--json")
    assert "Traceback" not in result.stderr and result.returncode in (0, 1), result.stderr
    assert tree_digest(outside) == before
