"""``migrate finalize --delete-legacy``: delete the legacy files of an active interval.

Only after activation and a fresh verify of every ticker, and only the files whose
size and mtime are those that verify just read; the caller confirms the list first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core import audit, run_lock
from core.atomic import fsync_dir
from core.errors import ParqctlError
from core.jobs import CancelToken, ProgressCallback
from core.layout import Venue
from core.migration import checkpoint
from core.migration.legacy import list_legacy
from core.migration.verify import VerifyResult, verify_locked
from core.workspace import Workspace


@dataclass
class DeletionPlan:
    files: list[Path] = field(default_factory=list)
    bytes: int = 0
    directories: list[Path] = field(default_factory=list)


@dataclass
class FinalizeResult:
    venue: str
    verify: VerifyResult
    deletion: DeletionPlan
    deleted: bool


def finalize_migration(
    ws: Workspace,
    venue: Venue,
    intervals: list[str] | None = None,
    *,
    confirm: Callable[[DeletionPlan], bool],
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    token: CancelToken | None = None,
) -> FinalizeResult:
    with run_lock.hold(ws.root, "parqctl migrate finalize --delete-legacy"):
        ws.__dict__.pop("migration_plan", None)
        plan = checkpoint.load(ws)
        selected = checkpoint.planned_intervals(plan, venue, intervals)
        for interval in selected:
            if not interval.activation:
                raise ParqctlError(
                    f"{interval.describe()} is not active in the partitioned layout",
                    "legacy files are deleted only after `parqctl migrate activate`",
                )
        verified = verify_locked(ws, plan, selected, workers, progress, token)
        if not verified.ok:
            failed = sum(len(i.failures) for i in verified.intervals)
            raise ParqctlError(
                f"verification failed for {failed} tickers: not deleting anything",
                "see `parqctl migrate verify` for the failures",
            )
        deletion = DeletionPlan()
        for interval in selected:
            directory = interval.legacy_dir(ws.root)
            deletion.directories.append(directory)
            for legacy in list_legacy(directory)[0]:
                record = (interval.tickers.get(legacy.ticker) or {}).get("verify") or {}
                if record.get("passed") and legacy.unchanged(record.get("legacy")):
                    deletion.files.append(legacy.path)
                    deletion.bytes += legacy.size
        if not confirm(deletion):
            audit.append(ws.root, "migrate.finalize", "declined", venue=venue.id)
            return FinalizeResult(venue.id, verified, deletion, False)
        for path in deletion.files:
            path.unlink()
        for directory in deletion.directories:
            fsync_dir(directory)
        stamp = checkpoint.now_iso()
        for interval in selected:
            interval.ours["legacy_deleted"] = {"at": stamp, "files": len(deletion.files)}
            interval.touch()
        checkpoint.save(ws, plan)
        audit.append(
            ws.root,
            "migrate.finalize",
            "ok",
            venue=venue.id,
            intervals=[i.interval for i in selected],
            deleted_files=len(deletion.files),
            deleted_bytes=deletion.bytes,
        )
    return FinalizeResult(venue.id, verified, deletion, True)
