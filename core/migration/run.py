"""``migrate run``: batches of tickers staged by worker processes, promoted, checkpointed.

Per batch (see ``durability`` for why this order is safe): the workers stage and check
each ticker; one filesystem flush; a write-ahead checkpoint marks the batch's tickers
``promoting`` with the months they create; the staged trees are renamed into place; a
second flush; a checkpoint marks them ``done`` with a fingerprint of their files. A
crash anywhere is resumed by running again: ``done`` tickers whose legacy file and
partition files are unchanged are skipped, everything else is staged afresh.
"""

from __future__ import annotations

import contextlib
import errno
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.disk.watermarks import Level, disk_status
from core.errors import DiskSpaceError, ParqctlError
from core.jobs import CancelToken, ProgressCallback, ProgressTracker
from core.migration import checkpoint, pool, staging
from core.migration import months as mo
from core.migration.checkpoint import IntervalPlan
from core.migration.durability import FilesystemFlush, require_same_filesystem
from core.migration.estimate import Projection, project_remaining
from core.migration.failpoints import failpoint
from core.migration.legacy import LegacyFile, list_legacy
from core.safety import audit, run_lock
from core.safety.containment import require_inside
from core.store.layout import Venue, ticker_partition_dir
from core.store.metadata import MigrationPlan
from core.store.workspace import Workspace

DEFAULT_BATCH_SIZE = 100


@dataclass(frozen=True)
class TickerFailure:
    ticker: str
    kind: str  # unreadable, invalid, conflict, mismatch
    message: str
    path: str = ""
    conflicts: list[dict] = field(default_factory=list)


@dataclass
class IntervalRun:
    venue: str
    interval: str
    tickers: int = 0  # legacy files found
    skipped: int = 0  # already done and unchanged
    migrated: int = 0
    rows: int = 0
    files: int = 0
    merged_files: int = 0
    adopted_rows: int = 0
    collapsed: dict[str, list[str]] = field(default_factory=dict)  # ticker -> timestamps
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    failures: list[TickerFailure] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)
    complete: bool = False


@dataclass
class RunResult:
    venue: str
    run_id: str
    intervals: list[IntervalRun] = field(default_factory=list)
    cancelled: bool = False
    elapsed_s: float = 0.0

    @property
    def failures(self) -> list[TickerFailure]:
        return [f for i in self.intervals for f in i.failures]


def run_migration(
    ws: Workspace,
    venue: Venue,
    intervals: list[str] | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    token: CancelToken | None = None,
) -> RunResult:
    """Migrate the planned intervals; returns what was done, failures included.

    Raises LockHeldError (lock held), DiskSpaceError (past the critical watermark at the
    start, at the block watermark during the run, or the disk
    filled: the batch in progress is dropped and the run can be resumed).
    """
    started = time.perf_counter()
    token = token or CancelToken()
    workers = workers or pool.default_workers()
    _selected_for_run(checkpoint.load(ws), venue, intervals)  # fail before locking
    with run_lock.hold(ws.root, "parqctl migrate run"):
        failpoint("locked")
        plan = checkpoint.load(ws, fresh=True)
        selected = _selected_for_run(plan, venue, intervals)
        _refuse_past_critical(ws)
        staging.clear_stale(ws.root)
        area = staging.new_area(ws.root)
        result = RunResult(venue.id, area.name)
        audit.append(
            ws.root,
            "migrate.run",
            "started",
            venue=venue.id,
            intervals=[i.interval for i in selected],
            run_id=result.run_id,
            batch_size=batch_size,
            workers=workers,
        )
        outcome = "failed"
        try:
            with pool.start(workers) as executor:
                projection = project_remaining(
                    ws, selected, executor, workers, area / "sample", token
                )
                staging.discard(area / "sample")
                _refuse_projected_past_critical(ws, projection)
                if projection.measured_now:  # kept, so a resumed run need not measure again
                    checkpoint.save(ws, plan)
                for interval in selected:
                    batches = _Batches(ws, plan, interval, area, batch_size, result.run_id)
                    result.intervals.append(batches.result)  # counted even if the run stops
                    batches.run(executor, workers, token, progress)
                    if token.cancelled:
                        result.cancelled = True
                        break
            outcome = "cancelled" if result.cancelled else "ok"
            if result.failures and not result.cancelled:
                outcome = f"completed with {len(result.failures)} failures"
        except DiskSpaceError as exc:
            outcome = f"refused: {exc.message}"
            raise
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                outcome = "disk full"
                raise DiskSpaceError(
                    f"the disk is full ({exc.strerror}): the batch in progress was dropped",
                    "free space, then run `parqctl migrate run` again to resume",
                ) from None
            outcome = f"failed: {exc.strerror or exc}"
            raise ParqctlError(
                f"cannot write {exc.filename or 'the partitioned tree'}: {exc.strerror or exc}; "
                "the batch in progress was dropped",
                "fix the cause (permissions, a read-only or failing disk), then run "
                "`parqctl migrate run` again to resume",
            ) from None
        finally:
            staging.discard(area)
            result.elapsed_s = time.perf_counter() - started
            _audit_quietly(ws.root, outcome, result)
    return result


def _selected_for_run(
    plan: MigrationPlan, venue: Venue, intervals: list[str] | None
) -> list[IntervalPlan]:
    selected = checkpoint.planned_intervals(plan, venue, intervals)
    for interval in selected:
        checkpoint.require_not_activated(interval, "migrate it again")
    return selected


def _refuse_past_critical(ws: Workspace) -> None:
    """A run starts only below the critical watermark (it then stops at block)."""
    status = disk_status(ws.root, ws.config.watermarks)
    if status.level >= Level.CRITICAL:
        raise DiskSpaceError(
            f"the disk holding {ws.root} is {status.percent_used:.1f}% full, past the critical "
            f"watermark ({ws.config.watermarks.critical:g}%)",
            "free space first; `parqctl migrate estimate` tells how much the copy needs",
        )


def _refuse_projected_past_critical(ws: Workspace, projection: Projection) -> None:
    """Refuse before the first write when the output of the tickers left to migrate would
    take the disk past the critical watermark."""
    marks = ws.config.watermarks
    status = disk_status(ws.root, marks)
    after = status.percent_after(projection.bytes)
    if projection.bytes <= status.free and after < marks.critical:
        return
    ratios = ", ".join(
        f"{iv} x{r:.2f} ({projection.sources[iv]})" for iv, r in projection.ratios.items()
    )
    raise DiskSpaceError(
        f"not enough disk space to migrate: {_mib(status.free)} free at {ws.root}, and the "
        f"{projection.tickers} tickers left need about {_mib(projection.bytes)} "
        f"({_mib(projection.legacy_bytes)} of legacy files, measured output per legacy byte "
        f"{ratios}), which would take the disk from {status.percent_used:.1f}% to "
        f"{after:.1f}% used, past the critical watermark ({marks.critical:g}%)",
        "free that much space first, or migrate one interval at a time with --interval; "
        "`parqctl migrate estimate` measures the projection in detail",
    )


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _audit_quietly(root: Path, outcome: str, result: RunResult) -> None:
    # On a full disk the audit line may not fit; the error being raised says so already.
    with contextlib.suppress(OSError):
        audit.append(
            root,
            "migrate.run",
            outcome,
            venue=result.venue,
            run_id=result.run_id,
            migrated=sum(i.migrated for i in result.intervals),
            failures=[f.ticker for f in result.failures][:100],
            elapsed_s=round(result.elapsed_s, 2),
        )


class _Batches:
    """One interval's run: decides what to stage, then stages, promotes and checkpoints."""

    def __init__(
        self,
        ws: Workspace,
        plan: MigrationPlan,
        interval: IntervalPlan,
        area: Path,
        batch_size: int,
        run_id: str,
    ) -> None:
        self.ws, self.plan, self.interval = ws, plan, interval
        self.batch_size, self.run_id = batch_size, run_id
        self.staging = area / interval.interval
        self.staging.mkdir()
        self.dataset = interval.partition_dir(ws.root)
        self.result = IntervalRun(interval.venue.id, interval.interval)
        self.legacy: list[LegacyFile] = []

    def run(
        self,
        executor,
        workers: int,
        token: CancelToken,
        progress: ProgressCallback | None,
    ) -> IntervalRun:
        from core.migration.worker import stage_ticker

        files, strays = list_legacy(self.interval.legacy_dir(self.ws.root))
        self.legacy = files
        self.result.tickers = len(files)
        self.result.strays = [str(p) for p in strays]
        require_inside(self.ws, self.dataset, "write partitions into")
        self.dataset.mkdir(parents=True, exist_ok=True)
        require_same_filesystem(self.staging, self.dataset)
        jobs = self._jobs(files)
        self.interval.ours["run_id"] = self.run_id
        self.interval.ours["batch_size"] = self.batch_size
        tracker = ProgressTracker(
            f"migrate {self.interval.describe()}", len(jobs), "tickers", progress
        )
        batch = []
        with FilesystemFlush(self.staging) as flush:
            for outcome in pool.run_jobs(executor, stage_ticker, jobs, token, workers * 4):
                failpoint("ticker-staged")
                if outcome.ok:
                    batch.append(outcome)
                else:
                    self._record_failure(outcome)
                tracker.advance(1, rows=outcome.rows, message=outcome.ticker)
                if len(batch) >= self.batch_size:
                    self._promote(batch, flush)
                    batch = []
                    if _at_block(self.ws):
                        token.cancel()
                        raise DiskSpaceError(
                            "the disk reached the block watermark during the migration",
                            "free space, then run `parqctl migrate run` again to resume",
                        )
            self._promote(batch, flush)
        self.result.complete = self.interval.status == checkpoint.COMPLETE
        return self.result

    def _jobs(self, files: list[LegacyFile]):
        from core.migration.worker import TickerJob

        jobs = []
        for legacy in files:
            record = self.interval.tickers.get(legacy.ticker) or {}
            ticker_dir = ticker_partition_dir(self.dataset, legacy.ticker)
            state = record.get("state")
            tree_same = state == "done" and staging.tree_fingerprint(ticker_dir) == record.get(
                "tree"
            )
            if tree_same and legacy.unchanged(record.get("legacy")):
                self.result.skipped += 1
                continue
            created = self.interval.months(self.ws.root, legacy.ticker, "created")
            if state == "promoting":
                own = _still_ours(ticker_dir, created, record)
            else:
                own = created if tree_same else []
            jobs.append(
                TickerJob(
                    legacy.ticker,
                    str(legacy.path),
                    str(ticker_dir),
                    str(self.staging / f"ticker={legacy.ticker}"),
                    tuple(own),
                    limits=self.ws.config.limits,
                )
            )
        return jobs

    def _record_failure(self, outcome) -> None:
        failure = TickerFailure(
            outcome.ticker, outcome.kind, outcome.message, outcome.path, outcome.conflicts
        )
        self.result.failures.append(failure)
        self.interval.tickers[outcome.ticker] = {
            "state": "failed",
            "kind": outcome.kind,
            "error": outcome.message,
            "path": outcome.path,
            "conflicts": outcome.conflicts,
            "legacy": {"size": outcome.legacy_size, "mtime_ns": outcome.legacy_mtime_ns},
            "run": self.run_id,
            "at": checkpoint.now_iso(),
        }

    def _promote(self, batch: list, flush: FilesystemFlush) -> None:
        """Flush the staged files, record intent, rename into place, flush, checkpoint."""
        if not batch:
            self._checkpoint()
            return
        staged = (  # listed only where each file is fsynced (no syncfs)
            self.staging / f"ticker={o.ticker}" / mo.relative_file(f.month)
            for o in batch
            for f in o.files
        )
        flush.flush(files=staged)
        failpoint("batch-flushed")
        for o in batch:
            self.interval.tickers[o.ticker] = {
                "state": "promoting",
                "created": mo.compact([f.month for f in o.files if f.action != "merge"]),
                "merged": mo.compact([f.month for f in o.files if f.action == "merge"]),
                "own_files": self._own_files(o),
                "run": self.run_id,
                "at": checkpoint.now_iso(),
            }
        self._checkpoint()
        failpoint("batch-intent-recorded")
        changed: list[Path] = []
        whole_trees: set[str] = set()  # tickers promoted by one rename of the staged tree
        for o in batch:
            run_lock.ensure_still_held(self.ws.root)
            staged_dir = self.staging / f"ticker={o.ticker}"
            final_dir = ticker_partition_dir(self.dataset, o.ticker)
            require_inside(self.ws, final_dir, "write partitions into")
            if staged_dir.is_dir():
                promotion = staging.promote(
                    staged_dir,
                    final_dir,
                    list_changes=not flush.whole_filesystem,
                )
                changed += promotion.directories
                if promotion.whole_tree:
                    whole_trees.add(o.ticker)
            failpoint("ticker-promoted")
        flush.flush(directories=sorted(set(changed)))
        failpoint("batch-promoted")
        stamp = checkpoint.now_iso()
        for o in batch:
            self.interval.tickers[o.ticker] = self._done_record(o, stamp, o.ticker in whole_trees)
            self._count(o)
        self._checkpoint()
        failpoint("batch-checkpointed")

    def _own_files(self, o) -> str:
        """Per created month (in ``created`` order), the fingerprints of the files that are
        this run's to replace on resume: the staged file, and for a ``replace`` the file it
        replaces (an earlier run's output). Any other file found there on resume is the
        collector's, written after a crash, and is merged instead."""
        final_dir = ticker_partition_dir(self.dataset, o.ticker)
        entries = []
        for f in sorted((f for f in o.files if f.action != "merge"), key=lambda f: f.month):
            prints = [o.staged_prints[f.month]]
            if f.action == "replace":
                prints.append(staging.file_fingerprint(final_dir / mo.relative_file(f.month)))
            entries.append("|".join(p for p in prints if p))
        return ",".join(entries)

    def _done_record(self, o, stamp: str, whole_tree: bool) -> dict:
        record = {
            "state": "done",
            "legacy": {
                "size": o.legacy_size,
                "mtime_ns": o.legacy_mtime_ns,
                "rows": o.legacy_rows,
                "digest": o.legacy_digest,
            },
            "rows": o.rows,
            "partition_rows": o.partition_rows,
            "created": mo.compact([f.month for f in o.files if f.action != "merge"]),
            "merged": mo.compact([f.month for f in o.files if f.action == "merge"]),
            "tree": o.staged_tree
            if whole_tree
            else staging.tree_fingerprint(ticker_partition_dir(self.dataset, o.ticker)),
            "run": self.run_id,
            "at": stamp,
        }
        if o.collapsed:
            record["collapsed_duplicates"] = o.collapsed
        if o.extra_columns:
            record["extra_columns"] = o.extra_columns
        if o.cast_columns or o.added_columns:
            record["normalised_columns"] = {"cast": o.cast_columns, "added": o.added_columns}
        if o.adopted_rows:
            record["adopted_rows"] = o.adopted_rows
        return record

    def _count(self, o) -> None:
        r = self.result
        r.migrated += 1
        r.rows += o.rows
        r.files += len(o.files)
        r.merged_files += sum(1 for f in o.files if f.action == "merge")
        r.adopted_rows += o.adopted_rows
        if o.collapsed:
            r.collapsed[o.ticker] = o.collapsed
        if o.extra_columns:
            r.extra_columns[o.ticker] = o.extra_columns

    def _checkpoint(self) -> None:
        self.interval.update_counters([f.ticker for f in self.legacy])
        checkpoint.save(self.ws, self.plan)


def _still_ours(ticker_dir: Path, months: list[int], record: dict) -> list[int]:
    """The created months of a ticker whose promotion a crash interrupted that still hold
    a file this run recorded as its own (or none at all); a file with another fingerprint
    was written since, by the collector, and is merged by (stock, date), never replaced.
    A record without fingerprints (an older plan) claims nothing."""
    entries = (record.get("own_files") or "").split(",")
    if len(entries) != len(months):
        return []
    return [
        month
        for month, entry in zip(months, entries, strict=True)
        if staging.file_fingerprint(ticker_dir / mo.relative_file(month)) in entry.split("|")
    ]


def _at_block(ws: Workspace) -> bool:
    return disk_status(ws.root, ws.config.watermarks).level >= Level.BLOCK
