"""``migrate dry-run``: what a run would write, merge and refuse, writing nothing at all.

No lock is taken and no audit record is written: a dry run leaves the workspace exactly
as it was (a test compares the whole tree).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.jobs import CancelToken, ProgressCallback, ProgressTracker
from core.migration import checkpoint, pool
from core.migration.legacy import list_legacy
from core.store.layout import Venue, ticker_partition_dir
from core.store.workspace import Workspace


@dataclass
class IntervalDryRun:
    venue: str
    interval: str
    outcomes: list = field(default_factory=list)  # worker.TickerOutcome, sorted by ticker
    strays: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list:
        return [o for o in self.outcomes if not o.ok]


def dry_run(
    ws: Workspace,
    venue: Venue,
    intervals: list[str] | None = None,
    *,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    token: CancelToken | None = None,
) -> list[IntervalDryRun]:
    from core.migration.worker import TickerJob, stage_ticker

    plan = checkpoint.load(ws)
    selected = checkpoint.planned_intervals(plan, venue, intervals)
    workers = workers or pool.default_workers()
    results = []
    with pool.start(workers) as executor:
        for interval in selected:
            files, strays = list_legacy(interval.legacy_dir(ws.root))
            dataset = interval.partition_dir(ws.root)
            jobs = [
                TickerJob(
                    f.ticker,
                    str(f.path),
                    str(ticker_partition_dir(dataset, f.ticker)),
                    limits=ws.config.limits,
                )
                for f in files
            ]
            out = IntervalDryRun(venue.id, interval.interval, strays=[str(p) for p in strays])
            tracker = ProgressTracker(
                f"dry-run {interval.describe()}", len(jobs), "tickers", progress
            )
            for outcome in pool.run_jobs(executor, stage_ticker, jobs, token, workers * 4):
                out.outcomes.append(outcome)
                tracker.advance(1, rows=outcome.rows, message=outcome.ticker)
            out.outcomes.sort(key=lambda o: o.ticker)
            results.append(out)
    return results
