"""``migrate plan``: create, extend or trim migration_plan.json for a venue and its intervals.

The collector's legacy files hold its Yahoo bars, which it routes as ``us:yahoo``: a plan
for another venue would copy them under a venue they do not belong to, so it is refused
unless forced (or the venue is planned already). A target planned by mistake is dropped
from the plan while nothing has been migrated to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ParqctlError
from core.migration import checkpoint
from core.migration.legacy import LegacyFile, list_legacy
from core.safety import audit, run_lock
from core.safety.atomic import confined, write_json
from core.store.layout import LEGACY_HOMES, Venue, partition_dataset_dir, validate_interval
from core.store.metadata import MigrationPlan, load_json
from core.store.workspace import Unreadable, Workspace


@dataclass
class PlannedInterval:
    interval: str
    action: str  # added, kept (already planned), reset (--force)
    legacy_path: str
    partition_path: str
    tickers: int
    strays: list[str] = field(default_factory=list)


# The venue of the collector's legacy files: its Yahoo updater routes them as us/yahoo.
LEGACY_VENUE = Venue("us", "yahoo")


@dataclass
class PlanResult:
    path: Path
    venue: str
    created: bool
    intervals: list[PlannedInterval]


def legacy_intervals(ws: Workspace) -> list[str]:
    """Intervals that have a legacy directory, in the order intervals.json gives.

    Refused when a legacy home cannot be listed: which intervals it holds is unknown."""
    unreadable: list[Unreadable] = []
    found = {d.interval for d in ws.datasets(unreadable) if d.kind == "legacy"}
    homes = {(ws.root / home).resolve() for home in LEGACY_HOMES}
    blind = [u for u in unreadable if u.path.resolve() in homes]
    if blind:
        raise _unreadable_error(ws, blind[0], "which legacy intervals it holds is unknown")
    ordered = [i for i in ws.intervals if i in found]
    return ordered + sorted(found - set(ordered))


def _unreadable_error(ws: Workspace, where: Unreadable, consequence: str) -> ParqctlError:
    try:
        name = where.path.relative_to(ws.root).as_posix() + "/"
    except ValueError:
        name = str(where.path)
    return ParqctlError(
        f"cannot read {name} ({where.reason}): {consequence}",
        "give this user read and search permission on it (chmod/chown), or plan the "
        "other intervals with --interval",
    )


def _list_legacy(ws: Workspace, directory: Path) -> tuple[list[LegacyFile], list[Path]]:
    """The legacy files of a home; a directory that cannot be read is refused in one line
    (planning from a part of the files would record the wrong jobs)."""
    try:
        return list_legacy(directory)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError | NotADirectoryError):
            return [], []
        raise _unreadable_error(
            ws, Unreadable.of(directory, exc), "its legacy files cannot be listed"
        ) from None


def legacy_source(ws: Workspace, interval: str) -> Path:
    """The one legacy home the interval migrates from, read in place.

    Files in two homes are refused: the collector reads only the one at the root, so the
    other holds bars it no longer sees (often the history moved away for its own migration
    tool, with only newer bars written at the root since); migrating either would leave
    the other behind.
    """
    blind: list[Unreadable] = []
    homes = ws.legacy_homes(interval, blind)
    if blind:
        raise _unreadable_error(
            ws, blind[0], f"whether it holds legacy {interval} files is unknown"
        )
    with_files = [h for h in homes if _list_legacy(ws, h.path)[0]]
    if len(with_files) > 1:
        where = " and ".join(h.path.relative_to(ws.root).as_posix() + "/" for h in with_files)
        raise ParqctlError(
            f"legacy {interval} files are in {where}; the collector reads only "
            f"stocks_{interval}/ at the workspace root",
            "merge them into one of these folders (ticker by ticker), then plan again",
        )
    if not homes:
        raise ParqctlError(
            f"no legacy {interval} data in {ws.root}",
            f"expected stocks_{interval}/ at the workspace root, data/legacy/stocks_{interval}/ "
            f"or data/stocks_{interval}/",
        )
    return (with_files or homes)[0].path


def plan_migration(
    ws: Workspace, venue: Venue, intervals: list[str] | None = None, *, force: bool = False
) -> PlanResult:
    """Add the intervals to the plan (creating it); a planned interval is only reset with
    ``force``, and never once it is active. A venue other than the legacy files' own that
    is not planned yet is refused unless ``force``."""
    names = intervals or legacy_intervals(ws)
    if not names:
        raise ParqctlError(
            f"no legacy data in {ws.root}",
            "nothing to migrate: legacy files are stocks_<iv>/<TICKER>.parquet at the "
            "workspace root, in data/legacy/ or in data/",
        )
    sources = {}
    for name in names:
        validate_interval(name)
        sources[name] = legacy_source(ws, name)
    with run_lock.hold(ws.root, "parqctl migrate plan"):
        ws.__dict__.pop("migration_plan", None)  # re-read under the lock
        plan = ws.migration_plan
        created = plan is None
        if plan is not None:
            checkpoint.load(ws)  # refused when another tool dropped parqctl's records
        if (
            not force
            and venue != LEGACY_VENUE
            and (plan is None or checkpoint.venue_raw(plan, venue) is None)
        ):
            raise ParqctlError(
                f"venue {venue.id} has no legacy data: the legacy files hold the collector's "
                f"{LEGACY_VENUE.id} bars; nothing was changed",
                f"plan --venue {LEGACY_VENUE.id}, or pass --force to plan {venue.id} anyway",
            )
        if plan is None:
            first = sources[names[0]].relative_to(ws.root).parent.as_posix()
            plan = MigrationPlan(
                {
                    "schema_version": 1,
                    "generated_at": checkpoint.now_iso(),
                    "created_by": checkpoint.CREATED_BY,
                    "legacy_root": first,
                    "venues": [],
                }
            )
        record = checkpoint.venue_raw(plan, venue)
        if record is None:
            record = {
                "id": venue.id,
                "market": venue.market.upper(),
                "source": venue.source,
                "status": checkpoint.PENDING,
                "last_updated": checkpoint.now_iso(),
                "intervals": {},
            }
            plan.raw.setdefault("venues", []).append(record)
        planned = [_plan_interval(ws, plan, venue, record, n, sources[n], force) for n in names]
        checkpoint.save(ws, plan)
        audit.append(
            ws.root,
            "migrate.plan",
            "ok",
            venue=venue.id,
            intervals={p.interval: p.action for p in planned},
            created=created,
        )
    return PlanResult(ws.root / "migration_plan.json", venue.id, created, planned)


def _plan_interval(
    ws: Workspace,
    plan: MigrationPlan,
    venue: Venue,
    record: dict,
    name: str,
    legacy_dir: Path,
    force: bool,
) -> PlannedInterval:
    files, strays = _list_legacy(ws, legacy_dir)
    intervals = record.setdefault("intervals", {})
    action = "added"
    if name in intervals:
        existing = checkpoint.IntervalPlan.of(plan, venue, name)
        if not force:
            return PlannedInterval(
                name,
                "kept",
                existing.raw.get("legacy_path", ""),
                existing.raw.get("partition_path", ""),
                len(files),
                [str(p) for p in strays],
            )
        checkpoint.require_not_activated(existing, "reset its plan")
        action = "reset"
    legacy_path = legacy_dir.relative_to(ws.root).as_posix()
    partition_path = partition_dataset_dir(Path(), venue, name).as_posix()
    intervals[name] = {
        "legacy_path": legacy_path,
        "partition_path": partition_path,
        "status": checkpoint.PENDING,
        "totals": {"legacy_rows": None, "partition_rows": None},
        "jobs": {"total": len(files), "completed": 0},
        "resume_token": None,
        "verification": {"method": checkpoint.VERIFY_METHOD, "verified_at": None},
        "backups": [],
    }
    checkpoint.IntervalPlan.of(plan, venue, name).touch()
    return PlannedInterval(
        name, action, legacy_path, partition_path, len(files), [str(p) for p in strays]
    )


@dataclass
class DropResult:
    venue: str
    intervals: list[str]  # dropped from the plan
    venue_dropped: bool  # the venue had no interval left and went too


def drop_targets(ws: Workspace, venue: Venue, intervals: list[str] | None = None) -> DropResult:
    """Remove planned intervals (all of the venue's when none are named) from the plan.

    Refused for an interval with partition files this migration wrote (their records are
    what tells rollback which files are its own) or whose activation has begun."""
    with run_lock.hold(ws.root, "parqctl migrate plan --drop"):
        plan = checkpoint.load(ws, fresh=True)
        planned = list((checkpoint.venue_raw(plan, venue) or {}).get("intervals") or {})
        missing = [iv for iv in intervals or [] if iv not in planned]
        if not planned or missing:
            raise ParqctlError(
                f"{venue.id} {', '.join(missing)} is not in the migration plan: nothing to drop"
                if missing
                else f"venue {venue.id} is not in the migration plan: nothing to drop",
                "`parqctl migrate status` lists the planned targets",
            )
        selected = checkpoint.planned_intervals(plan, venue, intervals)
        for interval in selected:
            _require_droppable(interval)
        record = checkpoint.venue_raw(plan, venue) or {}
        for interval in selected:
            record["intervals"].pop(interval.interval)
        venue_dropped = not record["intervals"] and not record.get(checkpoint.OURS)
        if venue_dropped:
            plan.raw["venues"].remove(record)
        checkpoint.save(ws, plan)
        names = [i.interval for i in selected]
        audit.append(ws.root, "migrate.plan.drop", "ok", venue=venue.id, intervals=names)
    return DropResult(venue.id, names, venue_dropped)


def _require_droppable(interval: checkpoint.IntervalPlan) -> None:
    where = f"--venue {interval.venue.id} --interval {interval.interval}"
    if interval.routed or interval.ours.get("rolling_back"):
        raise ParqctlError(
            f"{interval.describe()} has been activated; refusing to drop it from the plan",
            f"roll it back first: `parqctl migrate rollback {where}`",
        )
    migrated = sorted(
        t for t, r in interval.tickers.items() if r.get("state") in ("done", "promoting")
    )
    if migrated:
        raise ParqctlError(
            f"{interval.describe()} has partition files of {len(migrated):,} migrated tickers "
            f"({', '.join(migrated[:3])}{' ...' if len(migrated) > 3 else ''}); the plan is "
            "what tells which files are the migration's own, so it is not dropped",
            f"delete them first with `parqctl migrate rollback --purge-partitioned {where}`, "
            "then drop it",
        )


@dataclass
class RestoreResult:
    intervals: list[str]  # "venue interval" whose records were put back
    kept_at: Path  # the rewritten plan, as it was


def restore_records(ws: Workspace) -> RestoreResult:
    """Put back the plan as parqctl last wrote it, after another tool rewrote it and
    dropped parqctl's records; the rewritten plan is kept beside parqctl's copy."""
    with run_lock.hold(ws.root, "parqctl migrate plan --restore"):
        plan = checkpoint.load(ws, fresh=True, rewritten_ok=True)
        lost = checkpoint.records_lost(ws, plan)
        if not lost:
            raise ParqctlError(
                "migration_plan.json still holds all of parqctl's records", "nothing to restore"
            )
        copy = checkpoint.own_copy_path(ws)
        own = MigrationPlan.from_json(copy, load_json(copy))
        kept_at = ws.state_dir / f"migration_plan.rewritten-{checkpoint.now_iso()}.json"
        write_json(confined(ws.root, kept_at), plan.raw)
        checkpoint.save(ws, own)
        audit.append(
            ws.root,
            "migrate.plan.restore",
            "ok",
            intervals=lost,
            rewritten_by=plan.raw.get("created_by"),
            rewritten_at=plan.raw.get("generated_at"),
            kept_at=str(kept_at.relative_to(ws.root)),
        )
    return RestoreResult(lost, kept_at)
