"""``migrate verify``: every ticker's partitioned rows against its legacy file.

Per ticker (in the workers): schema, row count, no duplicate timestamps, the same set of
sessions, and the content digest over the legacy file's time range. The result, with a
fingerprint of each legacy file (size, mtime, content digest) and of its partition
files, is recorded in the plan: activation requires it and that nothing changed since.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from core.jobs import CancelToken, JobCancelled, ProgressCallback, ProgressTracker
from core.migration import checkpoint, pool
from core.migration.checkpoint import IntervalPlan
from core.migration.legacy import list_legacy
from core.safety import audit, run_lock
from core.store.layout import Venue, ticker_partition_dir
from core.store.metadata import MigrationPlan
from core.store.workspace import Workspace

LEGACY_GONE = "the legacy file is gone"  # the problem of a done ticker without its legacy file

MAX_PROBLEMS_KEPT = 10


@dataclass(frozen=True)
class TickerVerdict:
    ticker: str
    problems: list[str]


@dataclass
class IntervalVerify:
    venue: str
    interval: str
    tickers: int = 0
    passed: int = 0
    rows: int = 0
    files: int = 0
    failures: list[TickerVerdict] = field(default_factory=list)
    verified_at: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class VerifyResult:
    venue: str
    intervals: list[IntervalVerify] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.intervals)


def verify_migration(
    ws: Workspace,
    venue: Venue,
    intervals: list[str] | None = None,
    *,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    token: CancelToken | None = None,
) -> VerifyResult:
    checkpoint.planned_intervals(checkpoint.load(ws), venue, intervals)  # fail before locking
    with run_lock.hold(ws.root, "parqctl migrate verify"):
        plan = checkpoint.load(ws, fresh=True)
        selected = checkpoint.planned_intervals(plan, venue, intervals)
        result = verify_locked(ws, plan, selected, workers, progress, token)
    return result


def verify_locked(
    ws: Workspace,
    plan: MigrationPlan,
    selected: list[IntervalPlan],
    workers: int | None,
    progress: ProgressCallback | None,
    token: CancelToken | None,
) -> VerifyResult:
    """Verify with the run lock already held; records the verdicts in the plan."""
    started = time.perf_counter()
    token = token or CancelToken()
    workers = workers or pool.default_workers()
    result = VerifyResult(selected[0].venue.id if selected else "")
    with pool.start(workers) as executor:
        for interval in selected:
            result.intervals.append(
                _verify_interval(ws, interval, executor, workers, progress, token)
            )
            checkpoint.save(ws, plan)
    result.elapsed_s = time.perf_counter() - started
    for i in result.intervals:
        audit.append(
            ws.root,
            "migrate.verify",
            "passed" if i.ok else "failed",
            venue=i.venue,
            interval=i.interval,
            tickers=i.tickers,
            failures=[f.ticker for f in i.failures][:100],
        )
    return result


def _verify_interval(
    ws: Workspace,
    interval: IntervalPlan,
    executor,
    workers: int,
    progress: ProgressCallback | None,
    token: CancelToken,
) -> IntervalVerify:
    from core.migration.worker import VerifyJob, verify_ticker

    files, _ = list_legacy(interval.legacy_dir(ws.root))
    dataset = interval.partition_dir(ws.root)
    out = IntervalVerify(interval.venue.id, interval.interval, tickers=len(files))
    present = {f.ticker for f in files}
    for ticker, record in interval.tickers.items():
        if ticker not in present and record.get("state") == "done":
            out.failures.append(TickerVerdict(ticker, [LEGACY_GONE]))
    jobs = [
        VerifyJob(
            f.ticker,
            str(f.path),
            str(ticker_partition_dir(dataset, f.ticker)),
            limits=ws.config.limits,
        )
        for f in files
    ]
    tracker = ProgressTracker(f"verify {interval.describe()}", len(jobs), "tickers", progress)
    stamp = checkpoint.now_iso()
    for outcome in pool.run_jobs(executor, verify_ticker, jobs, token, workers * 4):
        record = interval.tickers.setdefault(outcome.ticker, {})
        record["verify"] = {
            "passed": outcome.passed,
            "problems": outcome.problems[:MAX_PROBLEMS_KEPT],
            "legacy": {
                "size": outcome.legacy_size,
                "mtime_ns": outcome.legacy_mtime_ns,
                "digest": outcome.legacy_digest,
            },
            "tree": outcome.tree,
            "at": stamp,
        }
        if outcome.passed:
            out.passed += 1
        else:
            out.failures.append(TickerVerdict(outcome.ticker, outcome.problems))
        out.rows += outcome.partition_rows
        out.files += outcome.files
        tracker.advance(1, rows=outcome.rows, message=outcome.ticker)
    if token.cancelled:
        raise JobCancelled("verify cancelled", "run `parqctl migrate verify` again")
    out.failures.sort(key=lambda f: f.ticker)
    out.verified_at = stamp if out.ok and out.tickers else None
    interval.ours["verify"] = {
        "at": stamp,
        "passed": out.ok and out.tickers > 0,
        "tickers": out.tickers,
        "failed": len(out.failures),
    }
    interval.set_verified(out.verified_at)
    interval.touch()
    return out
