"""Hostile and broken metadata (issue 12): a FIFO or a device in place of a metadata file
or of the lock's owner.json, JSON nested too deeply, wrong types inside the migration
plan, an unknown plan schema, a bloated intervals.json, a malformed or unreadable
config.toml. Every command must finish (never hang), say what is wrong in one line naming
the file, exit non-zero and leave the workspace as it was: never a traceback.

Real CLI subprocesses on real temporary workspaces, each with a timeout (the process group
is killed), so a hang fails the test instead of blocking the suite.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import PARQCTL, ticker_entry, write_bars, write_tickers

from core.safety.atomic import write_json

TIMEOUT_S = 20.0
PLAN = "migration_plan.json"
META_FILES = ["tickers.json", "intervals.json", "storage_config.json", PLAN]


class Hung(AssertionError):
    pass


def _run(ws: Path, *args: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess:
    """``parqctl -w ws ARGS`` in its own process group, killed whole after ``timeout``."""
    env = {k: v for k, v in os.environ.items() if k != "PARQCTL_WORKSPACE"}
    proc = subprocess.Popen(
        [str(PARQCTL), "-w", str(ws), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise Hung(f"`parqctl {' '.join(args)}` still running after {timeout:.0f}s") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _one_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("parqctl: error: "), lines[0]
    return lines[0]


def _snapshot(root: Path) -> dict[str, str]:
    """Every entry below root, never opening anything but regular files (a FIFO would
    block): content digests, link targets, kinds. parqctl's audit log is left out."""
    result = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if rel in (".parqctl", ".parqctl/audit.jsonl"):
                continue
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                result[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                result[rel] = f"link -> {os.readlink(path)}"
            else:
                result[rel] = f"mode {stat.S_IFMT(st.st_mode):o}"
    return result


def _replace_with(path: Path, kind: str) -> None:
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        raise AssertionError(kind)


def _make_workspace(root: Path) -> Path:
    days = [datetime(2025, 12, d) for d in (1, 2, 3)]
    for ticker in ("AAPL", "BRK-B"):
        write_bars(root / "stocks_1d" / f"{ticker}.parquet", ticker, days)
    write_tickers(root, {t: ticker_entry(t) for t in ("AAPL", "BRK-B")})
    write_json(root / "intervals.json", ["1d"])
    write_json(root / "storage_config.json", {"partitioned": False, "markets": {}, "sources": {}})
    return root


@pytest.fixture(scope="module")
def migrated_base(tmp_path_factory) -> Path:
    """A workspace whose 1d interval is planned and run: the plan holds ticker records."""
    root = _make_workspace(tmp_path_factory.mktemp("hostile-base") / "ws")
    for step in (("plan", "--interval", "1d"), ("run",)):
        result = _run(root, "migrate", *step, timeout=120)
        assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def ws(migrated_base: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ws"
    shutil.copytree(migrated_base, target, symlinks=True)
    return target


def _edit_plan(ws: Path, edit) -> None:
    path = ws / PLAN
    plan = json.loads(path.read_text())
    edit(plan)
    path.write_text(json.dumps(plan))


# --- 1. a FIFO or /dev/zero in place of a metadata file ---------------------------------


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
@pytest.mark.parametrize("name", META_FILES)
def test_a_metadata_file_that_is_not_a_regular_file_is_refused_never_read(
    ws: Path, tmp_path: Path, name: str, kind: str
):
    _replace_with(ws / name, kind)
    before = _snapshot(ws)
    prom = tmp_path / "parqctl.prom"

    for args in (["health"], ["health", "--prometheus", str(prom)]):
        result = _run(ws, *args)
        assert result.returncode == 3
        line = _one_line(result)
        assert str(ws / name) in line and "is not a regular file" in line
    assert _snapshot(ws) == before
    assert re.search(r"^parqctl_health_verdict\{[^}]*\} 3(\.0)?$", prom.read_text(), re.M)

    lock = _run(ws, "lock", "status")
    assert lock.returncode == 0 and "Traceback" not in lock.stderr

    for args in (["migrate", "status"], ["migrate", "run"], ["migrate", "plan", "--force"]):
        result = _run(ws, *args)
        if result.returncode != 0 or name == PLAN:
            line = _one_line(result)
            assert result.returncode == 2
            assert str(ws / name) in line and "is not a regular file" in line
    if name == PLAN:
        assert _snapshot(ws) == before


def test_a_metadata_file_beyond_the_size_limit_is_refused_without_reading_it(ws: Path):
    path = ws / "tickers.json"
    path.unlink()
    with open(path, "wb") as handle:  # sparse: 300 MiB of NULs that take no disk
        handle.truncate(300 * 1024 * 1024)
    before = _snapshot(ws)
    result = _run(ws, "health")
    assert result.returncode == 3
    line = _one_line(result)
    assert str(path) in line and "larger than 256 MiB" in line
    assert _snapshot(ws) == before


def test_a_dangling_symlink_is_named_not_taken_for_a_missing_file(ws: Path, tmp_path: Path):
    (ws / "storage_config.json").unlink()
    (ws / "storage_config.json").symlink_to(tmp_path / "gone.json")
    before = _snapshot(ws)
    result = _run(ws, "health")
    assert result.returncode == 3
    line = _one_line(result)
    assert str(ws / "storage_config.json") in line and "missing" in line
    assert _snapshot(ws) == before


def test_a_symlinked_metadata_file_inside_the_workspace_is_read(ws: Path):
    real = ws / "meta" / "tickers.json"
    real.parent.mkdir()
    (ws / "tickers.json").rename(real)
    (ws / "tickers.json").symlink_to(Path("meta") / "tickers.json")
    result = _run(ws, "health", "--json")
    assert json.loads(result.stdout)["tickers"] == 2, result.stderr


# --- 1b. the run lock's owner.json as a FIFO or /dev/zero --------------------------------


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_lock_whose_owner_json_is_not_a_regular_file_is_unknown_and_kept(
    ws: Path, tmp_path: Path, kind: str
):
    owner = ws / ".run_lock" / "owner.json"
    _replace_with(owner, kind)
    before = _snapshot(ws)

    status = _run(ws, "lock", "status")
    assert status.returncode == 1, status.stderr
    assert "UNKNOWN" in status.stdout.upper()
    assert "owner.json is not a regular file" in status.stdout
    verdict = json.loads(_run(ws, "lock", "status", "--json").stdout)
    assert verdict["state"].upper() == "UNKNOWN"
    assert "not a regular file" in verdict["reason"]

    refused = _run(ws, "lock", "break", "--yes")
    assert refused.returncode == 2
    assert "unknown lock" in _one_line(refused)  # "a unknown": break_refusal's wording
    held = _run(ws, "migrate", "run")
    assert held.returncode == 3
    assert "not a regular file" in _one_line(held)
    assert _snapshot(ws) == before

    prom = tmp_path / "parqctl.prom"
    for args in (["health"], ["health", "--prometheus", str(prom)], ["migrate", "status"]):
        result = _run(ws, *args)
        assert "Traceback" not in result.stderr and result.returncode in (0, 1, 2), result.stderr
    assert re.search(r"^parqctl_lock_stale\{[^}]*\} 1(\.0)?$", prom.read_text(), re.M)
    assert os.path.lexists(owner)  # nothing above broke it

    broken = _run(ws, "lock", "break", "--force", "--yes")
    assert broken.returncode == 0, broken.stderr
    assert not os.path.lexists(ws / ".run_lock")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_lock_lost_record_that_is_not_a_regular_file_is_ignored_not_waited_on(
    ws: Path, kind: str
):
    _replace_with(ws / ".parqctl" / "lock_lost.json", kind)
    result = _run(ws, "health", "--json")
    assert "Traceback" not in result.stderr and result.returncode in (0, 1), result.stderr
    assert json.loads(result.stdout)["lock_lost"] is None


@pytest.mark.parametrize(
    "content",
    ["[" * 60000, '{"pid": ' + "1" * 5000 + ', "host": "h"}'],
    ids=["nested", "huge-int"],
)
def test_an_owner_json_python_cannot_parse_is_unknown_not_a_traceback(ws: Path, content: str):
    owner = ws / ".run_lock" / "owner.json"
    owner.parent.mkdir()
    owner.write_text(content)
    status = _run(ws, "lock", "status")
    assert "Traceback" not in status.stderr, status.stderr[-2000:]
    assert status.returncode == 1 and "UNKNOWN" in status.stdout.upper()
    refused = _run(ws, "lock", "break", "--yes")
    assert refused.returncode == 2 and owner.read_text() == content
    held = _run(ws, "migrate", "run")
    assert held.returncode == 3
    _one_line(held)


# --- 2. JSON nested too deeply, numbers Python refuses -----------------------------------


@pytest.mark.parametrize("name", META_FILES)
def test_json_nested_too_deeply_is_one_line(ws: Path, name: str):
    (ws / name).write_text("[" * 100000)
    before = _snapshot(ws)
    result = _run(ws, "health")
    assert result.returncode == 3
    line = _one_line(result)
    assert str(ws / name) in line and "nested too deeply" in line
    if name == PLAN:
        for command in ("status", "run"):
            result = _run(ws, "migrate", command)
            assert result.returncode == 2 and "nested too deeply" in _one_line(result)
    assert _snapshot(ws) == before


def test_a_number_python_will_not_parse_is_one_line(ws: Path):
    (ws / "intervals.json").write_text("[" + "9" * 5000 + "]")
    result = _run(ws, "health")
    assert result.returncode == 3
    assert str(ws / "intervals.json") in _one_line(result)


# --- 3. wrong types inside the plan, an unknown schema version ---------------------------

MIGRATE_COMMANDS = [
    ["status"],
    ["plan", "--interval", "1d"],
    ["plan", "--force", "--interval", "1d"],
    ["estimate"],
    ["dry-run"],
    ["run"],
    ["verify"],
    ["activate"],
    ["rollback", "--yes"],
    ["finalize", "--delete-legacy", "--yes"],
]


# The cheaper set, for the cases beyond those the issue names (each command costs a start).
SOME_MIGRATE_COMMANDS = [["status"], ["plan", "--force", "--interval", "1d"], ["run"]]
# The cases the issue names run every migrate command.
EVERY_COMMAND_CASES = {"ours-list", "interval-str", "jobs-str", "totals-int", "ticker-int"}


def _interval(plan: dict) -> dict:
    return plan["venues"][0]["intervals"]["1d"]


WRONG_TYPES = {
    "ours-list": (lambda p: _interval(p).update(parqctl=[]), "venues[0].intervals.1d.parqctl"),
    "interval-str": (
        lambda p: p["venues"][0]["intervals"].update({"1d": "x"}),
        "venues[0].intervals.1d",
    ),
    "jobs-str": (lambda p: _interval(p).update(jobs="x"), "venues[0].intervals.1d.jobs"),
    "totals-int": (lambda p: _interval(p).update(totals=5), "venues[0].intervals.1d.totals"),
    "venue-int": (lambda p: p.update(venues=[1]), "venues[0]"),
    "intervals-list": (
        lambda p: p["venues"][0].update(intervals=["1d"]),
        "venues[0].intervals",
    ),
    "ticker-int": (
        lambda p: _interval(p)["parqctl"]["tickers"].update(AAPL=5),
        "venues[0].intervals.1d.parqctl.tickers.AAPL",
    ),
    "ticker-legacy-str": (
        lambda p: _interval(p)["parqctl"]["tickers"]["AAPL"].update(legacy="x"),
        "venues[0].intervals.1d.parqctl.tickers.AAPL.legacy",
    ),
    "tickers-list": (
        lambda p: _interval(p)["parqctl"].update(tickers=[]),
        "venues[0].intervals.1d.parqctl.tickers",
    ),
    "jobs-total-str": (
        lambda p: _interval(p)["jobs"].update(total="many"),
        "venues[0].intervals.1d.jobs.total",
    ),
    "verification-list": (
        lambda p: _interval(p).update(verification=[]),
        "venues[0].intervals.1d.verification",
    ),
    "activation-str": (
        lambda p: _interval(p)["parqctl"].update(activation="yes"),
        "venues[0].intervals.1d.parqctl.activation",
    ),
    "venue-ours-list": (
        lambda p: p["venues"][0].update(parqctl=[1]),
        "venues[0].parqctl",
    ),
    "venues-str": (lambda p: p.update(venues="us:yahoo"), "venues"),
}


@pytest.mark.parametrize("case", sorted(WRONG_TYPES))
def test_wrong_types_in_the_plan_are_refused_by_every_migrate_command(ws: Path, case: str):
    edit, where = WRONG_TYPES[case]
    _edit_plan(ws, edit)
    before = _snapshot(ws)
    for command in MIGRATE_COMMANDS if case in EVERY_COMMAND_CASES else SOME_MIGRATE_COMMANDS:
        result = _run(ws, "migrate", *command)
        assert result.returncode == 2, (command, result.stdout, result.stderr[-2000:])
        line = _one_line(result)
        assert f"{ws / PLAN}: {where} should be" in line, (command, line)
    health = _run(ws, "health")
    assert health.returncode == 3 and f"{where} should be" in _one_line(health)
    assert _snapshot(ws) == before


@pytest.mark.parametrize("version", [99, "1", None, True])
def test_an_unknown_schema_version_is_refused_and_never_rewritten(ws: Path, version):
    _edit_plan(ws, lambda p: p.update(schema_version=version))
    before = _snapshot(ws)
    for command in MIGRATE_COMMANDS if version == 99 else SOME_MIGRATE_COMMANDS:
        result = _run(ws, "migrate", *command)
        assert result.returncode == 2, (command, result.stderr[-2000:])
        line = _one_line(result)
        assert f"unknown schema_version {version!r}" in line or (
            f"unknown schema_version {json.dumps(version)}" in line
        ), line
        assert "this parqctl reads version 1" in line
    assert _snapshot(ws) == before


def test_a_plan_as_the_collector_writes_it_is_read(ws: Path):
    """Liberal where the collector is: null totals and counters, no parqctl records, its
    own verification method, unknown keys."""

    def collector_style(plan: dict) -> None:
        interval = _interval(plan)
        interval.pop("parqctl")
        interval["totals"] = {"legacy_rows": None, "partition_rows": None}
        interval["jobs"] = {"total": 2, "completed": None}
        interval["verification"] = {"method": "row_counts", "verified_at": None}
        interval["backups"] = [{"path": "x", "created_at": "", "size_bytes": None}]
        interval["something_new"] = {"a": [1, 2]}
        plan["venues"][0]["future"] = 1

    _edit_plan(ws, collector_style)
    (ws / ".parqctl" / "migration_plan.parqctl.json").unlink()
    result = _run(ws, "migrate", "status", "--json")
    assert result.returncode == 0, result.stderr
    [status] = json.loads(result.stdout)
    assert status["jobs_total"] == 2


# --- 4. a bloated intervals.json ----------------------------------------------------------


def test_duplicate_intervals_are_read_once(tmp_path: Path):
    ws = _make_workspace(tmp_path / "ws")
    write_json(ws / "intervals.json", ["1d"] * 20000 + ["1h"] + ["1d"] * 20000)
    started = time.monotonic()
    result = _run(ws, "health", "--json")
    assert json.loads(result.stdout)["intervals"] == ["1d", "1h"], result.stderr[-2000:]
    planned = _run(ws, "migrate", "plan")
    assert planned.returncode == 0, planned.stderr[-2000:]
    assert planned.stdout.count("stocks_1d ->") == 1
    assert time.monotonic() - started < 15


# --- 5. a malformed, unreadable or huge .parqctl/config.toml -------------------------------


def _write_config(ws: Path, content: bytes | str) -> None:
    path = ws / ".parqctl" / "config.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)


CONFIGS = {
    "calendars-str": ('calendars = "x"\n', "[calendars] must be a table"),
    "watermarks-int": ("watermarks = 5\n", "[watermarks] must be a table"),
    "retention-list": ("retention_days = []\n", "[retention_days] must be a table"),
    "retention-huge": ('[retention_days]\n"1d" = 99999999999\n', "retention_days.1d"),
    "retention-far": ('[retention_days]\n"1d" = 3000000\n', "retention_days.1d"),
    "nested": ("a = " + "[" * 100000 + "\n", "nested too deeply"),
    "not-utf8": (b"[watermarks]\nwarn = \xff\n", "not UTF-8"),
    "huge": ("#" * (2 * 1024 * 1024) + "\n", "larger than 1 MiB"),
}


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_a_malformed_config_is_one_line(ws: Path, case: str):
    content, expected = CONFIGS[case]
    _write_config(ws, content)
    before = _snapshot(ws)
    for args, code in ((["health"], 3), (["availability"], 2), (["migrate", "estimate"], 2)):
        result = _run(ws, *args)
        assert result.returncode == code, (args, result.stderr[-2000:])
        line = _one_line(result)
        assert str(ws / ".parqctl" / "config.toml") in line and expected in line, line
    assert _snapshot(ws) == before


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_config_that_is_not_a_regular_file_is_one_line(ws: Path, kind: str):
    _replace_with(ws / ".parqctl" / "config.toml", kind)
    before = _snapshot(ws)
    for args in (["health"], ["availability"], ["migrate", "run"]):
        result = _run(ws, *args)
        assert result.returncode in (2, 3)
        line = _one_line(result)
        assert "config.toml" in line and "is not a regular file" in line
    assert _snapshot(ws) == before
