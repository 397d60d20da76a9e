"""`parqctl migrate plan`, `status` and `activate` as an operator types them: a venue with no
legacy data refused, a target planned by mistake dropped, counts that add up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli, tree_digest
from migration_support import copy_workspace

from core.safety import run_lock


@pytest.fixture
def demo(source, tmp_path) -> Path:
    root, report = source
    return copy_workspace(root, tmp_path / "ws", readable_only=False, report=report)


def _migrate(root: Path, *args: str):
    return run_cli("-w", str(root), "migrate", *args)


def _planned(root: Path) -> dict[str, list[str]]:
    plan = json.loads((root / "migration_plan.json").read_text())
    return {v["id"]: list(v["intervals"]) for v in plan["venues"]}


def _files(root: Path) -> dict[str, str]:
    """Every file and its digest but the audit log, which records refusals too."""
    return {k: v for k, v in tree_digest(root).items() if k != ".parqctl/audit.jsonl"}


def _one_line_error(result, *parts: str, code: int = 2) -> None:
    assert result.returncode == code, result.stdout
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("parqctl: error: ") and "Traceback" not in result.stderr
    for part in parts:
        assert part in line, line


def test_a_venue_with_no_legacy_data_is_refused_unless_forced(clean: Path):
    before = _files(clean)
    refused = _migrate(clean, "plan", "--venue", "nope:x")
    _one_line_error(refused, "venue nope:x has no legacy data", "--force")
    assert _files(clean) == before

    assert _migrate(clean, "plan", "--interval", "1d").returncode == 0
    before = _files(clean)
    _one_line_error(_migrate(clean, "plan", "--venue", "nope:x", "--interval", "1h"), "nope:x")
    assert _files(clean) == before

    forced = _migrate(clean, "plan", "--venue", "nope:x", "--interval", "1h", "--force")
    assert forced.returncode == 0, forced.stderr
    assert _planned(clean) == {"us:yahoo": ["1d"], "nope:x": ["1h"]}
    # Planned once, the venue is extended without --force.
    assert _migrate(clean, "plan", "--venue", "nope:x", "--interval", "1d").returncode == 0
    assert _planned(clean)["nope:x"] == ["1h", "1d"]


def test_a_mistyped_target_is_dropped_under_the_lock(clean: Path):
    assert _migrate(clean, "plan", "--interval", "1d").returncode == 0
    assert _migrate(clean, "plan", "--venue", "nope:x", "--force").returncode == 0

    before = _files(clean)
    with run_lock.hold(clean, "test: the collector"):
        _one_line_error(
            _migrate(clean, "plan", "--drop", "--venue", "nope:x", "--interval", "1h"),
            "lock",
            code=3,  # the lock's exit code
        )
    assert _files(clean) == before

    dropped = _migrate(clean, "plan", "--drop", "--venue", "nope:x", "--interval", "1h")
    assert dropped.returncode == 0, dropped.stderr
    assert dropped.stdout.strip() == "dropped nope:x 1h from the plan"
    assert _planned(clean) == {"us:yahoo": ["1d"], "nope:x": ["1d", "1m"]}

    every = _migrate(clean, "plan", "--drop", "--venue", "nope:x", "--json")
    assert json.loads(every.stdout) == {
        "venue": "nope:x",
        "intervals": ["1d", "1m"],
        "venue_dropped": True,
    }
    assert _planned(clean) == {"us:yahoo": ["1d"]}
    own_copy = json.loads((clean / ".parqctl/migration_plan.parqctl.json").read_text())
    assert [v["id"] for v in own_copy["venues"]] == ["us:yahoo"]  # no records "lost"
    assert _migrate(clean, "status").returncode == 0
    records = [json.loads(line) for line in (clean / ".parqctl/audit.jsonl").open()]
    drops = [(r["intervals"], r["result"]) for r in records if r["action"] == "migrate.plan.drop"]
    assert drops == [(["1h"], "ok"), (["1d", "1m"], "ok")]


def test_a_target_with_migrated_files_is_not_dropped_until_they_are_purged(clean: Path):
    assert _migrate(clean, "plan", "--interval", "1d").returncode == 0
    assert _migrate(clean, "run", "--interval", "1d", "--workers", "1").returncode == 0
    before = _files(clean)
    refused = _migrate(clean, "plan", "--drop", "--interval", "1d")
    _one_line_error(refused, "us:yahoo 1d has partition files of 13 migrated tickers")
    assert "rollback --purge-partitioned --venue us:yahoo --interval 1d" in refused.stderr
    assert _files(clean) == before

    purged = _migrate(clean, "rollback", "--purge-partitioned", "--yes", "--interval", "1d")
    assert purged.returncode == 0, purged.stderr
    assert _migrate(clean, "plan", "--drop", "--interval", "1d").returncode == 0
    assert _planned(clean) == {}


def test_drop_takes_no_other_plan_option(clean: Path):
    assert _migrate(clean, "plan").returncode == 0
    before = _files(clean)
    _one_line_error(_migrate(clean, "plan", "--drop", "--force"), "--drop cannot be combined")
    _one_line_error(
        _migrate(clean, "plan", "--drop", "--venue", "de:xetra"),
        "venue de:xetra is not in the migration plan: nothing to drop",
    )
    _one_line_error(
        _migrate(clean, "plan", "--drop", "--interval", "5m"),
        "us:yahoo 5m is not in the migration plan: nothing to drop",
    )
    assert _files(clean) == before


def test_status_says_the_stage_and_counts_that_add_up(demo: Path, source):
    truncated = next(i for i in source[1].injections if i.kind == "truncated")
    assert _migrate(demo, "plan", "--interval", "1d").returncode == 0
    planned = _migrate(demo, "status").stdout
    assert "us:yahoo 1d: planned; nothing migrated yet" in planned
    assert "pending (planned)" not in planned
    assert "14 legacy files: 0 migrated, 0 failed, 0 in promotion, 14 to do" in planned

    assert _migrate(demo, "run", "--interval", "1d", "--workers", "1").returncode == 1
    status = _migrate(demo, "status").stdout
    assert "us:yahoo 1d: migrating; partly done" in status
    assert "migrating (migrating)" not in status
    assert "14 legacy files: 13 migrated, 1 failed, 0 in promotion, 0 to do" in status
    assert "the plan's status field (the collector's): migrating" in status

    # The operator sets the unreadable file aside: it is no longer a legacy file, and its
    # old failure is told apart instead of being counted against 13 files.
    quarantined = run_cli(
        "-w", str(demo), "quarantine", "add", str(demo / "stocks_1d" / truncated.path.name),
        "--reason", "truncated",
    )  # fmt: skip
    assert quarantined.returncode == 0, quarantined.stderr
    status = _migrate(demo, "status").stdout
    assert "13 legacy files: 13 migrated, 0 failed, 0 in promotion, 0 to do" in status
    assert (
        f"1 recorded ticker has no legacy file now (quarantined or removed): {truncated.ticker}"
        in status
    )
    [record] = json.loads(_migrate(demo, "status", "--json").stdout)
    assert (record["tickers"], record["done"], record["failed"], record["pending"]) == (
        13,
        13,
        0,
        0,
    )
    assert record["gone"] == [truncated.ticker]


def test_activate_says_which_routed_tickers_were_migrated(demo: Path, source):
    truncated = next(i for i in source[1].injections if i.kind == "truncated")
    (demo / "stocks_1d" / truncated.path.name).unlink()  # its only 1d file, gone
    assert _migrate(demo, "plan", "--interval", "1d").returncode == 0
    assert _migrate(demo, "run", "--interval", "1d", "--workers", "1").returncode == 0
    assert _migrate(demo, "verify", "--interval", "1d", "--workers", "1").returncode == 0
    activated = _migrate(demo, "activate", "--interval", "1d")
    assert activated.returncode == 0, activated.stderr
    lines = activated.stdout.splitlines()
    assert lines[0] == (
        "us:yahoo 1d: activated; 14 tickers routed to the partitioned layout: "
        "13 migrated, 1 with no legacy file"
    )
    assert lines[1].endswith(f"new bars go to the partitioned layout: {truncated.ticker}")
    tickers = json.loads((demo / "tickers.json").read_text())
    routed = [t for t, e in tickers.items() if (e["intervals"].get("1d") or {}).get("storage")]
    assert len(routed) == 14
    again = _migrate(demo, "activate", "--interval", "1d")
    assert again.stdout.strip() == "us:yahoo 1d: already active; nothing changed"
