"""Integrity checks of a workspace: every bar file, the stray files beside them, the
metadata that routes them, and the run lock. Each problem is a Finding with a severity,
the file, and what to do.

Per-file facts (readable or not, schema, rows) come from the file index (core.availability.index), so
a file is opened for them once per change; row-level checks (core.integrity.bar_checks) are cached
by the same (path, size, mtime_ns). An unchanged workspace is checked without reading any
Parquet. Stray files (core.integrity.stray_files) and the metadata and lock (core.integrity.metadata_checks)
have modules of their own; this one runs them all and checks the schemas. Nothing here writes to the data tree: ``quarantine_errors`` moves files, under
the run lock the caller holds.

Severities: an ``error`` is a file or route that readers get wrong or cannot read (exit 1,
and ``--quarantine`` moves the file of a file-scoped one); a ``warning`` is worth a look
but nothing is read wrong yet; ``info`` is for the record.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

from core.availability.index import RefreshStats, refresh_index
from core.integrity import saved_findings
from core.integrity.bar_checks import (
    BarFile,
    ChangedWhileChecking,
    RowCheckCache,
    check_rows,
    too_large_finding,
)
from core.integrity.findings import LAST_REPORT, Finding, Scope, Severity
from core.integrity.metadata_checks import lock_findings, metadata_findings
from core.integrity.stray_files import being_written, stray_findings
from core.jobs import CancelToken, ProgressCallback, ProgressTracker
from core.safety import run_lock, untrusted_json
from core.safety.atomic import confined, write_json
from core.store.bars import BAR_COLUMNS, BAR_SCHEMA, TOO_LARGE
from core.store.workspace import Workspace

# The last report keeps this many findings of each code (with the full counts), so that a
# workspace where every file has the same extra column does not write a huge file.
REPORT_FINDINGS_PER_CODE = 200
_IN_FLIGHT = 4  # row checks queued per worker: a cancel waits for these only
_PROGRESS_EVERY = 64  # files between progress reports
_PROCESS_POOL_FROM = 20_000  # files to check from which worker processes beat threads
_PROCESS_CHUNK = 256  # files per task of a worker process

_EXPECTED_TYPES = {name: {str(BAR_SCHEMA.field(name).type)} for name in BAR_COLUMNS}
_EXPECTED_TYPES["stock"] |= {"large_string", "string_view"}
# An all-null column is written with Arrow's null type by pandas; it holds no wrong value.
_EXPECTED_TYPES["volume"].add("null")
_EXPECTED_TYPES["sequence"].add("null")
# Older collector versions wrote no `sequence`; its reader recreates the column.
_OPTIONAL_COLUMNS = {"sequence"}
_QUARANTINE_ADVICE = "quarantine it (`parqctl integrity --quarantine`) and re-fetch the ticker"


@dataclass
class IntegrityReport:
    root: Path
    findings: list[Finding]
    files: int  # bar files in scope
    rows_read: int  # files whose rows were read this run
    rows_cached: int  # files whose row checks came from the cache
    index: RefreshStats
    interval: str | None
    since: date | None
    deep: bool
    checked_at: float
    elapsed_s: float
    # (size, mtime_ns) of each file with a finding when it was checked: quarantine
    # moves a file only if it is still the one that was checked.
    checked_stats: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    cache_error: str | None = None

    @property
    def full(self) -> bool:
        """Whether every file was in scope (no --interval, no --since)."""
        return self.interval is None and self.since is None

    def count(self, severity: Severity) -> int:
        return sum(f.severity is severity for f in self.findings)

    @property
    def errors(self) -> int:
        return self.count(Severity.ERROR)

    @property
    def open_errors(self) -> int:
        """Errors whose file has not been quarantined by this run."""
        moved = {q["path"] for q in self.quarantined}
        return sum(f.severity is Severity.ERROR and f.path not in moved for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {s.label: self.count(s) for s in sorted(Severity, reverse=True)}

    def quarantinable(self) -> dict[str, list[Finding]]:
        """File-scoped error findings by path: what ``--quarantine`` moves."""
        by_path: dict[str, list[Finding]] = defaultdict(list)
        for finding in self.findings:
            if finding.severity is Severity.ERROR and finding.scope is Scope.FILE and finding.path:
                by_path[finding.path].append(finding)
        return dict(by_path)

    def as_dict(self, findings_per_code: int | None = None) -> dict[str, Any]:
        kept = self.findings
        if findings_per_code is not None:
            seen: dict[str, int] = defaultdict(int)
            kept = []
            for finding in self.findings:
                seen[finding.code] += 1
                if seen[finding.code] <= findings_per_code:
                    kept.append(finding)
        by_code: dict[str, int] = defaultdict(int)
        for finding in self.findings:
            by_code[finding.code] += 1
        return {
            "workspace": str(self.root),
            "checked_at": datetime.fromtimestamp(self.checked_at).astimezone().isoformat(),
            "checked_at_ts": self.checked_at,
            "scope": {
                "interval": self.interval,
                "since": self.since.isoformat() if self.since else None,
                "deep": self.deep,
            },
            "files": self.files,
            "rows_read": self.rows_read,
            "rows_cached": self.rows_cached,
            "index": {"scanned": self.index.scanned, "opened": self.index.opened},
            "elapsed_s": round(self.elapsed_s, 3),
            "counts": self.counts(),
            "open_errors": self.open_errors,
            "by_code": dict(sorted(by_code.items())),
            "findings": [f.as_dict() for f in kept],
            "findings_truncated": len(kept) < len(self.findings),
            "quarantined": self.quarantined,
        }


def check(
    ws: Workspace,
    *,
    interval: str | None = None,
    since: date | None = None,
    deep: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    clock: Callable[[], float] | None = None,
    scan: str = "due",
) -> IntegrityReport:
    """Check every bar file in scope and the metadata; ``deep`` decodes every row group.

    ``clock`` replaces both the wall clock (``checked_at``, the lock's age) and the timer
    of ``elapsed_s``, for tests that need a fixed time.
    """
    started = time.time() if clock is None else clock()
    timer = time.perf_counter if clock is None else clock
    started_clock = timer()
    ws.load_all_metadata()
    lock = run_lock.inspect(ws.root, now=started)
    index = refresh_index(ws.root, scan=scan, progress=progress, cancel=cancel, sessions=False)
    files = index.files
    if interval is not None:
        files = files.filter(files["interval"] == interval)
    in_scope = _since_filter(files, since)
    findings: list[Finding] = []
    schemas = _schema_problems_by_fingerprint(in_scope, index.schemas)
    # Only the records with something to say are looked at one by one (a few among
    # hundreds of thousands); the others go to the row checks whole.
    flagged = _flagged(in_scope, schemas)
    bar_paths_flagged = []
    for record in _records(in_scope.filter(flagged)):
        file_findings = _file_findings(record, schemas, lock)
        findings += file_findings
        if record.error is None and not any(f.severity is Severity.ERROR for f in file_findings):
            bar_paths_flagged.append(record.path)
    findings += _schema_consistency(in_scope, index.schemas)
    to_check = in_scope.filter(~flagged | in_scope["path"].is_in(bar_paths_flagged))
    row_findings, read, cached, cache_error = _cached_row_checks(
        ws.root, index.files["path"], to_check, deep, progress, cancel
    )
    findings += row_findings
    stray_findings_, stats = stray_findings(ws, index.state.strays, interval, lock)
    findings += stray_findings_
    findings += metadata_findings(ws, files, interval)
    findings += lock_findings(lock)
    findings.sort(key=lambda f: (-f.severity, f.code, f.path or ""))
    paths_with_findings = {f.path for f in findings}
    with_findings = in_scope.filter(in_scope["path"].is_in(list(paths_with_findings)))
    for path, size, mtime_ns in with_findings.select("path", "size", "mtime_ns").iter_rows():
        stats[path] = (size, mtime_ns)
    return IntegrityReport(
        root=ws.root,
        findings=findings,
        files=in_scope.height,
        rows_read=read,
        rows_cached=cached,
        index=index.stats,
        interval=interval,
        since=since,
        deep=deep,
        checked_at=started,
        elapsed_s=timer() - started_clock,
        checked_stats={p: s for p, s in stats.items() if p in paths_with_findings},
        cache_error=cache_error,
    )


def _since_filter(files, since: date | None):
    """Files that may hold bars on or after ``since``: partitions by their month, legacy
    files by their last bar (unknown for an unreadable one: kept)."""
    if since is None:
        return files
    import polars as pl

    month_key = pl.col("year").cast(pl.Int32) * 12 + pl.col("month").cast(pl.Int32)
    recent_partition = month_key >= since.year * 12 + since.month
    recent_legacy = pl.col("max_date").is_null() | (
        pl.col("max_date") >= datetime.combine(since, datetime.min.time())
    )
    keep = pl.when(pl.col("kind") == "partitioned").then(recent_partition).otherwise(recent_legacy)
    return files.filter(keep.fill_null(True))


class _Record(NamedTuple):
    """The index columns the checks use (its list columns are read once per schema)."""

    path: str
    kind: str
    interval: str
    ticker: str
    year: int | None
    month: int | None
    size: int
    mtime_ns: int
    schema_fingerprint: str | None  # None when the footer does not read
    error: str | None


def _records(files) -> Iterator[_Record]:
    """One record per row of the index, built from whole columns (no per-row dicts)."""
    columns = (files[name].to_list() for name in _Record._fields)
    return map(_Record._make, zip(*columns, strict=True))


def _schema_problems_by_fingerprint(
    files, schemas: dict[str, list[tuple[str, str]]]
) -> dict[str, tuple[_SchemaProblem, ...]]:
    """The problems of each schema in ``files``; a workspace has a handful of them."""
    used = files["schema_fingerprint"].drop_nulls().unique().to_list()
    return {
        fingerprint: _schema_problems(
            tuple(name for name, _ in schemas.get(fingerprint, [])),
            tuple(kind for _, kind in schemas.get(fingerprint, [])),
        )
        for fingerprint in used
    }


def _bar_file(record: _Record) -> BarFile:
    valid_month = record.month is not None and 1 <= record.month <= 12
    return BarFile(
        path=record.path,
        ticker=record.ticker,
        interval=record.interval,
        year=record.year if valid_month else None,
        month=record.month if valid_month else None,
        size=record.size,
        mtime_ns=record.mtime_ns,
    )


def _file_finding(
    record: _Record, severity: Severity, code: str, message: str, advice: str
) -> Finding:
    return Finding(
        severity,
        code,
        record.path,
        message,
        advice,
        ticker=record.ticker,
        interval=record.interval,
    )


def _file_findings(
    record: _Record,
    schemas: dict[str, tuple[_SchemaProblem, ...]],
    lock: run_lock.LockStatus,
) -> list[Finding]:
    """Findings from the index record alone: readability, the partition key, the schema."""
    findings = []
    if record.kind == "partitioned" and not 1 <= (record.month or 0) <= 12:
        findings.append(
            _file_finding(
                record,
                Severity.ERROR,
                "layout.bad_partition",
                f"month={record.month} is not a month",
                "no reader looks here for bars: move the rows to their month's partition",
            )
        )
    if record.schema_fingerprint is None:
        return [*findings, _unreadable(record, lock)]
    findings += [_file_finding(record, *problem) for problem in schemas[record.schema_fingerprint]]
    # The footer read but the index could not use the file: unless the schema explains
    # why (no or a retyped `date`), its data does not decode.
    if record.error is not None and not any(f.severity is Severity.ERROR for f in findings):
        findings.append(_unreadable(record, lock))
    return findings


def _unreadable(record: _Record, lock: run_lock.LockStatus) -> Finding:
    error = record.error or "unknown error"
    if error == "changed while being read" or being_written(lock, record.mtime_ns):
        return _file_finding(
            record,
            Severity.INFO,
            "file.being_written",
            f"not checked: it is being written ({error})",
            "nothing to do; the next check reads it",
        )
    if error.startswith(TOO_LARGE):  # readable, but beyond the workspace's [limits]
        return too_large_finding(_bar_file(record), error)
    if record.size == 0:
        return _file_finding(
            record,
            Severity.ERROR,
            "file.zero_bytes",
            "the file is empty (0 bytes)",
            "a write was cut short and nothing of it is left: " + _QUARANTINE_ADVICE,
        )
    return _file_finding(
        record,
        Severity.ERROR,
        "file.unreadable",
        f"not readable Parquet ({record.size:,} bytes): {error}",
        "the file is truncated or damaged (the collector cannot read it either): "
        + _QUARANTINE_ADVICE,
    )


_SchemaProblem = tuple[Severity, str, str, str]  # severity, code, message, advice


@functools.lru_cache(maxsize=1024)
def _schema_problems(
    columns: tuple[str, ...], kinds: tuple[str, ...]
) -> tuple[_SchemaProblem, ...]:
    """What is wrong with a schema; the files of a workspace share a handful of them."""
    types = dict(zip(columns, kinds, strict=True))
    problems: list[_SchemaProblem] = []
    missing = [c for c in BAR_COLUMNS if c not in types]
    required_missing = [c for c in missing if c not in _OPTIONAL_COLUMNS]
    if required_missing:
        problems.append(
            (
                Severity.ERROR,
                "schema.missing_column",
                f"missing column(s) {', '.join(required_missing)}",
                "the collector cannot read the file without them: " + _QUARANTINE_ADVICE,
            )
        )
    if "sequence" in missing:
        problems.append(
            (
                Severity.WARNING,
                "schema.missing_column",
                "missing column sequence (written by older collector versions)",
                "the collector recreates it when it reads the file and writes it on its next "
                "update; nothing to do",
            )
        )
    for name in BAR_COLUMNS:
        kind = types.get(name)
        if kind is not None and kind not in _EXPECTED_TYPES[name]:
            problems.append(_retyped(name, kind))
    extra = [c for c in columns if c not in _EXPECTED_TYPES]
    if extra:
        shown = ", ".join(f"{c} ({types[c]})" for c in extra)
        problems.append(
            (
                Severity.WARNING,
                "schema.extra_column",
                f"column(s) not in the format: {shown}",
                "readers keep extra columns and parqctl never drops them; check what wrote them",
            )
        )
    return tuple(problems)


def _retyped(name: str, kind: str) -> _SchemaProblem:
    expected = str(BAR_SCHEMA.field(name).type)
    if name == "date" and kind.startswith("timestamp[") and "tz=" in kind:
        return (
            Severity.ERROR,
            "schema.timezone",
            f"`date` is {kind}: the format stores naive exchange-local times",
            "zoned and naive times do not compare, so the collector's next merge of this ticker "
            "fails: rewrite `date` as local wall time without a zone, or " + _QUARANTINE_ADVICE,
        )
    if name == "date" and kind.startswith("timestamp["):
        return (
            Severity.WARNING,
            "schema.date_unit",
            f"`date` is {kind}, not {expected}",
            "readers convert it; the collector writes nanoseconds on its next update",
        )
    return (
        Severity.ERROR,
        "schema.retyped_column",
        f"column {name} is {kind}, not {expected}",
        "the collector's merge and parqctl's readers expect the format's type: rewrite the "
        "column with the right type, or " + _QUARANTINE_ADVICE,
    )


def _schema_consistency(files, schemas: dict[str, list[tuple[str, str]]]) -> list[Finding]:
    """A column whose type differs between the files of one ticker and interval."""
    import polars as pl

    readable = files.select("ticker", "interval", "schema_fingerprint", "path")
    readable = readable.filter(pl.col("schema_fingerprint").is_not_null())
    mixed = (
        readable.group_by("ticker", "interval")
        .agg(pl.col("schema_fingerprint").n_unique().alias("n"))
        .filter(pl.col("n") > 1)
    )
    if mixed.is_empty():
        return []
    findings = []
    groups = readable.join(mixed.select("ticker", "interval"), on=["ticker", "interval"])
    for (ticker, interval), group in groups.group_by("ticker", "interval"):
        seen: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for path, fingerprint in group.select("path", "schema_fingerprint").iter_rows():
            for name, kind in schemas.get(fingerprint, []):
                seen[name][kind].append(path)
        for name, by_type in sorted(seen.items()):
            if len(by_type) < 2:
                continue
            shown = "; ".join(
                f"{kind} in {len(paths):,} file(s), e.g. {paths[0]}"
                for kind, paths in by_type.items()
            )
            findings.append(
                Finding(
                    Severity.WARNING,
                    "schema.inconsistent",
                    min(p for paths in by_type.values() for p in paths),
                    f"column {name} of {ticker} {interval} has {len(by_type)} types: {shown}",
                    "concatenating these files promotes or fails on this column: rewrite the "
                    "odd files with one type",
                    scope=Scope.TICKER,
                    ticker=ticker,
                    interval=interval,
                )
            )
    return findings


def _flagged(files, schemas: dict[str, tuple[_SchemaProblem, ...]]):
    """The records that may have findings of their own (see ``_file_findings``)."""
    import polars as pl

    with_problems = [fp for fp, problems in schemas.items() if problems]
    bad_month = (pl.col("kind") == "partitioned") & ~pl.col("month").is_between(1, 12).fill_null(
        False
    )
    return files.select(
        (
            pl.col("error").is_not_null()
            | pl.col("schema_fingerprint").is_null()
            | pl.col("schema_fingerprint").is_in(with_problems)
            | bad_month
        ).alias("flagged")
    ).to_series()


def _cached_row_checks(
    root: Path,
    indexed_paths,
    files,
    deep: bool,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> tuple[list[Finding], int, int, str | None]:
    """Row findings of ``files`` (index records): the cache answers for the unchanged ones
    by a join, not a lookup per file; the others are read, and the cache saved.
    Returns (findings, files read, files from the cache, why the cache was not saved)."""
    import polars as pl

    table = RowCheckCache.table(root)
    findings: list[Finding] = []
    if table is None:
        hits = 0
        misses = files
        stale = False
    else:
        cached = pl.from_arrow(table).rename(
            {"size": "cached_size", "mtime_ns": "cached_mtime", "deep": "cached_deep"}
        )
        # Joined on the three columns compared, not the whole records: a join of 740,000
        # records copied every column of both (+400 MB).
        joined = files.select("path", "size", "mtime_ns").join(
            cached, on="path", how="left", maintain_order="left"
        )
        hit = joined.select(
            (
                (pl.col("cached_size") == pl.col("size"))
                & (pl.col("cached_mtime") == pl.col("mtime_ns"))
                & (pl.col("cached_deep") | (not deep))
            ).fill_null(False)
        ).to_series()
        hits = int(hit.sum())
        misses = files.filter(~hit)
        with_findings = joined.filter(hit & (pl.col("findings") != "[]"))["findings"]
        for text in with_findings.to_list():
            findings += [Finding.from_dict(raw) for raw in untrusted_json.loads(text)]
        stale = cached.select(~pl.col("path").is_in(indexed_paths.implode()).all()).item()
    if misses.is_empty() and not stale:
        return findings, 0, hits, None
    cache = RowCheckCache.load(root)
    cache.forget_missing(set(indexed_paths.to_list()))
    bars = [_bar_file(record) for record in _records(misses)]
    try:
        row_findings, read, _ = _row_checks(root, bars, cache, deep, progress, cancel)
    except BaseException:
        cache.save(root)  # a cancelled run keeps what it checked
        raise
    cache_error = cache.save(root) if cache.changed else None
    return findings + row_findings, read, hits, cache_error


def _row_checks(
    root: Path,
    bars: list[BarFile],
    cache: RowCheckCache,
    deep: bool,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> tuple[list[Finding], int, int]:
    """Row-level findings of every readable file: cached ones reused, the rest read."""
    findings: list[Finding] = []
    todo = []
    for bar in bars:
        cached = cache.get(bar, deep)
        if cached is None:
            todo.append(bar)
        else:
            findings += cached
    workers = os.cpu_count() or 1
    tracker = ProgressTracker("checking rows", len(todo), "files", progress)

    def one(bar: BarFile) -> list[Finding] | None:
        try:
            return check_rows(root, bar, deep=deep)
        except ChangedWhileChecking:
            return None

    read = unreported = 0
    from core.fork_server import may_start_workers

    if len(todo) >= _PROCESS_POOL_FROM and workers > 1 and may_start_workers():
        results = _in_processes(root, todo, deep, workers, cancel)
    else:
        results = _in_threads(one, todo, workers, cancel)
    with contextlib.closing(results):
        for bar, result in results:
            if result is None:
                findings.append(
                    Finding(
                        Severity.INFO,
                        "file.being_written",
                        bar.path,
                        "not checked: it changed while being checked",
                        "nothing to do; the next check reads it",
                        ticker=bar.ticker,
                        interval=bar.interval,
                    )
                )
            else:
                cache.put(bar, deep, result)
                findings += result
                read += 1
            unreported += 1
            if unreported == _PROGRESS_EVERY:
                tracker.advance(unreported)
                unreported = 0
        if unreported:
            tracker.advance(unreported)
    return findings, read, len(bars) - len(todo)


def _in_threads(
    fn: Callable[[BarFile], Any], todo: list[BarFile], workers: int, cancel: CancelToken | None
) -> Iterator[tuple[BarFile, Any]]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from _bounded_map(pool, fn, todo, _IN_FLIGHT * workers, cancel)


def _check_chunk(root: Path, bars: list[BarFile], deep: bool) -> list[list[Finding] | None]:
    """A worker process's task: the row findings of some files (None: changed meanwhile)."""
    results: list[list[Finding] | None] = []
    for bar in bars:
        try:
            results.append(check_rows(root, bar, deep=deep))
        except ChangedWhileChecking:
            results.append(None)
    return results


def _in_processes(
    root: Path, todo: list[BarFile], deep: bool, workers: int, cancel: CancelToken | None
) -> Iterator[tuple[BarFile, Any]]:
    """(file, its row findings) from worker processes, chunk by chunk: the per-file work is
    mostly Python, which threads would run one at a time. A cancel is seen between chunks."""
    from core.availability.index import process_context

    chunks = [todo[i : i + _PROCESS_CHUNK] for i in range(0, len(todo), _PROCESS_CHUNK)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=process_context()) as pool:
        pending: dict[Future, list[BarFile]] = {}
        queue = iter(chunks)
        try:
            while True:
                if cancel is not None:
                    cancel.raise_if_cancelled("run it again: files checked so far are cached")
                for chunk in queue:
                    pending[pool.submit(_check_chunk, root, chunk, deep)] = chunk
                    if len(pending) >= 2 * workers:
                        break
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield from zip(pending.pop(future), future.result(), strict=True)
        finally:
            for future in pending:
                future.cancel()


def _bounded_map(
    pool: ThreadPoolExecutor,
    fn: Callable[[BarFile], Any],
    items: list[BarFile],
    in_flight: int,
    cancel: CancelToken | None,
) -> Iterator[tuple[BarFile, Any]]:
    """(item, fn(item)) in completion order, with at most ``in_flight`` queued, so that a
    cancel is seen after the file being read, not after a batch of them."""
    queue = iter(items)
    pending: dict[Future, BarFile] = {}
    try:
        while True:
            if cancel is not None:
                cancel.raise_if_cancelled("run it again: files checked so far are cached")
            for item in queue:
                pending[pool.submit(fn, item)] = item
                if len(pending) >= in_flight:
                    break
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()
    finally:
        for future in pending:
            future.cancel()


# --- acting on a report -------------------------------------------------------------------


def quarantine_errors(
    ws: Workspace, report: IntegrityReport, *, lock: run_lock.RunLock
) -> list[dict[str, Any]]:
    """Move the file of every file-scoped error into quarantine (caller holds the lock).

    A file that changed or vanished since it was checked is left where it is and reported
    as skipped. Returns one record per file, also added to ``report.quarantined``.
    """
    outcomes = saved_findings.quarantine_checked(
        ws.root, report.quarantinable(), report.checked_stats, lock=lock
    )
    report.quarantined += [o for o in outcomes if "id" in o]
    return outcomes


def save_report(root: Path, report: IntegrityReport) -> None:
    """Keep a full run's result for ``health`` and the console (its summary, and every
    finding for the console's list); filtered runs are not kept."""
    if report.full:
        saved_findings.save(
            root,
            report.findings,
            report.checked_at,
            report.checked_stats,
            (q["path"] for q in report.quarantined),
        )
        write_json(
            confined(root, LAST_REPORT), report.as_dict(findings_per_code=REPORT_FINDINGS_PER_CODE)
        )
