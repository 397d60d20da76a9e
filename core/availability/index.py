"""The incremental inventory of every bar file, with per-session bar counts.

    index = refresh_index(ws.root)      # hot months, new tickers and parqctl's own writes
    index = refresh_index(ws.root, scan="all")  # stat every file (cold months too)
    index = refresh_index(ws.root, full=True)   # re-read every file
    index = load_index(ws.root)         # what was persisted, without looking at the data
    index.files                         # polars, one row per file (columns below)
    index.readable / index.unreadable   # the same rows, split on ``error``
    index.schemas                       # schema fingerprint -> [(column, Arrow type)]
    index.state                         # when the index last looked at what (freshness)
    index.stats                         # what the refresh did: opened, reused, removed

One record per bar file (legacy and partitioned), refreshed by (path, size, mtime_ns):
an unchanged file is never opened again, a removed one leaves the index, a new or
changed one is read: its footer (rows, schema) and its ``date`` column only. Temp and
partial files are recorded as strays, never as bar files. An unreadable file is a record
with its error, never a crash; so is a file whose footer is beyond the workspace's
``[limits]`` (its error starts with ``too large to read``; it is read again whenever it
is looked at, so raising the limit takes effect at once).

Which files a refresh looks at (core.availability.index_scan): ``scan="hot"`` (the
default) stats the legacy files, the hot months of every partitioned ticker (the
collector writes only those), the tickers the index has never seen and the files parqctl
noted as changed (core.availability.index_journal); ``scan="all"`` stats every file;
``scan="due"`` is ``hot``, or ``all`` when the last full scan is older than
``FULL_SCAN_DAYS``. The first refresh of a workspace is always a full one. ``state``
records when the last full scan and the last refresh ran, so that what is shown can say
how old it is.

The index is persisted as Arrow IPC files under ``.parqctl/index/`` (two shards, see
core.availability.index_shards); the column names and types of each distinct schema are
stored once, in their metadata (a workspace has a handful of schemas and hundreds of
thousands of files). Beside it,
``summary.json`` holds per (dataset, ticker) files, bytes and bar span (what health
shows, without loading the per-file records), and ``state.json`` the scan times, the
strays and the directories that could not be read. Writes are parqctl's own state:
atomic replace, last writer wins, no run lock.

The record frame (``FileIndex.files``, polars), one row per file, sorted by path:

=================== ======================================================================
path                relative to the workspace root, ``/``-separated
dataset             the dataset directory holding it, relative to the root
kind                ``legacy`` or ``partitioned``
interval            ``1d``, ``1h``, ...
venue               ``market:source`` of a partitioned file; null for legacy files
ticker              from the file name (legacy) or the ``ticker=`` key (partitioned)
year, month         the Hive keys of a partitioned file; null for legacy files
size, mtime_ns      the file's stat when it was read
rows                row count from the Parquet footer
min_date, max_date  first and last bar time (naive exchange-local), from the ``date``
                    column that is read anyway for the session counts: exact, where
                    footer statistics may be missing
schema_fingerprint  a short stable hash of the column names and Arrow types (the key of
                    ``FileIndex.schemas``)
error               null when the file was read; else why not (truncated, no ``date``, ...)
session_days        the calendar days with bars, ascending (a bar's day is its session)
session_bars        distinct bar times on each of those days
=================== ======================================================================

``rows - sum(session_bars)`` is the number of duplicate (or null) bar times in a file.
``FileIndex.sessions`` gives the two list columns as flat numpy arrays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.availability import index_journal, index_scan, index_shards
from core.availability.index_scan import Found, HotScope, ScanResult, Stray, is_temp_file
from core.availability.index_shards import (
    COLD_LAG,
    INDEX_SCHEMA,
    SESSION_FIELDS,
    WITHOUT_SESSIONS,
    ColdShard,
)
from core.availability.index_state import (
    FULL_SCAN_DAYS,
    INDEX_DIR,
    INDEX_FILE,
    SUMMARY_COLUMNS,
    SUMMARY_FILE,
    IndexState,
    RefreshStats,
    cold_stat,
    full_scan_due,
    hot_range,
    hot_unchanged,
    index_path,
    load_state,
    load_summary,
    month_key,
    save_state,
    stat_of,
    stray_looked_at,
    unchanged_hot,
    write_hot,
)
from core.config import FileLimits
from core.jobs import CancelToken, ProgressCallback, ProgressTracker
from core.safety.atomic import atomic_open, confined
from core.store.bars import TOO_LARGE, footer_problem, workspace_limits

if TYPE_CHECKING:
    import polars as pl

# Re-exported: the index's public reading API (core.availability.index_state holds them).
__all__ = [
    "FULL_SCAN_DAYS",
    "INDEX_DIR",
    "INDEX_FILE",
    "IndexState",
    "hot_unchanged",
    "index_path",
    "is_temp_file",
    "load_state",
    "load_summary",
]

NS_PER_DAY = 86_400_000_000_000
_CANCEL_EVERY = 64  # files between cancel checks and progress reports (per worker)
_PROCESS_POOL_FROM = 2_000  # files to read from which worker processes beat threads
_PROCESS_CHUNK = 512  # files per task of a worker process
_WALK_IN_WORKERS_FROM = 64  # partitioned tickers from which a full build walks in workers
_TICKERS_PER_TASK = 4  # ticker directories per task of a full build (~500 files at 1d)
_NAIVE_NS = pa.timestamp("ns")
_FOUND_FIELDS = Found._fields[:8]  # path .. month: what the scan names


@dataclass(frozen=True)
class SessionArrays:
    """The per-day counts of every file, flat: file ``i`` (a row of ``FileIndex.files``)
    has ``days[offsets[i]:offsets[i + 1]]`` with ``bars[...]`` distinct bar times each."""

    offsets: np.ndarray  # int64 [files + 1]
    days: np.ndarray  # int32, days since 1970-01-01
    bars: np.ndarray  # uint16


@dataclass(frozen=True)
class FileIndex:
    """Every indexed bar file of a workspace (see the module docstring for the columns)."""

    root: Path
    files: pl.DataFrame
    stats: RefreshStats = field(default_factory=RefreshStats)
    schemas: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    state: IndexState = field(default_factory=IndexState)
    # The persisted cold shard when ``files`` starts with its records (as loaded).
    cold: ColdShard | None = None

    @functools.cached_property
    def sessions(self) -> SessionArrays:
        """The session_days / session_bars columns as flat numpy arrays, without a copy."""
        days = self.files["session_days"].rechunk().to_arrow()
        bars = self.files["session_bars"].rechunk().to_arrow()
        return SessionArrays(
            numpy_values(days.offsets, np.int64),
            numpy_values(days.values, np.int32),
            numpy_values(bars.values, np.uint16),
        )

    @property
    def readable(self) -> pl.DataFrame:
        import polars as pl

        return self.files.filter(pl.col("error").is_null())

    @property
    def unreadable(self) -> pl.DataFrame:
        import polars as pl

        return self.files.filter(pl.col("error").is_not_null())

    def intervals(self) -> list[str]:
        return sorted(set(self.files["interval"].unique().to_list()))


def numpy_values(array: pa.Array, dtype: type) -> np.ndarray:
    """A primitive array's values (no nulls) as numpy, read in place from its buffer.

    pyarrow's to_numpy imports pandas (half a second) and took seconds on a sliced view of
    15 million values; the buffer is instant. ``dtype`` must match the physical type.
    """
    if len(array) == 0:
        return np.zeros(0, dtype=dtype)
    size = np.dtype(dtype).itemsize
    return np.frombuffer(
        array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * size
    )


@dataclass(frozen=True)
class _Content:
    """What reading one file gave: its footer facts and per-day counts, or an error."""

    size: int
    mtime_ns: int
    rows: int | None = None
    min_date: int | None = None
    max_date: int | None = None
    fingerprint: str | None = None
    columns: list[str] | None = None
    types: list[str] | None = None
    error: str | None = None
    days: np.ndarray | None = None  # int32 days since the epoch
    bars: np.ndarray | None = None  # uint16


def schema_fingerprint(schema: pa.Schema) -> str:
    """16 hex digits over names and Arrow types in order; metadata ignored; stable."""
    text = ";".join(f"{f.name}:{f.type}" for f in schema)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def _date_values(column: pa.ChunkedArray) -> np.ndarray:
    """The bar times as int64 ns of naive local time, nulls dropped; raises ValueError."""
    kind = column.type
    if kind == _NAIVE_NS and column.null_count == 0 and column.num_chunks == 1:
        return numpy_values(column.chunk(0), np.int64)  # what the collector writes
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:  # be liberal: a zoned column's local wall time
            import pyarrow.compute as pc  # (imported here: a second at start-up, rarely used)

            column = pc.local_timestamp(column)
        column = column.cast(pa.timestamp("ns"))
    elif pa.types.is_date(kind):
        column = column.cast(pa.timestamp("ns"))
    else:
        raise ValueError(f"`date` column is {kind}, not a timestamp")
    return numpy_values(column.drop_null().combine_chunks(), np.int64)


def per_day_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(days since the epoch, distinct bar times on each day) of int64 ns bar times."""
    if not len(values):
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.uint16)
    if len(values) > 1 and not np.all(values[1:] > values[:-1]):
        values = np.unique(values)
    days = values // NS_PER_DAY  # floor division: right for dates before 1970 too
    starts = np.flatnonzero(np.concatenate(([True], days[1:] != days[:-1])))
    counts = np.diff(np.append(starts, len(days)))
    return days[starts].astype(np.int32), np.minimum(counts, 65535).astype(np.uint16)


@functools.lru_cache(maxsize=64)
def _schema_facts(schema: pa.Schema) -> tuple[str, list[str], list[str]]:
    """(fingerprint, column names, type names): a store has a handful of schemas, and
    hundreds of thousands of files to look them up for."""
    return schema_fingerprint(schema), list(schema.names), [str(t) for t in schema.types]


def _read_content(path: Path, st: os.stat_result, limits: FileLimits) -> _Content:
    facts: dict[str, Any] = {}
    try:
        # A native file (no filesystem resolution, no pre-buffering), pyarrow's reader
        # without ParquetFile's Python wrapper, and one column read: the per-file cost of
        # 740,000 files is mostly fixed costs like these.
        with pa.OSFile(str(path)) as handle:
            reader = pq.ParquetReader()
            reader.open(handle, pre_buffer=False, arrow_extensions_enabled=True)
            schema, metadata = reader.schema_arrow, reader.metadata
            fingerprint, columns, types = _schema_facts(schema)
            facts = {
                "rows": metadata.num_rows,
                "fingerprint": fingerprint,
                "columns": columns,
                "types": types,
            }
            found = columns.count("date")
            if found != 1:
                error = "no `date` column" if not found else f"{found} `date` columns"
                return _Content(st.st_size, st.st_mtime_ns, error=error, **facts)
            too_large = footer_problem(metadata, limits)
            if too_large is not None:  # its date column alone could exhaust the memory
                return _Content(st.st_size, st.st_mtime_ns, error=too_large, **facts)
            values = _date_values(reader.read_column(columns.index("date")))
    except FileNotFoundError:  # vanished: the caller drops it from the index
        raise
    except (pa.ArrowException, OSError, ValueError, NotImplementedError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _Content(st.st_size, st.st_mtime_ns, error=message, **facts)
    days, bars = per_day_counts(values)
    return _Content(
        st.st_size,
        st.st_mtime_ns,
        min_date=int(values.min()) if len(values) else None,
        max_date=int(values.max()) if len(values) else None,
        days=days,
        bars=bars,
        **facts,
    )


def read_file(path: Path, limits: FileLimits | None = None) -> tuple[_Content | None, int]:
    """Read one bar file; (None, _) when it vanished. The int is 1 when it was retried.

    The file's stat is taken before and after reading; if they differ, the collector
    replaced or rewrote it meanwhile, and it is read once more. A file still changing
    then is recorded with an error and its earlier stat, so the next refresh reads it.
    """
    for attempt in (0, 1):
        try:
            before = os.stat(path)
            content = _read_content(path, before, limits or FileLimits())
            after = os.stat(path)
        except FileNotFoundError:
            return None, attempt
        if (before.st_size, before.st_mtime_ns, before.st_ino) == (
            after.st_size,
            after.st_mtime_ns,
            after.st_ino,
        ):
            return content, attempt
    return _Content(before.st_size, before.st_mtime_ns, error="changed while being read"), 1


def _records_table(found: list[Found], contents: list[_Content]) -> pa.Table:
    """Arrow records for freshly read files, in the index schema."""
    columns: dict[str, list[Any]] = {
        name: [item[i] for item in found] for i, name in enumerate(_FOUND_FIELDS)
    }
    columns["size"] = [c.size for c in contents]
    columns["mtime_ns"] = [c.mtime_ns for c in contents]
    columns["rows"] = [c.rows for c in contents]
    columns["min_date"] = [c.min_date for c in contents]
    columns["max_date"] = [c.max_date for c in contents]
    columns["schema_fingerprint"] = [c.fingerprint for c in contents]
    columns["error"] = [c.error for c in contents]
    lengths = [0 if c.days is None else len(c.days) for c in contents]
    offsets = pa.array(np.concatenate(([0], np.cumsum(lengths, dtype=np.int64))), pa.int32())
    days = [c.days for c in contents if c.days is not None]
    bars = [c.bars for c in contents if c.bars is not None]
    flat_days = np.concatenate(days) if days else np.array([], dtype=np.int32)
    flat_bars = np.concatenate(bars) if bars else np.array([], dtype=np.uint16)
    # date32 is an int32 day count: the buffer is reused, not converted.
    day_values = pa.Array.from_buffers(pa.date32(), len(flat_days), [None, pa.py_buffer(flat_days)])
    arrays = [
        pa.array(columns[f.name], f.type) for f in INDEX_SCHEMA if f.name not in SESSION_FIELDS
    ]
    arrays += [
        pa.ListArray.from_arrays(offsets, day_values),
        pa.ListArray.from_arrays(offsets, pa.array(flat_bars, pa.uint16())),
    ]
    return pa.Table.from_arrays(arrays, schema=INDEX_SCHEMA)


def _schemas_of(contents: list[_Content]) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for content in contents:
        if content.fingerprint is not None and content.fingerprint not in found:
            found[content.fingerprint] = list(
                zip(content.columns or [], content.types or [], strict=True)
            )
    return found


def _empty_frame(sessions: bool = True) -> pl.DataFrame:
    import polars as pl

    return pl.from_arrow((INDEX_SCHEMA if sessions else WITHOUT_SESSIONS).empty_table())


def load_index(root: Path, *, sessions: bool = True) -> FileIndex:
    """The persisted index as it is, without looking at the data tree.

    Empty when there is none yet, or when it is unreadable or of another version (it is
    parqctl's own cache: the next refresh rebuilds it). ``sessions=False`` leaves out the
    per-session lists, which are most of what there is to read. The records of the cold
    shard come first (``FileIndex.cold``), then the hot ones, each part in path order.
    """
    import polars as pl

    loaded = index_shards.read_index(root, INDEX_SCHEMA if sessions else WITHOUT_SESSIONS)
    state = load_state(root)
    if loaded is None:
        return FileIndex(root, _empty_frame(sessions), state=state)
    files = pl.from_arrow(loaded.table)
    return FileIndex(root, files, schemas=loaded.schemas, state=state, cold=loaded.cold)


def _summary(files: pl.DataFrame) -> dict[str, list[Any]]:
    """SUMMARY_COLUMNS of every (dataset, ticker), column by column (JSON: read without
    pyarrow; dates as epoch nanoseconds)."""
    import polars as pl

    with_bars = pl.col("error").is_null() & pl.col("max_date").is_not_null()
    # A dataset has one kind and one interval: grouped by (dataset, ticker) alone, over the
    # columns it reads (half the time and memory of 740k records grouped by four strings).
    summary = (
        files.select(
            "dataset",
            "kind",
            "interval",
            "ticker",
            "venue",
            "size",
            "rows",
            "error",
            "min_date",
            "max_date",
            "mtime_ns",
        )
        .group_by("dataset", "ticker")
        .agg(
            kind=pl.col("kind").first(),
            interval=pl.col("interval").first(),
            files=pl.len().cast(pl.Int64),
            bytes=pl.col("size").sum(),
            rows=pl.col("rows").sum(),
            unreadable=pl.col("error").is_not_null().sum().cast(pl.Int64),
            min_date=pl.col("min_date").min().cast(pl.Int64),
            max_date=pl.col("max_date").filter(with_bars).max().cast(pl.Int64),
            venue=pl.col("venue").first(),
            written_ns=pl.col("mtime_ns").filter(with_bars).max(),
        )
        .sort("dataset", "ticker")
    )
    return {name: summary[name].to_list() for name in SUMMARY_COLUMNS}


def _save_summary(root: Path, files: pl.DataFrame) -> None:
    with atomic_open(confined(root, INDEX_DIR / SUMMARY_FILE), durable=False) as handle:
        handle.write(json.dumps(_summary(files)).encode("utf-8"))


def _repair_summary(root: Path, files: pl.DataFrame) -> None:
    """Write the summary again when it is missing or from an older parqctl (other columns):
    health then reads it instead of walking the tree."""
    if load_summary(root) is None and not files.is_empty():
        with contextlib.suppress(OSError):
            _save_summary(root, files)


def _save_summary_of(root: Path, files: pl.DataFrame) -> str | None:
    try:
        _save_summary(root, files)
    except OSError as exc:
        return f"cannot write {root / INDEX_DIR / SUMMARY_FILE}: {exc.strerror or exc}"
    return None


def _read_chunk(
    root: Path, chunk: list[Found], limits: FileLimits
) -> tuple[list[Found], list[_Content], int]:
    """Read some files (vanished ones left out): (files, contents, retries)."""
    done, contents, retried = [], [], 0
    for item in chunk:
        content, again = read_file(root / item.path, limits)
        retried += again
        if content is not None:
            done.append(item)
            contents.append(content)
    return done, contents, retried


def _read_chunk_table(
    root: Path, chunk: list[Found], limits: FileLimits
) -> tuple[pa.Table, dict[str, list[tuple[str, str]]], int]:
    """A worker process's task: the records of some files as Arrow (cheap to send back)."""
    done, contents, retried = _read_chunk(root, chunk, limits)
    return _records_table(done, contents), _schemas_of(contents), retried


def _start_workers_early(workers: int) -> None:
    """Start the fork server now, while the index loads: the hot months of a large store
    changed (the collector's daily update rewrites thousands), so files will be read in
    worker processes, and the server's start (an interpreter and its imports, half a
    second) then overlaps the loading instead of adding to it."""
    from core import fork_server

    if workers > 1 and fork_server.may_start_workers():
        fork_server.context()  # the index's polars frames start threads: no plain fork then


def process_context():
    """Fork when this process has one thread (cheapest), else the fork server."""
    from core import fork_server

    try:
        single = len(os.listdir("/proc/self/task")) == 1
    except OSError:
        single = False
    import multiprocessing

    return multiprocessing.get_context("fork") if single else fork_server.context()


def _in_worker_processes(task, chunks: list[list], workers: int, tracker, cancel):
    """``task(chunk)`` of each chunk in worker processes, yielded in order; two tasks a
    worker in flight; on cancellation stops and drops those not yet done."""
    with ProcessPoolExecutor(max_workers=workers, mp_context=process_context()) as pool:
        pending = iter(chunks)
        running = {}
        for chunk in pending:
            running[pool.submit(task, chunk)] = len(chunk)
            if len(running) >= workers * 2:
                break
        while running:
            future = next(iter(running))
            yield future.result()
            tracker.advance(running.pop(future))
            if cancel is not None and cancel.cancelled:
                for other in running:
                    other.cancel()
                running.clear()
                break
            chunk = next(pending, None)
            if chunk is not None:
                running[pool.submit(task, chunk)] = len(chunk)


def _walk_and_read(
    root: Path, tickers: list[index_scan.TickerDir], limits: FileLimits
) -> tuple[pa.Table, dict[str, list[tuple[str, str]]], int, index_scan.ScanResult]:
    """A worker process's task in a full build: walk some ticker directories, read what
    is there; the scan's strays and unreadable directories come back with the records."""
    walked = index_scan.walk_tickers(tickers)
    done, contents, retried = _read_chunk(root, walked.found, limits)
    walked.found.clear()
    return _records_table(done, contents), _schemas_of(contents), retried, walked


def _build_in_workers(
    root: Path,
    workers: int,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    limits: FileLimits,
) -> tuple[ScanResult, pa.Table, dict[str, list[tuple[str, str]]], int] | None:
    """A full build of a large partitioned store, the tree walked by the worker processes
    as they read: a walk of 740,000 files in the main process took most of a minute
    before the first file was read. A small store is scanned, then read; None when there
    are no worker processes here (one core, a daemonic process): the caller scans."""
    from core.fork_server import may_start_workers

    if workers < 2 or not may_start_workers():
        return None
    result, tickers = index_scan.scan_outline(root)
    if len(tickers) < _WALK_IN_WORKERS_FROM:  # read as any scan's files are
        index_scan.add_walked(result, index_scan.walk_tickers(tickers))
        todo = sorted(result.found, key=lambda f: f.path)
        result.found.clear()
        return result, *_read_all(root, todo, workers, progress, cancel, limits)
    legacy = sorted(result.found, key=lambda f: f.path)
    result.found.clear()
    tables, schemas, retried = [], {}, 0
    tracker = ProgressTracker("indexing", len(tickers), "ticker directories", progress)
    chunks = [tickers[i : i + _TICKERS_PER_TASK] for i in range(0, len(tickers), _TICKERS_PER_TASK)]
    task = functools.partial(_walk_and_read, root, limits=limits)
    for table, found_schemas, again, walked in _in_worker_processes(
        task, chunks, workers, tracker, cancel
    ):
        tables.append(table)
        schemas.update(found_schemas)
        retried += again
        index_scan.add_walked(result, walked)
    if legacy and not (cancel is not None and cancel.cancelled):
        table, found_schemas, again = _read_all(root, legacy, workers, None, cancel, limits)
        tables.append(table)
        schemas.update(found_schemas)
        retried += again
    table = pa.concat_tables(tables) if tables else INDEX_SCHEMA.empty_table()
    if len(table) > 1 and not _paths_sorted(table):
        table = table.sort_by("path")
    return result, table, schemas, retried


def _paths_sorted(table: pa.Table) -> bool:
    import pyarrow.compute as pc

    paths = table["path"]
    return bool(pc.all(pc.less(paths[:-1], paths[1:])).as_py())


def _read_all(
    root: Path,
    todo: list[Found],
    workers: int,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    limits: FileLimits,
) -> tuple[pa.Table, dict[str, list[tuple[str, str]]], int]:
    """Read the files in ``todo``: (their records, their schemas, retries).

    Many files go to worker processes (the per-file work is mostly Python: threads hold
    the GIL), a few to a thread pool (pyarrow decodes without the GIL, and no process is
    started). On cancellation returns what was read so far, and the caller keeps it.
    """
    if not todo:  # (pa.array would import pandas: half a second)
        return INDEX_SCHEMA.empty_table(), {}, 0
    tracker = ProgressTracker("indexing", len(todo), "files", progress)
    tables: list[pa.Table] = []
    schemas: dict[str, list[tuple[str, str]]] = {}
    retried = 0
    from core.fork_server import may_start_workers

    if len(todo) >= _PROCESS_POOL_FROM and workers > 1 and may_start_workers():
        chunks = [todo[i : i + _PROCESS_CHUNK] for i in range(0, len(todo), _PROCESS_CHUNK)]
        for table, found_schemas, again in _in_worker_processes(
            functools.partial(_read_chunk_table, root, limits=limits),
            chunks,
            workers,
            tracker,
            cancel,
        ):
            tables.append(table)
            schemas.update(found_schemas)
            retried += again
    else:
        done_found: list[Found] = []
        contents: list[_Content] = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for start in range(0, len(todo), _CANCEL_EVERY * workers):
                if cancel is not None and cancel.cancelled:
                    break
                chunk = todo[start : start + _CANCEL_EVERY * workers]
                for item, (content, again) in zip(
                    chunk, pool.map(lambda f: read_file(root / f.path, limits), chunk), strict=True
                ):
                    retried += again
                    if content is not None:
                        done_found.append(item)
                        contents.append(content)
                tracker.advance(len(chunk))
        tables.append(_records_table(done_found, contents))
        schemas = _schemas_of(contents)
    table = pa.concat_tables(tables) if tables else INDEX_SCHEMA.empty_table()
    return table, schemas, retried


def _hot_scope(prior: pl.DataFrame, state: IndexState, now: float, notes) -> HotScope:
    """Months from the one before the last refresh to the one after today."""
    import polars as pl

    today = date.fromtimestamp(now)
    last = date.fromtimestamp(min(state.refreshed_at or now, now))
    known: dict[str, set[str]] = {}
    pairs = prior.filter(pl.col("kind") == "partitioned").select("dataset", "ticker").unique()
    for dataset, tickers in pairs.group_by("dataset").agg("ticker").iter_rows():
        known[dataset] = set(tickers)
    return HotScope(month_key(last) - 1, month_key(today) + 1, known, notes.paths)


def _covered(prior: pl.DataFrame, result: ScanResult) -> pl.Series:
    """Which records of ``prior`` the scan looked at (the others are kept as they are)."""
    import polars as pl

    hot = result.hot
    if hot is None:
        return pl.Series("covered", [True] * prior.height, dtype=pl.Boolean)

    def listed(tickers: dict) -> pl.Expr:
        # One test per dataset (a handful), not a join: a join of 740,000 records copied
        # their paths and names (+100 MB).
        found = pl.lit(False)
        for dataset, names in tickers.items():
            found = found | ((pl.col("dataset") == dataset) & pl.col("ticker").is_in(list(names)))
        return found

    walked: dict[str, set[str]] = {}
    for dataset, ticker in result.walked:
        walked.setdefault(dataset, set()).add(ticker)
    month_key = pl.col("year").cast(pl.Int32) * 12 + pl.col("month").cast(pl.Int32) - 1
    return prior.select(
        (
            (pl.col("kind") == "legacy")
            | ~pl.col("dataset").is_in(list(result.datasets))
            | ~listed(result.present)
            | listed(walked)
            | month_key.is_between(hot.first_month, hot.last_month).fill_null(False)
            | pl.col("path").is_in(list(hot.paths))
        )
        .fill_null(True)  # (a record without a dataset or ticker: looked at, as by a join)
        .alias("covered")
    ).to_series()


def _found_frame(found: list[Found]) -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(
        {
            "path": [f.path for f in found],
            "found_size": [f.size for f in found],
            "found_mtime": [f.mtime_ns for f in found],
        },
        schema={"path": pl.String, "found_size": pl.Int64, "found_mtime": pl.Int64},
    )


def _strays(prior: IndexState, result: ScanResult) -> tuple[Stray, ...]:
    """The strays the scan saw, and those it did not look for (from the last scans)."""
    if result.hot is None:
        return tuple(sorted(result.strays))
    kept = [stray for stray in prior.strays if not stray_looked_at(stray, result)]
    return tuple(sorted(set(kept) | set(result.strays)))


def _save_hot(root: Path, files: pl.DataFrame, result: ScanResult, now: float) -> None:
    """What the next hot scan this month should find if nothing changed (HOT_FILE): the
    stat of every file it will look at, the tickers and datasets it will list."""
    import polars as pl

    first, last = hot_range(now)
    month_key = pl.col("year").cast(pl.Int32) * 12 + pl.col("month").cast(pl.Int32) - 1
    looked = files.filter(
        (pl.col("kind") == "legacy") | month_key.is_between(first, last).fill_null(False)
    )
    known: dict[str, list[str]] = {}
    pairs = files.filter(pl.col("kind") == "partitioned").select("dataset", "ticker").unique()
    for dataset, tickers in pairs.group_by("dataset").agg("ticker").iter_rows():
        known[dataset] = sorted(tickers)
    raw = {
        "range": [first, last],
        "files": looked.select("path", "size", "mtime_ns").rows(),
        "too_large": looked.filter(pl.col("error").fill_null("").str.starts_with(TOO_LARGE)).height,
        "known": known,
        "present": {d: sorted(t) for d, t in result.present.items()},
        "datasets": sorted(result.datasets),
        "index": stat_of(index_path(root)),
        "cold": cold_stat(root),
    }
    write_hot(root, raw)


def _cold_kept(
    root: Path,
    prior: pl.DataFrame,
    cold: ColdShard | None,
    gone: pl.Series,
    fresh: pa.Table,
    now: float,
) -> pl.DataFrame | None:
    """The hot shard's records (with their session lists) when the changes leave the
    persisted cold shard as it is; None when both shards are to be written: a change
    in a cold month, a boundary lagging the hot months, or a cold shard that is not the
    one ``prior`` was loaded with."""
    import polars as pl

    if cold is None or cold.before < hot_range(now)[0] - COLD_LAG or prior.height < cold.rows:
        return None
    if prior.slice(0, cold.rows)["path"].is_in(gone.implode()).any():
        return None
    import pyarrow.compute as pc

    if len(fresh) and pc.any(index_shards.cold_mask(fresh, cold.before)).as_py():
        return None
    if SESSION_FIELDS[0] in prior.columns:
        if index_shards.read_cold_ref(root) != cold:
            return None  # another process wrote the index meanwhile
        return prior.slice(cold.rows)
    # (The hot shard names its cold shard: read once, it answers that question too.)
    hot = index_shards.read_hot(root, INDEX_SCHEMA)
    if hot is None or hot.cold != cold or hot.table.num_rows != prior.height - cold.rows:
        return None
    return pl.from_arrow(hot.table)


def _merged(prior: pl.DataFrame, gone: pl.Series, fresh: pa.Table) -> pl.DataFrame:
    """``prior`` without the ``gone`` paths, with the ``fresh`` records, in path order."""
    import polars as pl

    kept = prior.filter(~prior["path"].is_in(gone.implode()))
    return pl.concat([kept, pl.from_arrow(fresh).cast(prior.schema)], rechunk=False).sort("path")


def _with_cold(
    root: Path, cold_part: pl.DataFrame | None, cold: ColdShard, hot: pl.DataFrame, sessions: bool
) -> tuple[pl.DataFrame, ColdShard | None]:
    """The whole index after a hot-shard write: the cold records (``cold_part``, or read
    from the cold shard when None), then ``hot``."""
    import polars as pl

    if not sessions:
        hot = hot.drop(SESSION_FIELDS)
    if cold_part is None:
        table = index_shards.read_cold(root, cold, INDEX_SCHEMA)
        if table is None:  # another process replaced the index meanwhile: its version
            files, cold = _loaded(root, sessions)
            if files.is_empty():
                raise _UnreadableMeanwhile
            return files, cold
        cold_part = pl.from_arrow(table)
        del table
    return pl.concat([cold_part.select(hot.columns), hot], rechunk=False), cold


def _loaded(root: Path, sessions: bool) -> tuple[pl.DataFrame, ColdShard | None]:
    loaded = load_index(root, sessions=sessions)
    return loaded.files, loaded.cold


def refresh_index(
    root: Path,
    *,
    full: bool = False,
    scan: str = "hot",
    previous: FileIndex | None = None,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    sessions: bool = True,
    limits: FileLimits | None = None,
    now: float | None = None,
) -> FileIndex:
    """Bring the index up to date with the data tree and persist it.

    ``scan`` is ``hot``, ``due`` or ``all`` (see the module docstring); ``full``
    re-reads every file. ``previous`` is an index already in memory (a console
    refreshing periodically), used instead of loading the persisted one. Files are read
    on ``workers`` threads or processes (default: the CPU count). When cancelled, the
    files read so far are kept in the persisted index and JobCancelled is raised; the
    next refresh goes on from there. ``sessions=False`` returns the index without its
    per-session lists, for callers that do not need them: when no file changed, they are
    not even loaded. A file beyond ``limits`` (default: the workspace's ``[limits]``) is
    recorded with its footer facts and a ``too large to read`` error, its data unread.
    ``now`` (epoch seconds) is the time the hot months are counted from (tests).
    """
    arguments = dict(
        full=full,
        scan=scan,
        previous=previous,
        workers=workers,
        progress=progress,
        cancel=cancel,
        sessions=sessions,
        limits=limits,
        now=now,
    )
    try:
        return _refreshed(root, **arguments)
    except _UnreadableMeanwhile:  # (never raised by a full refresh) rebuilt, as any damage
        return _refreshed(root, **{**arguments, "full": True, "previous": None})


class _UnreadableMeanwhile(Exception):
    """The index could not be read whole after its records were: its session lists are
    damaged (they are stored apart: core.availability.arrow_cache), or another process
    replaced it with one that is."""


def _refreshed(
    root: Path,
    *,
    full: bool,
    scan: str,
    previous: FileIndex | None,
    workers: int | None,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    sessions: bool,
    limits: FileLimits | None,
    now: float | None,
) -> FileIndex:
    import polars as pl

    started = time.perf_counter()
    now = time.time() if now is None else now
    hot_only = scan == "hot" or (scan == "due" and not full_scan_due(load_state(root), now))
    looked_at = None if full or previous is not None or not hot_only else unchanged_hot(root, now)
    if looked_at is not None:  # nothing changed: the index as it was saved
        loaded = load_index(root, sessions=sessions)
        if loaded.files.is_empty() and looked_at:
            raise _UnreadableMeanwhile
        _repair_summary(root, loaded.files)
        stats = RefreshStats(
            scanned=loaded.files.height,
            reused=loaded.files.height,
            elapsed_s=time.perf_counter() - started,
            scope="hot",
            looked_at=looked_at,
        )
        return dataclasses.replace(loaded, stats=stats)
    if hot_only and previous is None and index_scan.kept_found(root) >= _PROCESS_POOL_FROM:
        _start_workers_early(workers or os.cpu_count() or 1)
    if previous is not None and previous.schemas is not None and not full:
        prior, schemas, state = previous.files, dict(previous.schemas), load_state(root)
        cold = previous.cold
    elif full:
        prior, schemas, state, cold = _empty_frame(sessions=False), {}, load_state(root), None
    else:
        # Without the session lists (most of the index): they are read below, only if
        # something changed, and after the worker processes have started.
        loaded = load_index(root, sessions=False)
        prior, schemas, state, cold = loaded.files, dict(loaded.schemas), loaded.state, loaded.cold
        del loaded  # (so that the frame is freed when ``prior`` is)
    notes = index_journal.pending(root)
    everything = (
        full
        or scan == "all"
        or state.full_scan_at is None
        or (scan == "due" and full_scan_due(state, now))
    )
    hot = None if everything else _hot_scope(prior, state, now, notes)
    workers = workers or os.cpu_count() or 1
    limits = limits or workspace_limits(root)
    built = (
        _build_in_workers(root, workers, progress, cancel, limits)
        if (everything and prior.is_empty())
        else None
    )
    if built is not None:  # a first or full build: everything read, nothing to compare
        result, fresh, fresh_schemas, retried = built
        del built  # (the records are freed once written)
        covered = _covered(prior, result)
        unchanged = pl.Series("path", [], dtype=pl.String)
        removed, looked_at, changed, todo = 0, fresh.num_rows, fresh.num_rows > 0, []
    else:
        result = index_scan.scan(root, hot)
        covered = _covered(prior, result)
        seen = _found_frame(result.found)
        looked = prior.select("path", "size", "mtime_ns", "error").filter(covered)
        matched = looked.join(seen, on="path", how="inner")
        unchanged = matched.filter(
            (pl.col("size") == pl.col("found_size"))
            & (pl.col("mtime_ns") == pl.col("found_mtime"))
            & ~pl.col("error").fill_null("").str.starts_with(TOO_LARGE)
        )["path"]
        removed = looked.height - matched.height
        unchanged_set = set(unchanged.to_list())
        todo = sorted(
            (f for f in result.found if f.path not in unchanged_set), key=lambda f: f.path
        )
        looked_at, changed = len(result.found), bool(todo)
        # A scan of 740,000 files is a few hundred MB of tuples and frames: gone before
        # reading.
        result.found.clear()
        del seen, looked, matched, unchanged_set
        fresh, fresh_schemas, retried = _read_all(root, todo, workers, progress, cancel, limits)
    persist_error = None
    del todo
    opened = fresh.num_rows
    if not (opened or removed or changed or full):
        files = prior
    else:
        schemas.update(fresh_schemas)
        gone = prior.filter(covered & ~prior["path"].is_in(unchanged.implode()))["path"]
        kept = None if full else _cold_kept(root, prior, cold, gone, fresh, now)
        if kept is not None:  # every change is in the hot shard: the cold one stays
            hot = _merged(kept, gone, fresh)
            del kept, fresh
            persist_error = index_shards.write_hot(
                root, index_shards.arrow_batches(hot), schemas, cold
            )
            with_lists = SESSION_FIELDS[0] in prior.columns
            cold_part = prior.slice(0, cold.rows) if with_lists or not sessions else None
            del prior  # before the cold shard's session lists are read
            files, cold = _with_cold(root, cold_part, cold, hot, sessions)
            del cold_part, hot
        else:
            if prior.height and SESSION_FIELDS[0] not in prior.columns:  # now whole
                height = prior.height
                del prior
                prior = load_index(root).files
                if prior.height != height and not full:
                    raise _UnreadableMeanwhile
            # A first build arrives in path order and is written as it is: no frame.
            whole = fresh if not prior.height else _merged(prior, gone, fresh)
            del prior, fresh
            persist_error = index_shards.write_index(root, whole, schemas, hot_range(now)[0])
            if persist_error is None:  # what was written, cold shard first
                del whole
                files, cold = _loaded(root, sessions)
            else:
                files, cold = pl.DataFrame(whole), None
        if persist_error is None:
            persist_error = _save_summary_of(root, files)
    cancelled = cancel is not None and cancel.cancelled
    new_state = IndexState(
        full_scan_at=now if everything and not cancelled else state.full_scan_at,
        refreshed_at=now if not cancelled else state.refreshed_at,
        strays=_strays(state, result),
        unreadable=tuple(result.unreadable),
    )
    if persist_error is None:
        persist_error = save_state(root, new_state)
        if persist_error is None and not cancelled:
            index_journal.consume(root, notes)
            _save_hot(root, files, result, now)
            _repair_summary(root, files)
    stats = RefreshStats(
        scanned=files.height,
        opened=opened,
        reused=files.height - opened,
        removed=removed,
        retried=retried,
        elapsed_s=time.perf_counter() - started,
        persisted=persist_error is None,
        persist_error=persist_error,
        scope="all" if everything else "hot",
        looked_at=looked_at,
    )
    if cancel is not None:
        cancel.raise_if_cancelled("run it again: the files read so far are kept in the index")
    if not sessions:
        files = files.drop(SESSION_FIELDS, strict=False)
    elif SESSION_FIELDS[0] not in files.columns:  # nothing changed: as it was saved
        reloaded = load_index(root)
        if reloaded.files.height != files.height and not full:
            raise _UnreadableMeanwhile
        files, cold = reloaded.files, reloaded.cold
    return FileIndex(root, files, stats, schemas, new_state, cold)
