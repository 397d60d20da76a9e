"""``migrate rollback``: route the collector back to the legacy files.

By metadata: the storage blocks activation set are removed (or put back as they were,
where a ticker had another block before) and the storage switches it changed are
restored, from the values the plan recorded before activation wrote anything; an
activation a crash interrupted (``activating``) is undone the same way. The plan is
marked ``rolling_back`` before the metadata is written, so a crash in between is
finished by running rollback again. Refused while a migrated ticker's legacy file is missing.
Before any metadata changes, the bars the collector wrote into partitions while they were
active are carried back into the legacy files it will read (``core.migration.carry_back``);
a bar whose values differ between the two refuses the rollback unless ``force``. With ``purge``, the
partition files this migration created (recorded in the plan) are deleted too, and
nothing else: a file that changed since, or that held collector rows before the
migration merged into it, is kept and reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ParqctlError
from core.migration import checkpoint, staging
from core.migration import months as mo
from core.migration.checkpoint import IntervalPlan
from core.migration.failpoints import failpoint
from core.migration.legacy import list_legacy
from core.safety import audit, run_lock
from core.safety.atomic import fsync_dir
from core.safety.containment import require_inside
from core.store.layout import COLLECTOR_LEGACY_HOME, Venue, legacy_dataset_dir, ticker_partition_dir
from core.store.metadata import MigrationPlan
from core.store.workspace import Workspace

if TYPE_CHECKING:
    from core.migration.carry_back import CarryBack


@dataclass
class PurgePlan:
    """What ``purge`` deletes, for the confirmation."""

    directories: list[Path] = field(default_factory=list)  # the partitioned trees it is in
    files: list[Path] = field(default_factory=list)
    bytes: int = 0
    kept_changed: list[str] = field(default_factory=list)  # tickers whose files changed
    kept_merged: int = 0  # files that held collector rows before the migration


@dataclass
class RollbackResult:
    venue: str
    intervals: list[str]
    blocks_removed: int
    switch_restored: bool
    purge: PurgePlan | None = None
    purged: bool = False
    carried: list[CarryBack] = field(default_factory=list)


def rollback_migration(
    ws: Workspace,
    venue: Venue,
    intervals: list[str] | None = None,
    *,
    purge: bool = False,
    force: bool = False,
    confirm_purge: Callable[[PurgePlan], bool] | None = None,
) -> RollbackResult:
    # Reads bars (pyarrow, polars); imported here so that importing this module does not.
    from core.migration.carry_back import carry_back, plan_carry_back, refuse_conflicts

    with run_lock.hold(ws.root, "parqctl migrate rollback"):
        for name in ("tickers", "storage_config", "migration_plan"):
            ws.__dict__.pop(name, None)
        plan = checkpoint.load(ws)
        selected = checkpoint.planned_intervals(plan, venue, intervals)
        for interval in selected:
            _check_legacy_present(ws, interval)
        switch_restored = "switch_before" in (
            (checkpoint.venue_raw(plan, venue) or {}).get(checkpoint.OURS) or {}
        )
        carries = [
            plan_carry_back(ws, interval, switch_restored)
            for interval in selected
            if interval.routed
        ]
        refuse_conflicts(carries, force)
        purge_plan = _purge_plan(ws, selected) if purge else None
        wants_confirmation = purge_plan is not None and purge_plan.files
        if wants_confirmation and (confirm_purge is None or not confirm_purge(purge_plan)):
            raise ParqctlError("rollback cancelled", "nothing was changed")
        stamp = checkpoint.now_iso()
        for interval in selected:
            if interval.routed:
                interval.ours.setdefault("rolling_back", stamp)
        checkpoint.save(ws, plan)
        failpoint("rollback-intent-recorded")
        for carry in carries:
            carry_back(ws, carry, force)
        for interval in selected:
            _follow_moved_legacy(ws, plan, interval)
        failpoint("rollback-carried-back")
        removed = sum(_restore_blocks(ws, i) for i in selected)
        ws.save_tickers()
        failpoint("rollback-tickers-written")
        restored = _restore_switch(ws, plan, venue)
        for interval in selected:
            interval.ours["activation"] = None
            for key in ("activating", "rolling_back"):
                interval.ours.pop(key, None)
            interval.ours["rolled_back_at"] = stamp
            interval.touch()
        checkpoint.save(ws, plan)
        if purge_plan is not None:
            _purge(ws, plan, selected, purge_plan)
        audit.append(
            ws.root,
            "migrate.rollback",
            "ok",
            venue=venue.id,
            intervals=[i.interval for i in selected],
            blocks_removed=removed,
            switch_restored=restored,
            carried_rows={c.interval: c.rows_added for c in carries},
            moved_files={c.interval: sum(t.moves for t in c.tickers) for c in carries},
            purged_files=len(purge_plan.files) if purge_plan else 0,
            forced=force,
        )
    return RollbackResult(
        venue.id,
        [i.interval for i in selected],
        removed,
        restored,
        purge_plan,
        purge_plan is not None,
        carries,
    )


def _migrated(interval: IntervalPlan) -> list[str]:
    return sorted(t for t, r in interval.tickers.items() if r.get("state") in ("done", "promoting"))


def _check_legacy_present(ws: Workspace, interval: IntervalPlan) -> None:
    homes = {interval.legacy_dir(ws.root), legacy_dataset_dir(ws.root, interval.interval)}
    present = {f.ticker for home in homes for f in list_legacy(home)[0]}
    missing = [t for t in _migrated(interval) if t not in present]
    if missing or (interval.ours.get("legacy_deleted") and _migrated(interval)):
        shown = ", ".join(missing[:5]) or "deleted by finalize"
        raise ParqctlError(
            f"the legacy data of {interval.describe()} is no longer there ({shown})",
            "rollback would route the collector to missing files; restore them first",
        )


def _follow_moved_legacy(ws: Workspace, plan: MigrationPlan, interval: IntervalPlan) -> None:
    """Once carry-back has moved every legacy file to the collector's home, the plan says
    so: its legacy path stays true to where the files are (the collector's own
    ``yf-parqed-migrate status`` and ``verify`` read it)."""
    home = legacy_dataset_dir(ws.root, interval.interval)
    if interval.legacy_dir(ws.root) == home or list_legacy(interval.legacy_dir(ws.root))[0]:
        return
    interval.raw["legacy_path"] = home.relative_to(ws.root).as_posix()
    paths = [
        str(r.get("legacy_path", ""))
        for v in plan.raw.get("venues", [])
        for r in (v.get("intervals") or {}).values()
    ]
    if all(p.startswith("stocks_") for p in paths):
        plan.raw["legacy_root"] = COLLECTOR_LEGACY_HOME


def _restore_blocks(ws: Workspace, interval: IntervalPlan) -> int:
    """Undo the blocks activation set: removed, or the ticker's earlier block put back.

    A block that is no longer activation's (the operator or the collector changed it
    since) is left as it is.
    """
    record = interval.activation or interval.activating or {}
    replaced = record.get("replaced") or {}
    created = set(record.get("created_entries") or [])
    restored = 0
    for name in record.get("blocks_set", []):
        entry = ws.tickers.get(name)
        block = entry.storage(interval.interval) if entry else None
        if block is None or block.mode != "partitioned" or block.venue != interval.venue:
            continue
        if name in replaced:
            entry.set_storage(interval.interval, replaced[name])
        else:
            entry.clear_storage(interval.interval)
            if name in created and entry.interval(interval.interval) == {}:
                entry.raw["intervals"].pop(interval.interval)
        restored += 1
    return restored


def _restore_switch(ws: Workspace, plan: MigrationPlan, venue: Venue) -> bool:
    ours = (checkpoint.venue_raw(plan, venue) or {}).get(checkpoint.OURS) or {}
    before = ours.pop("switch_before", None)
    if before is None:
        return False
    config = ws.storage_config
    sources = config.raw.setdefault("sources", {})
    if before.get("source_present"):
        sources[venue.config_key] = before.get("source")
    else:
        sources.pop(venue.config_key, None)
    config.raw["partitioned"] = bool(before.get("partitioned", False))
    ws.save_storage_config()
    return True


def _purge_plan(ws: Workspace, selected: list[IntervalPlan]) -> PurgePlan:
    result = PurgePlan()
    for interval in selected:
        dataset = interval.partition_dir(ws.root)
        result.directories.append(dataset)
        for ticker in _migrated(interval):
            record = interval.tickers[ticker]
            ticker_dir = ticker_partition_dir(dataset, ticker)
            # Only a tree exactly as a run or a verify recorded it is ours to delete: a
            # ticker whose run crashed mid-promotion has no recorded tree, and the collector
            # may have written into it since, so it is kept.
            recorded = {record.get("tree"), (record.get("verify") or {}).get("tree")} - {None}
            if staging.tree_fingerprint(ticker_dir) not in recorded:
                result.kept_changed.append(ticker)
                continue
            result.kept_merged += len(interval.months(ws.root, ticker, "merged"))
            for month in interval.months(ws.root, ticker, "created"):
                path = ticker_dir / mo.relative_file(month)
                require_inside(ws, path, "delete")
                if path.is_file():
                    result.files.append(path)
                    result.bytes += path.stat().st_size
    return result


def _purge(
    ws: Workspace, plan: MigrationPlan, selected: list[IntervalPlan], purge: PurgePlan
) -> None:
    changed: set[Path] = set()
    for path in purge.files:
        require_inside(ws, path, "delete")
        path.unlink(missing_ok=True)
        changed.add(path.parent)
        for directory in (path.parent, path.parent.parent, path.parent.parent.parent):
            try:
                directory.rmdir()  # only when empty
            except OSError:
                break
            changed.add(directory.parent)
    for directory in sorted(changed, key=lambda d: len(d.parts), reverse=True):
        if directory.is_dir():  # the removals are durable before the plan forgets them
            fsync_dir(directory)
    kept = set(purge.kept_changed)
    for interval in selected:
        for ticker in _migrated(interval):
            if ticker not in kept:
                interval.tickers.pop(ticker, None)
        interval.ours.pop("verify", None)
        interval.set_verified(None)
        interval.update_counters([f.ticker for f in list_legacy(interval.legacy_dir(ws.root))[0]])
    checkpoint.save(ws, plan)
