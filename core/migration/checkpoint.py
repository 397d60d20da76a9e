"""migration_plan.json as the migration reads and writes it.

The collector's fields of each interval (status, jobs, totals, resume_token,
verification) are kept meaningful, so its own ``status`` reads the plan; parqctl's
records live under a ``parqctl`` key of the interval (per-ticker checkpoints, verify
and activation records) and of the venue (the storage switches it changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import ParqctlError
from core.layout import Venue
from core.metadata import MigrationPlan
from core.workspace import Workspace

OURS = "parqctl"
CREATED_BY = "parqctl"
VERIFY_METHOD = "row_counts+content_digest"
PENDING, MIGRATING, COMPLETE = "pending", "migrating", "complete"


def now_iso() -> str:
    """UTC, whole seconds, ``Z``: the collector's timestamp format."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def load(ws: Workspace, *, fresh: bool = False) -> MigrationPlan:
    """The plan; ``fresh`` re-reads it from disk (do so once the lock is held, since a
    concurrent activate or rollback may have rewritten it since it was first read)."""
    if fresh:
        ws.__dict__.pop("migration_plan", None)
    plan = ws.migration_plan
    if plan is None:
        raise ParqctlError(
            f"no migration plan in {ws.root}",
            "create one with `parqctl migrate plan --venue us:yahoo --interval 1d`",
        )
    return plan


def save(ws: Workspace, plan: MigrationPlan) -> None:
    plan.raw["generated_at"] = now_iso()
    ws.save_migration_plan(plan)


def venue_raw(plan: MigrationPlan, venue: Venue) -> dict[str, Any] | None:
    for record in plan.raw.get("venues", []):
        if str(record.get("id", "")).lower() == venue.id:
            return record
    return None


@dataclass
class IntervalPlan:
    """One venue/interval of the plan: the collector's fields and parqctl's records."""

    venue: Venue
    interval: str
    venue_raw: dict[str, Any]
    raw: dict[str, Any]

    @classmethod
    def of(cls, plan: MigrationPlan, venue: Venue, interval: str) -> IntervalPlan:
        v = venue_raw(plan, venue)
        raw = (v or {}).get("intervals", {}).get(interval)
        if raw is None:
            raise ParqctlError(
                f"{venue.id} {interval} is not in the migration plan",
                f"add it with `parqctl migrate plan --venue {venue.id} --interval {interval}`",
            )
        return cls(venue, interval, v, raw)

    def legacy_dir(self, root: Path) -> Path:
        return root / self.raw["legacy_path"]

    def partition_dir(self, root: Path) -> Path:
        return root / self.raw["partition_path"]

    @property
    def ours(self) -> dict[str, Any]:
        return self.raw.setdefault(OURS, {})

    @property
    def tickers(self) -> dict[str, dict[str, Any]]:
        return self.ours.setdefault("tickers", {})

    @property
    def activation(self) -> dict[str, Any] | None:
        return self.ours.get("activation")

    @property
    def status(self) -> str:
        return str(self.raw.get("status", PENDING))

    def describe(self) -> str:
        return f"{self.venue.id} {self.interval}"

    def update_counters(self, legacy_tickers: list[str]) -> None:
        """The collector's counters, from the ticker records of the current legacy files."""
        records = [self.tickers.get(t) or {} for t in legacy_tickers]
        done = [r for r in records if r.get("state") == "done"]
        self.raw["jobs"] = {"total": len(legacy_tickers), "completed": len(done)}
        self.raw["totals"] = {
            "legacy_rows": sum(r["legacy"]["rows"] for r in done),
            "partition_rows": sum(r.get("partition_rows", 0) for r in done),
        }
        pending = [
            t for t, r in zip(legacy_tickers, records, strict=True) if r.get("state") != "done"
        ]
        self.raw["resume_token"] = pending[0] if pending else None
        if not pending:
            self.raw["status"] = COMPLETE
        elif done or any(records):
            self.raw["status"] = MIGRATING
        else:
            self.raw["status"] = PENDING
        self.touch()

    def touch(self) -> None:
        stamp = now_iso()
        self.ours["updated_at"] = stamp
        self.venue_raw["last_updated"] = stamp
        statuses = [str(r.get("status")) for r in self.venue_raw.get("intervals", {}).values()]
        if all(s == COMPLETE for s in statuses):
            self.venue_raw["status"] = COMPLETE
        elif any(s in (MIGRATING, COMPLETE) for s in statuses):
            self.venue_raw["status"] = MIGRATING
        else:
            self.venue_raw["status"] = PENDING

    def set_verified(self, verified_at: str | None) -> None:
        self.raw["verification"] = {"method": VERIFY_METHOD, "verified_at": verified_at}


def planned_intervals(
    plan: MigrationPlan, venue: Venue, intervals: list[str] | None
) -> list[IntervalPlan]:
    """The named intervals of the venue (all of them when none are named)."""
    record = venue_raw(plan, venue)
    if record is None:
        raise ParqctlError(
            f"venue {venue.id} is not in the migration plan",
            f"create it with `parqctl migrate plan --venue {venue.id}`",
        )
    names = intervals or list(record.get("intervals", {}))
    return [IntervalPlan.of(plan, venue, name) for name in names]


def require_not_activated(interval: IntervalPlan, action: str) -> None:
    if interval.activation:
        raise ParqctlError(
            f"{interval.describe()} is already active in the partitioned layout; refusing to {action}",
            f"the collector writes there now; `parqctl migrate rollback --venue {interval.venue.id} "
            f"--interval {interval.interval}` first",
        )
