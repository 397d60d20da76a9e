"""The last check's findings, saved and loaded; grouping them; quarantining their errors
from the saved list (what the console's integrity screen does)."""

from __future__ import annotations

import os
from pathlib import Path

from integrity_support import EXTRA_MONTHS, add_grouped_findings

from core.integrity import saved_findings
from core.integrity.check import check, save_report
from core.integrity.findings import Severity, last_summary
from core.integrity.quarantine import entries
from core.safety import run_lock
from core.store.workspace import Workspace


def checked(root: Path):
    report = check(Workspace.open(root))
    save_report(root, report)
    return report


def test_saved_findings_round_trip_every_finding_and_its_checked_stats(workspace):
    add_grouped_findings(workspace)
    report = checked(workspace)
    saved = saved_findings.load(workspace)
    assert saved is not None
    assert saved.findings == report.findings
    assert saved.checked_at == report.checked_at
    assert saved.checked_stats == report.checked_stats
    assert saved.open_errors == report.open_errors == 2


def test_a_missing_or_foreign_findings_file_loads_as_none(workspace):
    assert saved_findings.load(workspace) is None
    target = workspace / saved_findings.LAST_FINDINGS
    target.parent.mkdir(parents=True)
    target.write_bytes(b"PAR1 garbage PAR1")
    assert saved_findings.load(workspace) is None
    target.unlink()
    os.symlink("/etc/hostname", target)
    assert saved_findings.load(workspace) is None


def test_near_identical_findings_group_by_code_ticker_and_interval(workspace):
    add_grouped_findings(workspace)
    groups = saved_findings.group_findings(checked(workspace).findings)
    extra = [g for g in groups if g.code == "schema.extra_column"]
    assert len(extra) == 1
    [group] = extra
    assert (group.ticker, group.interval) == ("AAPL", "1d")
    assert len(group.findings) == len(EXTRA_MONTHS)
    # Each file of the group can be told apart: its year and month are in its path.
    assert len({f.path for f in group.findings}) == len(EXTRA_MONTHS)
    assert groups[0].severity is Severity.ERROR  # worst first
    assert [g.severity for g in groups] == sorted((g.severity for g in groups), reverse=True)


def test_quarantine_errors_of_the_saved_list_records_the_moves_for_health(workspace):
    _, broken = add_grouped_findings(workspace)
    checked(workspace)
    # One of the files changes after the check: it stays where it is.
    os.utime(broken[1], ns=(1, 1))
    saved = saved_findings.load(workspace)
    with run_lock.hold(workspace, "test") as lock:
        updated, outcomes = saved_findings.quarantine_errors(workspace, saved, lock=lock)
    moved = {o["path"]: o for o in outcomes}
    assert "id" in moved["stocks_1d/BRK-B.parquet"]
    assert moved["stocks_1d/MSFT.parquet"]["skipped"] == "it changed since it was checked"
    assert not broken[0].exists() and broken[1].exists()
    assert [e.original_path for e in entries(workspace)] == ["stocks_1d/BRK-B.parquet"]
    assert updated.open_errors == 1
    # Reopened, the list knows what was moved; health's summary counts it too.
    reloaded = saved_findings.load(workspace)
    assert reloaded.quarantined == {"stocks_1d/BRK-B.parquet"}
    assert last_summary(workspace).open_errors == 1


def test_quarantine_errors_limited_to_some_paths_moves_only_those(workspace):
    _, broken = add_grouped_findings(workspace)
    checked(workspace)
    saved = saved_findings.load(workspace)
    with run_lock.hold(workspace, "test") as lock:
        updated, outcomes = saved_findings.quarantine_errors(
            workspace, saved, lock=lock, paths=["stocks_1d/MSFT.parquet"]
        )
    assert [o["path"] for o in outcomes] == ["stocks_1d/MSFT.parquet"]
    assert broken[0].exists() and not broken[1].exists()
    assert list(updated.quarantinable()) == ["stocks_1d/BRK-B.parquet"]


def test_brief_paths_keep_interval_ticker_and_month():
    from tui.text import brief_path

    partition = "data/us/yahoo/stocks_1h/ticker=BRK-B/year=2024/month=07/data.parquet"
    assert brief_path(partition) == "stocks_1h/BRK-B/2024-07"
    assert (
        brief_path(partition + ".tmp-1-2-abc") == "stocks_1h/BRK-B/2024-07/data.parquet.tmp-1-2-abc"
    )
    other_venue = "data/eu/xetra/stocks_1d/ticker=SAP/year=2024/month=01/data.parquet"
    assert brief_path(other_venue) == "eu/xetra/stocks_1d/SAP/2024-01"
    assert brief_path("stocks_1d/AAPL.parquet") == "stocks_1d/AAPL.parquet"
    assert brief_path("data/legacy/stocks_1d/AAPL.parquet") == "legacy/stocks_1d/AAPL.parquet"
