"""``migrate activate``: route the collector to the partitioned layout, once verified.

Writes each ticker's ``storage`` block for the interval (tickers.json) and, when every
interval of the venue with legacy data is active, the venue's switch in
storage_config.json. The collector reads only the global ``partitioned`` flag besides the
storage blocks, so that flag is set with the venue's (both restored on rollback): a
ticker added later then lands in the partitioned layout for the collector and for
parqctl alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core import audit, run_lock
from core.errors import ParqctlError
from core.layout import Venue, ticker_partition_dir
from core.metadata import MigrationPlan, StorageBlock
from core.migration import checkpoint, staging
from core.migration.checkpoint import IntervalPlan
from core.migration.legacy import list_legacy
from core.migration.plan import legacy_intervals
from core.workspace import Workspace


@dataclass
class IntervalActivation:
    interval: str
    action: str  # activated, already active
    blocks_set: int = 0
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
        for interval in selected:
            if not interval.activation:
                check_activatable(ws, interval)
        results = [_activate(ws, interval) for interval in selected]
        ws.save_tickers()
        switch_set = _set_switch_if_complete(ws, plan, venue)
        checkpoint.save(ws, plan)
        audit.append(
            ws.root,
            "migrate.activate",
            "ok",
            venue=venue.id,
            intervals={r.interval: r.action for r in results},
            switch_set=switch_set,
        )
    return ActivateResult(venue.id, results, switch_set)


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


def _activate(ws: Workspace, interval: IntervalPlan) -> IntervalActivation:
    if interval.activation:
        return IntervalActivation(interval.interval, "already active")
    verified_at = interval.raw.get("verification", {}).get("verified_at") or checkpoint.now_iso()
    block = StorageBlock.partitioned_raw(interval.venue, verified_at)
    migrated = {f.ticker for f in list_legacy(interval.legacy_dir(ws.root))[0]}
    result = IntervalActivation(interval.interval, "activated")
    blocks_set = []
    for entry in ws.tickers.entries():
        has_interval = entry.interval(interval.interval) is not None
        if not (has_interval or entry.name in migrated):
            continue
        current = entry.storage(interval.interval)
        if current is not None and current.mode == "partitioned":
            continue  # routed there before this migration: not ours to set or remove
        entry.set_storage(interval.interval, dict(block))
        blocks_set.append(entry.name)
    result.blocks_set = len(blocks_set)
    result.unregistered = sorted(t for t in migrated if t not in ws.tickers)
    interval.ours["activation"] = {
        "at": checkpoint.now_iso(),
        "verified_at": verified_at,
        "blocks_set": blocks_set,
    }
    interval.touch()
    return result


def _set_switch_if_complete(ws: Workspace, plan: MigrationPlan, venue: Venue) -> bool:
    record = checkpoint.venue_raw(plan, venue) or {}
    active = {
        name
        for name in record.get("intervals", {})
        if checkpoint.IntervalPlan.of(plan, venue, name).activation
    }
    if not set(legacy_intervals(ws)) <= active:
        return False
    ours = record.setdefault(checkpoint.OURS, {})
    config = ws.storage_config
    if "switch_before" not in ours:
        sources = config.raw.get("sources") or {}
        ours["switch_before"] = {
            "partitioned": bool(config.raw.get("partitioned", False)),
            "source": sources.get(venue.config_key),
            "source_present": venue.config_key in sources,
        }
    config.set_source(venue, True)
    config.raw["partitioned"] = True
    ws.save_storage_config()
    return True
