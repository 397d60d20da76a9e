"""The per-ticker work of the migration, run in worker processes.

Every function takes a small picklable job and returns a small picklable outcome; a bad
file becomes an outcome with ``ok=False``, never an exception, so one ticker's problem
never stops the run. Only a full disk is raised (``OSError`` ENOSPC): it stops the run.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow._parquet as _parquet
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.config import FileLimits
from core.migration import months as mo
from core.migration import staging
from core.migration.bars_table import (
    BarProblem,
    Normalised,
    decode_parquet,
    merge_month,
    normalise,
)
from core.migration.digest import content_digest
from core.store.bars import (
    MIB,
    TOO_LARGE,
    footer_problem,
    parquet_write_options,
    too_large_error,
    with_pandas_metadata,
)
from core.store.layout import PARTITION_FILE


@dataclass(frozen=True)
class TickerJob:
    ticker: str
    legacy_path: str
    ticker_dir: str  # the final ticker=<T> directory, present or not
    staging_dir: str | None = None  # where to write the staged ticker=<T> tree; None: plan only
    own_months: tuple[int, ...] = ()  # existing files this migration wrote: replaced, not merged
    limits: FileLimits | None = None  # the workspace's [limits]; None: the defaults


@dataclass
class MonthFile:
    month: int
    rows: int
    action: str  # new, merge (with an existing file) or replace (our own earlier output)
    bytes: int = 0
    existing_rows: int = 0


@dataclass
class TickerOutcome:
    ticker: str
    ok: bool = True
    kind: str = ""  # unreadable, too_large, invalid, conflict, mismatch
    message: str = ""
    path: str = ""  # the file at fault
    legacy_size: int = 0
    legacy_mtime_ns: int = 0
    legacy_rows: int = 0  # rows in the legacy file
    rows: int = 0  # after exact duplicates are collapsed
    legacy_digest: str = ""
    first_date: str | None = None
    last_date: str | None = None
    collapsed: list[str] = field(default_factory=list)
    conflicts: list[dict] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    cast_columns: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    files: list[MonthFile] = field(default_factory=list)
    adopted_rows: int = 0  # rows of existing partition files kept in merged months
    # Of the staged tree, taken by the worker (a rename keeps names, sizes, mtimes and
    # inodes): each staged file's ``staging.file_fingerprint`` by month, and the tree's
    # ``staging.tree_fingerprint``, which is the final tree's when the ticker had none.
    staged_prints: dict[int, str] = field(default_factory=dict)
    staged_tree: str = ""
    elapsed_s: float = 0.0

    @property
    def partition_rows(self) -> int:
        return sum(f.rows for f in self.files)

    def fail(self, kind: str, message: str, path: str = "", conflicts=None) -> TickerOutcome:
        self.ok, self.kind, self.message, self.path = False, kind, message, path
        self.conflicts = conflicts or []
        return self


class _Unreadable(Exception):
    def __init__(self, path: Path, exc: BaseException) -> None:
        super().__init__(f"unreadable Parquet file {path}: {exc}")
        self.path = path


class _TooLarge(Exception):
    """A file beyond the workspace's ``[limits]``: refused before its data is read."""

    def __init__(self, path: Path, problem: str) -> None:
        self.message = too_large_error(path, problem).one_line()
        super().__init__(self.message)
        self.path = path


def _read_bounded(path: Path, limits: FileLimits | None) -> pa.Table:
    """The whole file, read only if its footer is within ``limits``.

    One read of the file's bytes (the files are small and many), then ``decode_parquet``'s
    reader, its footer checked before any column is decoded; a file larger on disk than
    the decoded limit is not even read.
    """
    limits = limits or FileLimits()
    with open(path, "rb", buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limits.max_file_mb * MIB:
            raise _TooLarge(
                path,
                f"{TOO_LARGE}: {size / MIB:,.0f} MiB on disk (limit {limits.max_file_mb:,} "
                "MiB decoded)",
            )
        data = handle.read()
    reader = _parquet.ParquetReader()
    reader.open(pa.BufferReader(data), pre_buffer=False, arrow_extensions_enabled=True)
    problem = footer_problem(reader.metadata, limits)
    if problem is not None:
        raise _TooLarge(path, problem)
    return reader.read_all(use_threads=False)


def _read(path: Path, ticker: str, limits: FileLimits | None) -> Normalised:
    try:
        table = _read_bounded(path, limits)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise
        raise _Unreadable(path, exc) from None
    except pa.ArrowException as exc:
        raise _Unreadable(path, exc) from None
    return normalise(table, ticker, str(path))


def _legacy(job: TickerJob | VerifyJob, outcome: TickerOutcome) -> Normalised:
    path = Path(job.legacy_path)
    stat = path.stat()
    outcome.legacy_size, outcome.legacy_mtime_ns = stat.st_size, stat.st_mtime_ns
    legacy = _read(path, job.ticker, job.limits)
    outcome.legacy_rows, outcome.rows = legacy.raw_rows, legacy.table.num_rows
    outcome.collapsed, outcome.extra_columns = legacy.collapsed, legacy.extra_columns
    outcome.cast_columns, outcome.added_columns = legacy.cast_columns, legacy.added_columns
    outcome.legacy_digest = content_digest(legacy.table)
    if legacy.table.num_rows:
        dates = legacy.table.column("date")
        outcome.first_date = dates[0].as_py().isoformat()
        outcome.last_date = dates[-1].as_py().isoformat()
    return legacy


def months_of_dates(dates_ns: np.ndarray) -> np.ndarray:
    """Month index (``months.month_of``) of each naive nanosecond timestamp."""
    return dates_ns.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)


def _month_slices(table: pa.Table) -> list[tuple[int, pa.Table]]:
    """Contiguous per-month slices of a table sorted by date (zero-copy)."""
    if not table.num_rows:
        return []
    dates = table.column("date").to_numpy().astype("datetime64[ns]").astype(np.int64)
    month_index = months_of_dates(dates)
    starts = np.r_[0, np.flatnonzero(month_index[1:] != month_index[:-1]) + 1]
    ends = np.r_[starts[1:], len(month_index)]
    return [
        (int(month_index[s]), table.slice(int(s), int(e - s)))
        for s, e in zip(starts, ends, strict=True)
    ]


def _month_span(first: str, last: str) -> range:
    start, end = datetime.fromisoformat(first), datetime.fromisoformat(last)
    return range(mo.month_of(start.year, start.month), mo.month_of(end.year, end.month) + 1)


def _in_range(table: pa.Table, first, last) -> pa.Table:
    dates = table.column("date").to_numpy()
    keep = (dates >= np.datetime64(first)) & (dates <= np.datetime64(last))
    return table if keep.all() else table.filter(pa.array(keep))


def stage_ticker(job: TickerJob) -> TickerOutcome:
    """Split the legacy file by month, merge with existing partitions, stage and check it.

    With ``staging_dir`` None nothing is written: the outcome says what would be (dry run).
    """
    started = time.perf_counter()
    outcome = TickerOutcome(job.ticker)
    try:
        _stage(job, outcome)
    except _TooLarge as exc:
        outcome.fail("too_large", exc.message, str(exc.path))
    except _Unreadable as exc:
        outcome.fail("unreadable", str(exc), str(exc.path))
    except BarProblem as exc:
        outcome.fail(exc.kind, exc.message, "", exc.conflicts)
    except FileNotFoundError as exc:
        outcome.fail("unreadable", f"file vanished: {exc.filename}", str(exc.filename or ""))
    except pa.ArrowException as exc:
        # e.g. an extra column whose type differs between months: this ticker, not the run.
        outcome.fail("format", f"its bars cannot be combined: {exc}", job.legacy_path)
    outcome.elapsed_s = time.perf_counter() - started
    return outcome


def _stage(job: TickerJob, outcome: TickerOutcome) -> None:
    legacy = _legacy(job, outcome)
    existing = mo.partition_files(Path(job.ticker_dir))
    own = set(job.own_months)
    tables: dict[int, pa.Table] = {}
    # The pandas metadata once per ticker: the month slices share the table's schema.
    for month, rows in _month_slices(with_pandas_metadata(legacy.table)):
        path = existing.get(month)
        if path is None or month in own:
            tables[month] = rows
            outcome.files.append(
                MonthFile(month, rows.num_rows, "new" if path is None else "replace")
            )
            continue
        stored = _read(path, job.ticker, job.limits)
        merged = merge_month(rows, stored.table, str(path))
        tables[month] = merged.table
        outcome.adopted_rows += merged.adopted
        outcome.files.append(
            MonthFile(month, merged.table.num_rows, "merge", existing_rows=merged.existing_rows)
        )
    if job.staging_dir is not None:
        tables = _write_staged(Path(job.staging_dir), outcome.files, tables)
        outcome.staged_prints = {
            f.month: staging.file_fingerprint(Path(job.staging_dir) / mo.relative_file(f.month))
            for f in outcome.files
        }
        outcome.staged_tree = staging.tree_fingerprint(Path(job.staging_dir))
    if legacy.table.num_rows and existing:
        _check_against_legacy(job, outcome, legacy, tables, existing)


def _write_staged(
    staged: Path, files: list[MonthFile], tables: dict[int, pa.Table]
) -> dict[int, pa.Table]:
    """Write each month to the staging tree; returns the tables as they will be after
    promotion: a merged month's decoded from the bytes written, the others as given.

    A merged month's file replaces the only copy of rows the collector wrote into the
    partitioned tree, so its bytes are decoded and checked before it is promoted. A new
    (or replaced own) month's rows are a slice of the legacy file, which stays in place
    until activation; ``migrate verify``, which activation requires, reads every one of
    those files back from disk, so decoding them here too would check the same bytes
    twice.
    """
    read_back = dict(tables)
    root = str(staged)
    os.makedirs(root, exist_ok=True)
    years_made: set[str] = set()
    for month_file in files:
        sink = pa.BufferOutputStream()
        table = with_pandas_metadata(tables[month_file.month])
        pq.write_table(table, sink, **parquet_write_options(table.schema))
        data = sink.getvalue()
        if month_file.action == "merge":
            read_back[month_file.month] = decode_parquet(data)
        # Plain string paths and one mkdir per new directory: per file, pathlib and
        # ``mkdir(parents=True)`` retries cost more than writing the file itself.
        year_name, month_name = mo.relative_dirs(month_file.month)
        year_dir = os.path.join(root, year_name)
        if year_dir not in years_made:
            os.makedirs(year_dir, exist_ok=True)
            years_made.add(year_dir)
        month_dir = os.path.join(year_dir, month_name)
        os.mkdir(month_dir)
        _write_new_file(os.path.join(month_dir, PARTITION_FILE), data)
        month_file.bytes = data.size
    return read_back


def _write_new_file(path: str, data: pa.Buffer) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _check_against_legacy(
    job: TickerJob,
    outcome: TickerOutcome,
    legacy: Normalised,
    tables: dict[int, pa.Table],
    existing: dict[int, Path],
) -> None:
    """The ticker's partitioned rows over the legacy file's time range, as they will be after
    promotion, must have the legacy rows' digest."""
    first, last = outcome.first_date, outcome.last_date
    span = _month_span(first, last)
    parts = [tables[m] for m in span if m in tables]
    for month in span:
        if month not in tables and month in existing:
            parts.append(_read(existing[month], job.ticker, job.limits).table)
    view = _in_range(_concat(parts, legacy.table.column_names), first, last)
    if content_digest(view) == outcome.legacy_digest:
        return
    extra = view.num_rows - legacy.table.num_rows
    if extra > 0:
        raise BarProblem(
            "mismatch",
            f"{extra} rows already in the partitioned layout fall inside the legacy file's "
            f"range ({first[:10]}..{last[:10]}) but are not in it; the result would not "
            "match the legacy file: resolve by hand",
        )
    raise BarProblem("mismatch", "the staged rows do not match the legacy rows (digest differs)")


def _concat(tables: list[pa.Table], columns: list[str]) -> pa.Table:
    stripped = [t.replace_schema_metadata(None) for t in tables]
    if not stripped:
        return pa.table({c: [] for c in columns})
    combined = pa.concat_tables(stripped, promote_options="permissive")
    return combined.select([c for c in columns if c in combined.column_names])


@dataclass(frozen=True)
class VerifyJob:
    ticker: str
    legacy_path: str
    ticker_dir: str
    limits: FileLimits | None = None  # the workspace's [limits]; None: the defaults


@dataclass
class VerifyOutcome:
    ticker: str
    problems: list[str] = field(default_factory=list)
    legacy_size: int = 0
    legacy_mtime_ns: int = 0
    legacy_digest: str = ""
    rows: int = 0
    partition_rows: int = 0  # rows of the partition files within the legacy range
    files: int = 0
    collapsed: int = 0
    # ``staging.tree_fingerprint`` of the ticker's tree, taken before its files are read:
    # a file changed during the check no longer matches the recorded verdict.
    tree: str = ""
    elapsed_s: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.problems


def verify_ticker(job: VerifyJob) -> VerifyOutcome:
    """Schema, row count, unique timestamps, sessions and content digest against legacy."""
    started = time.perf_counter()
    result = VerifyOutcome(job.ticker)
    try:
        _verify(job, result)
    except _TooLarge as exc:
        result.problems.append(exc.message)
    except _Unreadable as exc:
        result.problems.append(str(exc))
    except BarProblem as exc:
        result.problems.append(exc.message)
    except FileNotFoundError as exc:
        result.problems.append(f"file vanished: {exc.filename}")
    except pa.ArrowException as exc:
        result.problems.append(f"its bars cannot be combined: {exc}")
    result.elapsed_s = time.perf_counter() - started
    return result


def _verify(job: VerifyJob, result: VerifyOutcome) -> None:
    result.tree = staging.tree_fingerprint(Path(job.ticker_dir))
    scratch = TickerOutcome(job.ticker)
    legacy = _legacy(job, scratch)
    result.legacy_size, result.legacy_mtime_ns = scratch.legacy_size, scratch.legacy_mtime_ns
    result.legacy_digest, result.rows = scratch.legacy_digest, scratch.rows
    result.collapsed = len(scratch.collapsed)
    if not legacy.table.num_rows:
        return
    files = mo.partition_files(Path(job.ticker_dir))
    span = _month_span(scratch.first_date, scratch.last_date)
    in_span = {m: files[m] for m in span if m in files}
    if not in_span:
        result.problems.append("no partition files over the legacy range (not migrated)")
        return
    expected = [(f.name, f.type) for f in legacy.table.schema]
    schemas_passed: set[pa.Schema] = set()  # a ticker's files nearly always share one
    tables = []
    for month, path in in_span.items():
        table = _read_raw(path, job.limits)
        if table.schema not in schemas_passed:
            problems = _schema_problems(table.schema, expected, _relative(job.ticker, month))
            result.problems += problems
            if not problems:
                schemas_passed.add(table.schema)
        tables.append(table)
    result.files = len(tables)
    if result.problems:
        return
    result.problems += _misplaced_rows(job.ticker, list(in_span), tables)
    if result.problems:
        return
    view = _in_range(
        _concat(tables, legacy.table.column_names), scratch.first_date, scratch.last_date
    )
    result.partition_rows = view.num_rows
    _compare(view, legacy.table, scratch.legacy_digest, result)


def _relative(ticker: str, month: int) -> str:
    return f"ticker={ticker}/{mo.relative_file(month)}"


def _misplaced_rows(ticker: str, months: list[int], tables: list[pa.Table]) -> list[str]:
    """Files holding rows of another month (one pass over all the ticker's files)."""
    sizes = [t.num_rows for t in tables]
    dates = np.concatenate(
        [t.column("date").to_numpy().astype("datetime64[ns]").astype(np.int64) for t in tables]
    )
    wrong = months_of_dates(dates) != np.repeat(np.array(months, dtype=np.int64), sizes)
    if not wrong.any():
        return []
    file_of_row = np.repeat(np.arange(len(months)), sizes)
    return [
        f"{_relative(ticker, months[i])}: holds rows of another month"
        for i in np.unique(file_of_row[wrong])
    ]


def _schema_problems(schema: pa.Schema, expected: list[tuple[str, pa.DataType]], rel: str):
    found = {f.name: f.type for f in schema}
    return [
        f"{rel}: column {name} is {found.get(name)}, not {dtype}"
        for name, dtype in expected
        if found.get(name) != dtype
    ]


def _read_raw(path: Path, limits: FileLimits | None) -> pa.Table:
    try:
        return _read_bounded(path, limits)
    except (OSError, pa.ArrowException) as exc:
        raise _Unreadable(path, exc) from None


def _compare(view: pa.Table, legacy: pa.Table, digest: str, result: VerifyOutcome) -> None:
    ours = view.column("date").to_numpy().astype("datetime64[ns]").astype(np.int64)
    theirs = legacy.column("date").to_numpy().astype("datetime64[ns]").astype(np.int64)
    if len(np.unique(ours)) != len(ours):
        result.problems.append(f"{len(ours) - len(np.unique(ours))} duplicate timestamps")
    if len(ours) != len(theirs):
        result.problems.append(f"{len(ours)} rows in the partitions, {len(theirs)} in legacy")
    sessions_p = np.unique(ours.astype("datetime64[ns]").astype("datetime64[D]"))
    sessions_l = np.unique(theirs.astype("datetime64[ns]").astype("datetime64[D]"))
    for name, missing in (
        ("missing", np.setdiff1d(sessions_l, sessions_p, assume_unique=True)),
        ("extra", np.setdiff1d(sessions_p, sessions_l, assume_unique=True)),
    ):
        if len(missing):
            shown = ", ".join(str(d) for d in missing[:5])
            result.problems.append(f"{len(missing)} sessions {name} in the partitions: {shown}")
    if content_digest(view) != digest and not result.problems:
        result.problems.append(_first_difference(view, legacy))


def _first_difference(view: pa.Table, legacy: pa.Table) -> str:
    """The first timestamp whose values differ, for a digest mismatch with equal dates."""
    try:
        merge_month(legacy, view, "partition")
    except BarProblem as exc:
        if exc.conflicts:
            first = exc.conflicts[0]
            return (
                f"content differs from legacy: {first['date']} column {', '.join(first['columns'])}"
            )
    return "content differs from legacy (digest mismatch)"


@dataclass(frozen=True)
class FooterInfo:
    ticker: str
    size: int
    rows: int = 0
    months: int = 0  # months spanned by the dates: the partition files it becomes
    error: str = ""


def legacy_footer(ticker: str, path: str, limits: FileLimits | None = None) -> FooterInfo:
    """Rows and months spanned, from the Parquet footer (the date column's statistics).

    A file beyond ``limits`` (None: the defaults) is refused as the run would refuse it.
    """
    size = os.stat(path).st_size
    try:
        meta = pq.read_metadata(path)
        problem = footer_problem(meta, limits or FileLimits())
        if problem is not None:
            return FooterInfo(ticker, size, error=too_large_error(path, problem).one_line())
        index = meta.schema.to_arrow_schema().get_field_index("date")
        lows, highs = [], []
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(index).statistics if index >= 0 else None
            if stats is None or not stats.has_min_max:
                lows = []
                break
            lows.append(stats.min)
            highs.append(stats.max)
        if meta.num_rows and not lows:
            with pq.ParquetFile(path) as parquet:
                extremes = pc.min_max(parquet.read(columns=["date"]).column("date")).as_py()
            if extremes["min"] is None:  # no bar has a date: nothing to place
                return FooterInfo(ticker, size, meta.num_rows)
            lows, highs = [extremes["min"]], [extremes["max"]]
    except (OSError, pa.ArrowException) as exc:
        return FooterInfo(ticker, size, error=f"unreadable Parquet file {path}: {exc}")
    if not meta.num_rows:
        return FooterInfo(ticker, size)
    first, last = min(lows), max(highs)
    months = mo.month_of(last.year, last.month) - mo.month_of(first.year, first.month) + 1
    return FooterInfo(ticker, size, meta.num_rows, months)
