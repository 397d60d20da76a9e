"""``migrate status``: the plan, per venue and interval, as typed records.

Two words describe an interval and are never mixed up: its ``stage`` (parqctl's: how far
the migration got) and the collector's ``status`` field of the plan, shown as such. The
ticker counts are over the legacy files there are now, so done + failed + in promotion +
pending is the number of legacy files; a record of a ticker whose legacy file has gone
since (quarantined, removed) is counted apart, in ``gone``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import ParqctlError
from core.migration import checkpoint
from core.migration.checkpoint import IntervalPlan
from core.migration.estimate import RATIO_KEY
from core.migration.legacy import list_legacy
from core.store.layout import Venue
from core.store.workspace import Workspace


@dataclass
class IntervalStatus:
    venue: str
    interval: str
    status: str  # the collector's: pending, migrating, complete
    # parqctl's: planned, migrating, migrated, verified, activating, active, rolling back,
    # finalizing, finalized (activating, rolling back, finalizing: a crash stopped that step)
    stage: str
    jobs_total: int
    jobs_completed: int
    legacy_rows: int | None
    partition_rows: int | None
    resume_token: str | None
    verified_at: str | None
    verification_method: str | None
    done: int = 0
    failed: int = 0
    promoting: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    verify: dict[str, Any] | None = None
    activated_at: str | None = None
    legacy_deleted_at: str | None = None
    updated_at: str | None = None
    interrupted: str | None = None  # the step a crash stopped: run the hint to finish it
    interrupted_hint: str | None = None
    # parqctl keeps no records for this interval: what is shown is another tool's
    records_lost_hint: str | None = None
    collector_only: bool = False
    legacy_files: int | None = None  # legacy files there are now (None: not listed)
    gone: list[str] = field(default_factory=list)  # recorded tickers with no legacy file now
    estimated_at: str | None = None  # when `migrate estimate` last measured the output

    @property
    def tickers(self) -> int:
        """The tickers the counts add up to: the legacy files, or the plan's total."""
        if self.collector_only or self.legacy_files is None:
            return self.jobs_total
        return self.legacy_files

    @property
    def pending(self) -> int:
        if self.collector_only:  # the collector's own counters are all there is
            return max(self.jobs_total - self.jobs_completed, 0)
        return max(self.tickers - self.done - self.failed - self.promoting, 0)


def migration_status(ws: Workspace, venue: Venue | None = None) -> list[IntervalStatus]:
    plan = checkpoint.load(ws, rewritten_ok=True)
    lost = set(checkpoint.records_lost(ws, plan))
    out = []
    for record in plan.raw.get("venues", []):
        try:
            v = Venue.parse(str(record.get("id", "")))
        except ParqctlError:  # a venue id parqctl cannot parse: not one it migrates
            continue
        if venue is not None and v != venue:
            continue
        for name in record.get("intervals", {}):
            status = _status(ws, IntervalPlan.of(plan, v, name))
            if f"{v.id} {name}" in lost:
                status.stage = "records lost"
                status.records_lost_hint = (
                    f"rewritten by {plan.raw.get('created_by')!r} at "
                    f"{plan.raw.get('generated_at')}, without parqctl's records: the fields "
                    "shown are that tool's; `parqctl migrate plan --restore` puts them back"
                )
            out.append(status)
    return out


def _status(ws: Workspace, interval: IntervalPlan) -> IntervalStatus:
    raw = interval.raw
    ours = raw.get(checkpoint.OURS) or {}
    tickers = ours.get("tickers") or {}
    legacy = None if ours.get("legacy_deleted") else _legacy_tickers(ws, interval)
    gone = sorted(t for t in tickers if legacy is not None and t not in legacy)
    current = {t: r for t, r in tickers.items() if t not in gone}
    states = [r.get("state") for r in current.values()]
    jobs, totals = raw.get("jobs") or {}, raw.get("totals") or {}
    verification = raw.get("verification") or {}
    activation = ours.get("activation") or {}
    deleted = ours.get("legacy_deleted") or {}
    result = IntervalStatus(
        venue=interval.venue.id,
        interval=interval.interval,
        status=str(raw.get("status", "")),
        stage="planned",
        jobs_total=int(jobs.get("total") or 0),
        jobs_completed=int(jobs.get("completed") or 0),
        legacy_rows=totals.get("legacy_rows"),
        partition_rows=totals.get("partition_rows"),
        resume_token=raw.get("resume_token"),
        verified_at=verification.get("verified_at"),
        verification_method=verification.get("method"),
        done=states.count("done"),
        failed=states.count("failed"),
        promoting=states.count("promoting"),
        failures=[
            {"ticker": t, "kind": r.get("kind"), "error": r.get("error"), "path": r.get("path")}
            for t, r in sorted(current.items())
            if r.get("state") == "failed"
        ],
        verify=ours.get("verify"),
        activated_at=activation.get("at"),
        legacy_deleted_at=deleted.get("at"),
        updated_at=ours.get("updated_at"),
        legacy_files=None if legacy is None else len(legacy),
        gone=gone,
        estimated_at=_estimated_at(ours),
    )
    if checkpoint.OURS not in raw:  # planned or rewritten by the collector's own tool
        result.collector_only = True
        result.done = result.jobs_completed
        result.stage = f"{result.status} (collector's migration tool)"
        return result
    _interruption(interval, result)
    if result.interrupted:
        return result
    if deleted:
        result.stage = "finalized"
    elif activation:
        result.stage = "active"
    elif result.verified_at:
        result.stage = "verified"
    elif result.status == checkpoint.COMPLETE:
        result.stage = "migrated"
    elif states:
        result.stage = "migrating"
    return result


def _legacy_tickers(ws: Workspace, interval: IntervalPlan) -> set[str] | None:
    """The tickers with a legacy file now; None when that cannot be told (the counts are
    then the plan's own)."""
    try:
        return {f.ticker for f in list_legacy(interval.legacy_dir(ws.root))[0]}
    except (OSError, ParqctlError):
        return None


def _estimated_at(ours: dict[str, Any]) -> str | None:
    record = ours.get(RATIO_KEY) or {}
    return record.get("at") if record.get("measured_by") == "estimate" else None


def _interruption(interval: IntervalPlan, result: IntervalStatus) -> None:
    """A step whose write-ahead record is still in the plan: a crash stopped it."""
    ours = interval.raw.get(checkpoint.OURS) or {}
    where = f"--venue {interval.venue.id} --interval {interval.interval}"
    deleted = ours.get("legacy_deleted") or {}
    if ours.get("rolling_back"):
        result.stage, result.interrupted = "rolling back", "rollback"
        result.interrupted_hint = f"parqctl migrate rollback {where}"
    elif ours.get("activating") and not ours.get("activation"):
        result.stage, result.interrupted = "activating", "activate"
        result.interrupted_hint = (
            f"parqctl migrate activate {where} (or `parqctl migrate rollback {where}`)"
        )
    elif ours.get("legacy_deleting") or deleted.get("complete") is False:
        result.stage, result.interrupted = "finalizing", "finalize"
        result.interrupted_hint = f"parqctl migrate finalize --delete-legacy {where}"
