"""``migrate activate``: route the collector to the partitioned layout, once verified.

Writes each ticker's ``storage`` block for the interval (tickers.json) and, when every
interval of the venue with legacy data is active, the venue's switch in
storage_config.json. The collector reads only the global ``partitioned`` flag besides the
storage blocks, so that flag is set with the venue's (both restored on rollback): a
ticker added later then lands in the partitioned layout for the collector and for
parqctl alike.

Write-ahead, so that a crash between the files never leaves a change the plan does not
record: first the plan records the intended activation (``activating``: every block it
will set, the block each ticker had before, and the switches' old values), then
tickers.json and storage_config.json are written, then the plan marks the interval
activated. A plan left ``activating`` is completed by running activate again, or undone
by rollback from the recorded old values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import ParqctlError
from core.migration import checkpoint, staging
from core.migration.checkpoint import IntervalPlan
from core.migration.failpoints import failpoint
from core.migration.legacy import list_legacy
from core.migration.plan import legacy_intervals
from core.safety import audit, run_lock
from core.store.layout import Venue, ticker_partition_dir
from core.store.metadata import MigrationPlan, StorageBlock
from core.store.workspace import Workspace


@dataclass
class IntervalActivation:
    interval: str
    action: str  # activated, completed (an interrupted activation), already active
    blocks_set: int = 0  # tickers routed to the partitioned layout: migrated + without_legacy
    migrated: int = 0  # of them, tickers whose legacy file was migrated
    # registered for the interval with no legacy file migrated (none, or quarantined): the
    # collector writes their new bars to the partitioned layout
    without_legacy: list[str] = field(default_factory=list)
    unregistered: list[str] = field(default_factory=list)  # migrated but not in tickers.json


@dataclass
class ActivateResult:
    venue: str
    intervals: list[IntervalActivation]
    switch_set: bool  # storage_config.json now routes the whole venue


def activate_migration(
    ws: Workspace, venue: Venue, intervals: list[str] | None = None
) -> ActivateResult:
    with run_lock.hold(ws.root, "parqctl migrate activate"):
        _reload(ws)
        plan = checkpoint.load(ws)
        selected = checkpoint.planned_intervals(plan, venue, intervals)
        named = {i.interval for i in selected}
        # An interrupted activation of the venue is completed too, named or not.
        selected += [
            i
            for i in checkpoint.planned_intervals(plan, venue, None)
            if i.interval not in named and i.activating and not i.activation
        ]
        for interval in selected:
            checkpoint.require_no_interrupted_rollback(interval, "activate it")
        pending = [i for i in selected if not i.activation]
        resumed = {i.interval for i in pending if i.activating and _applied(ws, i)}
        for interval in pending:
            if interval.interval not in resumed:
                check_activatable(ws, interval)
                interval.ours["activating"] = _intent(ws, interval)
                interval.touch()
        switch = _switch_is_set(ws, venue)
        if pending:
            switch = _record_switch_intent(ws, plan, venue)
            checkpoint.save(ws, plan)
            failpoint("activate-intent-recorded")
            for interval in pending:
                _apply_blocks(ws, interval)
            ws.save_tickers()
            failpoint("activate-tickers-written")
            if switch:
                config = ws.storage_config
                config.set_source(venue, True)
                config.raw["partitioned"] = True
                ws.save_storage_config()
                failpoint("activate-config-written")
        results = [_mark_activated(i, i.interval in resumed) for i in selected]
        if pending:
            checkpoint.save(ws, plan)
        audit.append(
            ws.root,
            "migrate.activate",
            "ok",
            venue=venue.id,
            intervals={r.interval: r.action for r in results},
            switch_set=switch,
        )
    return ActivateResult(venue.id, results, switch)


def _reload(ws: Workspace) -> None:
    for name in ("tickers", "storage_config", "migration_plan"):
        ws.__dict__.pop(name, None)


def check_activatable(ws: Workspace, interval: IntervalPlan) -> None:
    """Verify passed and neither the legacy files nor the partition files changed since."""
    verdict = interval.ours.get("verify") or {}
    hint = (
        f"run `parqctl migrate verify --venue {interval.venue.id} --interval {interval.interval}`"
    )
    if not verdict.get("passed"):
        raise ParqctlError(f"{interval.describe()} has not passed verification", hint)
    files, _ = list_legacy(interval.legacy_dir(ws.root))
    dataset = interval.partition_dir(ws.root)
    changed = []
    for legacy in files:
        record = (interval.tickers.get(legacy.ticker) or {}).get("verify") or {}
        tree = staging.tree_fingerprint(ticker_partition_dir(dataset, legacy.ticker))
        if not (
            record.get("passed")
            and legacy.unchanged(record.get("legacy"))
            and tree == record.get("tree")
        ):
            changed.append(legacy.ticker)
    if changed:
        shown = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
        raise ParqctlError(
            f"{len(changed)} tickers of {interval.describe()} changed or appeared since "
            f"verification ({shown})",
            "stop the collector, then run `parqctl migrate run` and verify again",
        )


def _intent(ws: Workspace, interval: IntervalPlan) -> dict[str, Any]:
    """What activating the interval changes in tickers.json, with the values it replaces."""
    verified_at = interval.raw.get("verification", {}).get("verified_at") or checkpoint.now_iso()
    migrated = {f.ticker for f in list_legacy(interval.legacy_dir(ws.root))[0]}
    blocks_set: list[str] = []
    created: list[str] = []
    replaced: dict[str, Any] = {}
    for entry in ws.tickers.entries():
        iv_entry = entry.interval(interval.interval)
        if not (iv_entry is not None or entry.name in migrated):
            continue
        current = entry.storage(interval.interval)
        if current is not None and current.mode == "partitioned":
            continue  # routed there before this migration: not ours to set or remove
        blocks_set.append(entry.name)
        if iv_entry is None:
            created.append(entry.name)  # rollback removes the entry it adds
        elif "storage" in iv_entry:
            replaced[entry.name] = iv_entry["storage"]  # restored as it was on rollback
    return {
        "at": checkpoint.now_iso(),
        "verified_at": verified_at,
        "block": StorageBlock.partitioned_raw(interval.venue, verified_at),
        "blocks_set": blocks_set,
        "without_legacy": sorted(t for t in blocks_set if t not in migrated),
        "replaced": replaced,
        "created_entries": created,
        "unregistered": sorted(t for t in migrated if t not in ws.tickers),
    }


def _applied(ws: Workspace, interval: IntervalPlan) -> bool:
    """Whether tickers.json already carries the recorded blocks (a crash after writing it):
    the collector may be writing there since, so the activation is completed, not redone."""
    record = interval.activating or {}
    for name in record.get("blocks_set", []):
        entry = ws.tickers.get(name)
        block = entry.storage(interval.interval) if entry else None
        if block is None or block.mode != "partitioned" or block.venue != interval.venue:
            return False
    return True


def _apply_blocks(ws: Workspace, interval: IntervalPlan) -> None:
    record = interval.activating or {}
    for name in record.get("blocks_set", []):
        entry = ws.tickers.get(name)
        if entry is not None:
            entry.set_storage(interval.interval, dict(record["block"]))


def _mark_activated(interval: IntervalPlan, resumed: bool) -> IntervalActivation:
    if interval.activation:
        return IntervalActivation(interval.interval, "already active")
    record = interval.ours.pop("activating")
    interval.ours["activation"] = {**record, "at": checkpoint.now_iso()}
    interval.touch()
    blocks = record.get("blocks_set", [])
    without = list(record.get("without_legacy", []))
    return IntervalActivation(
        interval.interval,
        "completed" if resumed else "activated",
        len(blocks),
        len(blocks) - len(without),
        without,
        list(record.get("unregistered", [])),
    )


def _record_switch_intent(ws: Workspace, plan: MigrationPlan, venue: Venue) -> bool:
    """Whether the venue's switch is to be set (every legacy interval active or being
    activated); if so, its old values are recorded in the plan first."""
    record = checkpoint.venue_raw(plan, venue) or {}
    routed = {
        name
        for name in record.get("intervals", {})
        if checkpoint.IntervalPlan.of(plan, venue, name).routed
    }
    if not set(legacy_intervals(ws)) <= routed:
        return False
    ours = record.setdefault(checkpoint.OURS, {})
    if "switch_before" not in ours:
        config = ws.storage_config
        sources = config.raw.get("sources") or {}
        ours["switch_before"] = {
            "partitioned": bool(config.raw.get("partitioned", False)),
            "source": sources.get(venue.config_key),
            "source_present": venue.config_key in sources,
        }
    return True


def _switch_is_set(ws: Workspace, venue: Venue) -> bool:
    return ws.storage_config.is_partitioned(venue) and bool(
        ws.storage_config.raw.get("partitioned")
    )
