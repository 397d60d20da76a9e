"""migration_plan.json as the migration reads and writes it.

The collector's fields of each interval (status, jobs, totals, resume_token,
verification) are kept meaningful, so its own ``status`` reads the plan; parqctl's
records live under a ``parqctl`` key of the interval (per-ticker checkpoints, verify
and activation records) and of the venue (the storage switches it changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from core.errors import MetadataError, ParqctlError
from core.migration import months as mo
from core.safety.atomic import confined, write_json
from core.store.layout import LEGACY_HOMES, Venue, legacy_dataset_dir, partition_dataset_dir
from core.store.metadata import MIGRATION_PLAN_FILE, MigrationPlan, load_json
from core.store.workspace import Workspace

OURS = "parqctl"
OWN_COPY = "migration_plan.parqctl.json"  # in .parqctl/: the plan as parqctl last wrote it
CREATED_BY = "parqctl"
VERIFY_METHOD = "row_counts+content_digest"
PENDING, MIGRATING, COMPLETE = "pending", "migrating", "complete"


def now_iso() -> str:
    """UTC, whole seconds, ``Z``: the collector's timestamp format."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def load(ws: Workspace, *, fresh: bool = False, rewritten_ok: bool = False) -> MigrationPlan:
    """The plan; ``fresh`` re-reads it from disk (do so once the lock is held, since a
    concurrent activate or rollback may have rewritten it since it was first read).

    Refused when another tool rewrote it and dropped parqctl's records (``rewritten_ok``
    for the commands that only report)."""
    if fresh:
        ws.__dict__.pop("migration_plan", None)
    plan = ws.migration_plan
    if plan is None:
        raise ParqctlError(
            f"no migration plan in {ws.root}",
            "create one with `parqctl migrate plan --venue us:yahoo --interval 1d`",
        )
    if not rewritten_ok:
        lost = records_lost(ws, plan)
        if lost:
            raise MetadataError(
                f"{ws.root / MIGRATION_PLAN_FILE} was rewritten by {plan.raw.get('created_by')!r} "
                f"at {plan.raw.get('generated_at')} and parqctl's records of {', '.join(lost)} "
                "(checkpoints, verification, activation) are gone; nothing was changed",
                "put them back with `parqctl migrate plan --restore` (which keeps the rewritten "
                "plan in .parqctl/), then run this again",
            )
        _check_paths(ws, plan)
    return plan


def _check_paths(ws: Workspace, plan: MigrationPlan) -> None:
    """Every interval's paths are what the layout derives (refused otherwise), checked
    up front by every step that acts, whichever intervals it touches."""
    for venue_id, interval, _ in plan.interval_states():
        try:
            venue = Venue.parse(venue_id)
        except ParqctlError:  # a venue parqctl cannot parse: not one it migrates
            continue
        record = IntervalPlan.of(plan, venue, interval)
        record.legacy_dir(ws.root)
        record.partition_dir(ws.root)


def save(ws: Workspace, plan: MigrationPlan) -> None:
    """Write the plan, then parqctl's own copy of it: the copy tells, after another tool
    (the collector's ``yf-parqed-migrate``) rewrote the plan from its own model, which
    records it dropped, and lets ``migrate plan --restore`` put them back."""
    plan.raw["generated_at"] = now_iso()
    ws.save_migration_plan(plan)
    path = confined(ws.root, own_copy_path(ws))
    path.parent.mkdir(exist_ok=True)
    write_json(path, plan.raw)


def own_copy_path(ws: Workspace) -> Path:
    return ws.state_dir / OWN_COPY


def records_lost(ws: Workspace, plan: MigrationPlan) -> list[str]:
    """``venue interval`` of each interval whose parqctl records parqctl's copy has and the
    plan no longer has. A crash between the two writes cannot cause this: both copies of
    an interval parqctl wrote carry its records."""
    path = own_copy_path(ws)
    if not path.is_file():
        return []
    try:
        own = MigrationPlan.from_json(path, load_json(path))
    except MetadataError:
        return []
    kept = {(v, iv) for v, iv, r in plan.interval_states() if isinstance(r.get(OURS), dict)}
    return [
        f"{v} {iv}"
        for v, iv, record in own.interval_states()
        if isinstance(record.get(OURS), dict) and (v, iv) not in kept
    ]


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
        homes = [legacy_dataset_dir(Path(), self.interval, home) for home in LEGACY_HOMES]
        return root / self._derived_path(root, "legacy_path", homes)

    def partition_dir(self, root: Path) -> Path:
        expected = partition_dataset_dir(Path(), self.venue, self.interval)
        return root / self._derived_path(root, "partition_path", [expected])

    @property
    def reads_collector_home(self) -> bool:
        """Whether the legacy files migrate from where the collector itself reads them."""
        return self.raw.get("legacy_path") == legacy_dataset_dir(Path(), self.interval).as_posix()

    def months(self, root: Path, ticker: str, key: str) -> list[int]:
        """A ticker record's month list (``created``, ``merged``), refused when malformed."""
        value = (self.tickers.get(ticker) or {}).get(key)
        try:
            return mo.expand(value if isinstance(value, str) else None)
        except ValueError:
            raise MetadataError(
                f"{root / MIGRATION_PLAN_FILE}: {self.describe()} ticker {ticker!r} {key} is "
                f"{value!r}, not a list of months such as 2024-01..2024-12",
                "fix that entry by hand; nothing was changed",
            ) from None

    def _derived_path(self, root: Path, key: str, allowed: list[Path]) -> PurePosixPath:
        """The plan's path entry, refused unless it is what the layout derives for the
        venue and interval (for legacy files: one of the legacy homes).

        Run, verify, rollback and finalize read, write and delete below these directories:
        a hand-edited or hostile plan must not point them anywhere else.
        """
        value = self.raw.get(key)
        choices = [p.as_posix() for p in allowed]
        if value not in choices:
            raise MetadataError(
                f"{root / MIGRATION_PLAN_FILE}: {self.describe()} {key} is {value!r}, "
                f"not {' or '.join(repr(c) for c in choices)}",
                "fix that entry by hand, or recreate the interval's plan with "
                "`parqctl migrate plan --force`",
            )
        return PurePosixPath(value)

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
    def activating(self) -> dict[str, Any] | None:
        """The write-ahead record of an activation that has not completed (a crash)."""
        return self.ours.get("activating")

    @property
    def routed(self) -> bool:
        """Whether activation has begun: tickers.json may route the collector here."""
        return bool(self.activation or self.activating)

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


def require_no_interrupted_rollback(interval: IntervalPlan, action: str) -> None:
    if interval.ours.get("rolling_back"):
        raise ParqctlError(
            f"the rollback of {interval.describe()} was interrupted; refusing to {action}",
            f"finish it with `parqctl migrate rollback --venue {interval.venue.id} --interval "
            f"{interval.interval}`",
        )


def require_not_activated(interval: IntervalPlan, action: str) -> None:
    require_no_interrupted_rollback(interval, action)
    if interval.activating and not interval.activation:
        raise ParqctlError(
            f"{interval.describe()} has an interrupted activation; refusing to {action}",
            f"complete it with `parqctl migrate activate --venue {interval.venue.id} --interval "
            f"{interval.interval}` or undo it with `parqctl migrate rollback`",
        )
    if interval.activation:
        raise ParqctlError(
            f"{interval.describe()} is already active in the partitioned layout; refusing to {action}",
            f"the collector writes there now; `parqctl migrate rollback --venue {interval.venue.id} "
            f"--interval {interval.interval}` first",
        )
