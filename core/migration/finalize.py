"""``migrate finalize --delete-legacy``: delete the legacy files of an active interval.

Only after activation and a fresh verify of every ticker, and only the files whose
size and mtime are those that verify just read; the caller confirms the list first.
The plan records the files about to go (``legacy_deleting``) before the first unlink,
and what is gone (``legacy_deleted``) after the last, or as far as it got when an unlink
fails; running finalize again continues.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ParqctlError
from core.jobs import CancelToken, ProgressCallback
from core.migration import checkpoint
from core.migration.checkpoint import IntervalPlan
from core.migration.failpoints import failpoint
from core.migration.legacy import list_legacy
from core.migration.verify import LEGACY_GONE, VerifyResult, verify_locked
from core.safety import audit, run_lock
from core.safety.atomic import fsync_dir
from core.safety.containment import require_inside
from core.store.layout import Venue
from core.store.metadata import MigrationPlan
from core.store.workspace import Workspace


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
            checkpoint.require_no_interrupted_rollback(interval, "delete its legacy files")
            if not interval.activation:
                raise ParqctlError(
                    f"{interval.describe()} is not active in the partitioned layout",
                    "legacy files are deleted only after `parqctl migrate activate`",
                )
        verified = verify_locked(ws, plan, selected, workers, progress, token)
        _forgive_deleted_legacy(verified, selected)
        if not verified.ok:
            failed = sum(len(i.failures) for i in verified.intervals)
            raise ParqctlError(
                f"verification failed for {failed} tickers: not deleting anything",
                "see `parqctl migrate verify` for the failures",
            )
        deletion = DeletionPlan()
        chosen: list[tuple[IntervalPlan, list[Path]]] = []
        for interval in selected:
            directory = interval.legacy_dir(ws.root)
            deletion.directories.append(directory)
            files = []
            for legacy in list_legacy(directory)[0]:
                record = (interval.tickers.get(legacy.ticker) or {}).get("verify") or {}
                if record.get("passed") and legacy.unchanged(record.get("legacy")):
                    files.append(legacy.path)
                    deletion.bytes += legacy.size
            deletion.files += files
            chosen.append((interval, files))
        if not confirm(deletion):
            audit.append(ws.root, "migrate.finalize", "declined", venue=venue.id)
            return FinalizeResult(venue.id, verified, deletion, False)
        _delete(ws, plan, chosen)
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


def _delete(
    ws: Workspace, plan: MigrationPlan, chosen: list[tuple[IntervalPlan, list[Path]]]
) -> None:
    """Write-ahead record, the unlinks, a directory flush, the record of what is gone."""
    for _, files in chosen:  # refused before anything is recorded, and again at each file
        for path in files:
            require_inside(ws, path, "delete")
    stamp = checkpoint.now_iso()
    earlier = {interval.interval: _deleted_before(ws, interval) for interval, _ in chosen}
    for interval, files in chosen:
        interval.ours["legacy_deleting"] = {"at": stamp, "files": [_rel(ws, p) for p in files]}
        interval.touch()
    checkpoint.save(ws, plan)
    gone: dict[str, list[str]] = {interval.interval: [] for interval, _ in chosen}
    failure: tuple[Path, OSError] | None = None
    for interval, files in chosen:
        for path in files:
            run_lock.ensure_still_held(ws.root)
            require_inside(ws, path, "delete")
            try:
                path.unlink()
            except OSError as exc:
                failure = (path, exc)
                break
            gone[interval.interval].append(_rel(ws, path))
            failpoint("finalize-file-deleted")
        if failure:
            break
    for interval, _ in chosen:
        fsync_dir(interval.legacy_dir(ws.root))
    total = sum(len(files) for _, files in chosen)
    for interval, _ in chosen:
        deleted = sorted({*earlier[interval.interval], *gone[interval.interval]})
        record = {"at": stamp, "files": len(deleted), "deleted": deleted, "complete": True}
        if failure:
            record["complete"] = False
            record["failed"] = {"path": _rel(ws, failure[0]), "error": _reason(failure[1])}
        interval.ours["legacy_deleted"] = record
        interval.ours.pop("legacy_deleting", None)
        interval.touch()
    checkpoint.save(ws, plan)
    if failure:
        path, exc = failure
        done = sum(len(v) for v in gone.values())
        audit.append(
            ws.root,
            "migrate.finalize",
            "failed",
            deleted_files=done,
            failed=_rel(ws, path),
            error=_reason(exc),
        )
        raise ParqctlError(
            f"deleted {done} of {total} legacy files, then could not delete {path}: "
            f"{_reason(exc)}; the plan records which files are gone",
            "fix the cause, then run `parqctl migrate finalize --delete-legacy` again",
        )


def _deleted_before(ws: Workspace, interval: IntervalPlan) -> set[str]:
    """Legacy files earlier finalize runs deleted: recorded as gone, or recorded as about to
    go by a run that was killed and no longer there."""
    done = set((interval.ours.get("legacy_deleted") or {}).get("deleted") or [])
    intended = (interval.ours.get("legacy_deleting") or {}).get("files") or []
    legacy_dir = interval.legacy_dir(ws.root)
    return done | {f for f in intended if not (legacy_dir / Path(f).name).exists()}


def _forgive_deleted_legacy(verified: VerifyResult, selected: list[IntervalPlan]) -> None:
    """A legacy file an earlier finalize recorded deleting is gone on purpose, not a failure.

    Lets a finalize that stopped part-way (an unlink failed, or a crash) be run again.
    """
    for interval, result in zip(selected, verified.intervals, strict=True):
        recorded = set((interval.ours.get("legacy_deleted") or {}).get("deleted") or [])
        recorded |= set((interval.ours.get("legacy_deleting") or {}).get("files") or [])
        names = {Path(p).stem for p in recorded}
        result.failures = [
            f for f in result.failures if not (f.ticker in names and f.problems == [LEGACY_GONE])
        ]
        summary = interval.ours.get("verify")
        if isinstance(summary, dict):
            summary["failed"] = len(result.failures)
            summary["passed"] = result.ok and result.tickers > 0


def _rel(ws: Workspace, path: Path) -> str:
    return path.relative_to(ws.root).as_posix()


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
