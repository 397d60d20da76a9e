"""The request loop fetch and backfill share: ask Yahoo, keep what was asked for, merge it
in by (stock, date), write it where the collector reads it, record it.

The order of things is what makes it safe:

1. the disk is checked (refused at the critical watermark) before anything is downloaded;
2. the first request is made before the run lock is taken: when Yahoo cannot be reached
   the command stops there, having written nothing at all (not even a lock or an audit
   record), and says so in one line;
3. then the lock is held for the rest, metadata is read again under it, and each unit
   (the requests of one ticker and interval, or of one window) is written as soon as its
   requests are answered: a file at a time, atomically, the lock checked before each;
   tickers.json is saved after each unit; so an interrupted run (Ctrl-C, SIGTERM, or a
   SIGKILL) loses nothing it wrote and leaves no half-written bar file;
4. cancellation (a CancelToken) is looked at between requests and during every wait;
   what was fetched for the unit in progress is written before stopping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from core.disk.watermarks import Level, disk_status
from core.errors import DiskSpaceError, LockLostError, ParqctlError
from core.ingest import confirmed_empty
from core.ingest.normalize import normalize_history
from core.ingest.pacing import Pacer, RateLimitExhausted
from core.ingest.registry import record_bars
from core.ingest.store import MergePlan, merge_summary, plan_merge, write_merge
from core.ingest.yahoo import YahooRefused, YahooSource, YahooUnreachable
from core.jobs import JobCancelled, ProgressCallback, ProgressTracker
from core.safety import audit, run_lock
from core.store.bars import BAR_SCHEMA
from core.store.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd

EXIT_YAHOO = 5  # Yahoo unreachable, or still rate limited after the last attempt


class YahooUnavailableError(ParqctlError):
    """Yahoo could not be asked (no answer, or "too many requests" to the last attempt)."""

    exit_code = EXIT_YAHOO


@dataclass(frozen=True)
class Target:
    """A run of missing sessions a request is for (days inclusive)."""

    start: date
    end: date
    sessions: int
    recoverable_until: date | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "sessions": self.sessions,
            "recoverable_until": _iso(self.recoverable_until),
        }


@dataclass(frozen=True)
class Request:
    ticker: str
    interval: str
    start: date  # the window asked for: start <= day < end
    end: date
    targets: tuple[Target, ...] | None = None  # keep only bars on these days; None: all

    @property
    def urgency(self) -> date | None:
        days = [t.recoverable_until for t in self.targets or () if t.recoverable_until]
        return min(days) if days else None

    def as_dict(self) -> dict[str, Any]:
        record = {
            "ticker": self.ticker,
            "interval": self.interval,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }
        if self.targets is not None:
            record["gaps"] = [t.as_dict() for t in self.targets]
        return record


@dataclass
class Unit:
    """Requests whose bars are merged and written together (one ticker and interval)."""

    ticker: str
    interval: str
    requests: list[Request]


@dataclass
class UnitResult:
    ticker: str
    interval: str
    requests: int = 0  # answered
    fetched: int = 0  # bars Yahoo returned
    kept: int = 0  # of those, the bars on the days asked for
    merge: MergePlan | None = None
    written: bool = False
    quarantined: list[str] = field(default_factory=list)
    empty: list[Target] = field(default_factory=list)  # targets Yahoo had no bars for
    found: list[Target] = field(default_factory=list)  # targets it had bars for
    refused: list[str] = field(default_factory=list)  # Yahoo's own errors, per request
    error: str | None = None  # why nothing was written for it
    registered: bool = False  # a new tickers.json entry was made

    @property
    def added(self) -> int:
        return self.merge.added if self.merge and self.written else 0

    def as_dict(self) -> dict[str, Any]:
        merge = self.merge
        return {
            "ticker": self.ticker,
            "interval": self.interval,
            "requests": self.requests,
            "fetched": self.fetched,
            "kept": self.kept,
            "written": self.written,
            **merge_summary(merge),
            "quarantined": self.quarantined,
            "confirmed_empty": [t.as_dict() for t in self.empty],
            "filled": [t.as_dict() for t in self.found],
            "refused_by_yahoo": self.refused,
            "error": self.error,
            "registered": self.registered,
        }


@dataclass
class RunResult:
    dry_run: bool
    units: list[UnitResult] = field(default_factory=list)
    requests_planned: int = 0
    requests: int = 0  # answered (retries not counted)
    cancelled: bool = False
    stopped: str | None = None  # why the run stopped before the end (Yahoo, lock)
    elapsed_s: float = 0.0

    @property
    def added(self) -> int:
        return sum(u.merge.added for u in self.units if u.merge and (u.written or self.dry_run))

    @property
    def differing(self) -> int:
        return sum(u.merge.differing for u in self.units if u.merge)

    @property
    def errors(self) -> int:
        return sum(1 for u in self.units if u.error)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "requests_planned": self.requests_planned,
            "requests": self.requests,
            "rows_added": self.added,
            "differing": self.differing,
            "errors": self.errors,
            "cancelled": self.cancelled,
            "stopped": self.stopped,
            "elapsed_s": round(self.elapsed_s, 3),
            "units": [u.as_dict() for u in self.units],
        }


@dataclass
class Options:
    command: str  # "parqctl fetch", as the lock and the messages name it
    action: str = "ingest.fetch"  # the audit record's action
    dry_run: bool = False
    overwrite: bool = False
    record_empty: bool = False  # backfill: remember targets Yahoo had nothing for
    today: date = field(default_factory=date.today)
    reason: str = "replaced by parqctl fetch --overwrite"  # for quarantine


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def refuse_past_critical(ws: Workspace) -> None:
    """Nothing is downloaded when the disk is already at the critical watermark."""
    status = disk_status(ws.root, ws.config.watermarks)
    if status.level >= Level.CRITICAL:
        raise DiskSpaceError(
            f"the disk holding {ws.root} is {status.percent_used:.1f}% full, past the critical "
            f"watermark ({ws.config.watermarks.critical:g}%); nothing was downloaded",
            "free space first (`parqctl disk` shows where it went)",
        )


def run(
    ws: Workspace,
    units: list[Unit],
    source: YahooSource,
    pacer: Pacer,
    options: Options,
    *,
    progress: ProgressCallback | None = None,
) -> RunResult:
    """Ask for every unit's requests in order and write what comes back (see the module)."""
    result = RunResult(options.dry_run)
    result.requests_planned = sum(len(u.requests) for u in units)
    started = pacer.clock.monotonic()
    if not units:
        return result
    if not options.dry_run:
        refuse_past_critical(ws)
    first = units[0].requests[0]
    try:
        answer: Any = _ask(source, pacer, first)
    except YahooUnreachable as exc:
        raise YahooUnavailableError(
            f"cannot reach Yahoo Finance ({exc.reason}); nothing was changed"
        ) from None
    except RateLimitExhausted as exc:
        raise YahooUnavailableError(
            f"Yahoo Finance still answers 'too many requests' after {exc.attempts} attempts "
            f"({exc.reason}); nothing was changed",
            "wait a while, or lower [ingest] requests_per_minute in .parqctl/config.toml",
        ) from None
    except YahooRefused as exc:
        answer = exc
    tracker = ProgressTracker(
        options.command.removeprefix("parqctl "),
        result.requests_planned,
        "requests",
        progress,
        clock=pacer.clock.monotonic,
    )
    prefetched = {id(first): answer}
    if options.dry_run:
        _loop(ws, units, source, pacer, options, result, tracker, prefetched, lock=None)
        result.elapsed_s = pacer.clock.monotonic() - started
        return result
    outcome = "failed"
    try:
        with run_lock.hold(ws.root, options.command) as lock:
            fresh = Workspace(ws.root)  # metadata as it is now that the lock is ours
            _loop(fresh, units, source, pacer, options, result, tracker, prefetched, lock)
        outcome = _outcome(result)
    except ParqctlError as exc:
        outcome = f"failed: {exc.message}"
        raise
    except BaseException as exc:  # interrupted (a second Ctrl-C, SIGTERM), or a bug
        outcome = f"failed: {type(exc).__name__}"
        raise
    finally:
        result.elapsed_s = pacer.clock.monotonic() - started
        audit.append(ws.root, options.action, outcome, **_audit_details(result))
    return result


def _outcome(result: RunResult) -> str:
    if result.cancelled:
        return "cancelled"
    if result.stopped:
        return f"stopped: {result.stopped}"
    if result.errors:
        return f"completed with {result.errors} errors"
    return "ok"


AUDITED_UNITS = 200


def _audit_details(result: RunResult) -> dict[str, Any]:
    units = [
        {
            "ticker": u.ticker,
            "interval": u.interval,
            "requests": u.requests,
            "added": u.added,
            "differing": u.merge.differing if u.merge else 0,
            "overwritten": u.merge.overwritten if u.merge and u.written else 0,
            "files": len(u.merge.changes) if u.merge and u.written else 0,
            "quarantined": u.quarantined,
            "confirmed_empty": [f"{t.start}..{t.end}" for t in u.empty],
            "error": u.error,
        }
        for u in result.units
        if u.requests or u.error
    ]
    return {
        "requests_planned": result.requests_planned,
        "requests": result.requests,
        "rows_added": result.added,
        "differing": result.differing,
        "units": units[:AUDITED_UNITS],
        "units_not_listed": max(0, len(units) - AUDITED_UNITS),
        "elapsed_s": round(result.elapsed_s, 3),
    }


def _ask(source: YahooSource, pacer: Pacer, request: Request) -> pd.DataFrame:
    return pacer.call(
        lambda: source.history(request.ticker, request.interval, request.start, request.end)
    )


def _loop(
    ws: Workspace,
    units: list[Unit],
    source: YahooSource,
    pacer: Pacer,
    options: Options,
    result: RunResult,
    tracker: ProgressTracker,
    prefetched: dict[int, Any],
    lock: run_lock.RunLock | None,
) -> None:
    for unit in units:
        outcome = UnitResult(unit.ticker, unit.interval)
        result.units.append(outcome)
        tables: list[pa.Table] = []
        stop: str | None = None
        for request in unit.requests:
            try:
                answer = prefetched.pop(id(request), None)
                if answer is None:
                    answer = _ask(source, pacer, request)
            except YahooRefused as exc:
                answer = exc
            except JobCancelled:
                result.cancelled = True
                break
            except YahooUnreachable as exc:
                stop = f"cannot reach Yahoo Finance ({exc.reason})"
                break
            except RateLimitExhausted as exc:
                stop = (
                    f"Yahoo Finance still answers 'too many requests' after {exc.attempts} "
                    f"attempts ({exc.reason})"
                )
                break
            result.requests += 1
            outcome.requests += 1
            if isinstance(answer, YahooRefused):
                outcome.refused.append(
                    f"{request.start}..{request.end}: Yahoo answered: {answer.reason}"
                )
                continue
            table = normalize_history(answer, unit.ticker)
            outcome.fetched += table.num_rows
            table = _kept(table, request, outcome)
            outcome.kept += table.num_rows
            tables.append(table)
        if not outcome.requests:  # stopped before its first answer: never asked
            result.units.pop()
            result.stopped = result.stopped or stop
            return
        try:
            _finish_unit(ws, unit, tables, options, outcome, lock)
        except (LockLostError, DiskSpaceError):
            raise
        except ParqctlError as exc:
            outcome.error = exc.one_line()
        tracker.advance(outcome.requests, rows=outcome.added, message=_progress_note(unit, outcome))
        if stop is not None:
            result.stopped = stop
            return
        if result.cancelled:
            return


def _progress_note(unit: Unit, outcome: UnitResult) -> str:
    first, last = unit.requests[0].start, unit.requests[-1].end - timedelta(days=1)
    note = f"{unit.ticker} {unit.interval} {first}..{last}"
    if outcome.error:
        return f"{note}: not written ({outcome.error})"
    if outcome.empty and not outcome.found:
        return f"{note}: no bars (confirmed empty)"
    return f"{note}: {outcome.kept:,} bars, {outcome.added:,} new"


def _kept(table: pa.Table, request: Request, outcome: UnitResult) -> pa.Table:
    """The bars on the days the request is for; each target marked found or empty."""
    if request.targets is None:
        return table
    days = pc.cast(table["date"], pa.date32()) if table.num_rows else None
    masks = []
    for target in request.targets:
        if days is None:
            outcome.empty.append(target)
            continue
        mask = pc.and_(
            pc.greater_equal(days, pa.scalar(target.start, pa.date32())),
            pc.less_equal(days, pa.scalar(target.end, pa.date32())),
        )
        if pc.any(mask).as_py():
            outcome.found.append(target)
            masks.append(mask)
        else:
            outcome.empty.append(target)
    if not masks:
        return BAR_SCHEMA.empty_table()
    combined = masks[0]
    for mask in masks[1:]:
        combined = pc.or_(combined, mask)
    return table.filter(combined)


def _finish_unit(
    ws: Workspace,
    unit: Unit,
    tables: list[pa.Table],
    options: Options,
    outcome: UnitResult,
    lock: run_lock.RunLock | None,
) -> None:
    """Merge the unit's bars in and write them; record its empty targets."""
    rows = [t for t in tables if t.num_rows]
    incoming = pa.concat_tables(rows).sort_by("date") if rows else BAR_SCHEMA.empty_table()
    if len(rows) > 1:  # windows that touch share a bar at most: the last answer wins
        incoming = _dedupe(incoming)
    outcome.merge = plan_merge(
        ws, unit.ticker, unit.interval, incoming, overwrite=options.overwrite
    )
    if options.dry_run or lock is None:
        return
    if outcome.merge.changes:
        outcome.quarantined = write_merge(ws, outcome.merge, lock=lock, reason=options.reason)
        outcome.written = True
    if outcome.merge.last_written is not None or outcome.merge.changes:
        outcome.registered = record_bars(
            ws,
            unit.ticker,
            unit.interval,
            outcome.merge.last_written,
            outcome.merge.location,
            options.today,
        )
        ws.save_tickers()
    if options.record_empty and (outcome.empty or outcome.found):
        run_lock.ensure_still_held(ws.root)
        confirmed_empty.update(
            ws.root,
            add=[
                confirmed_empty.EmptyWindow(
                    unit.ticker, unit.interval, t.start, t.end, t.sessions, options.today
                )
                for t in outcome.empty
            ],
            drop=[(unit.ticker, unit.interval, t.start, t.end) for t in outcome.found],
        )


def _dedupe(table: pa.Table) -> pa.Table:
    import polars as pl

    frame = pl.from_arrow(table).unique(subset=["stock", "date"], keep="last", maintain_order=True)
    return frame.sort("date").to_arrow().cast(BAR_SCHEMA)
