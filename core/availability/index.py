"""The incremental inventory of every bar file, with per-session bar counts.

    index = refresh_index(ws.root)      # scan, read what is new or changed, persist
    index = load_index(ws.root)         # what was persisted, without looking at the data
    refresh_index(ws.root, sessions=False)  # without the per-session lists (a tenth of
                                        # the time when nothing changed)
    index.files                         # polars, one row per file (columns below)
    index.readable / index.unreadable   # the same rows, split on ``error``
    index.stats                         # what the refresh did: opened, reused, removed

One record per bar file (legacy and partitioned), refreshed by (path, size, mtime_ns):
an unchanged file is never opened again, a removed one leaves the index, a new or
changed one is read: its footer (rows, schema) and its ``date`` column only. Temp and
partial files are ignored. An unreadable file is a record with its error, never a crash;
so is a file whose footer is beyond the workspace's ``[limits]`` (its error starts with
``too large to read``; it is looked at again at every refresh, so raising the limit
takes effect at once).

The index is persisted as one Arrow IPC file (zstd) under ``.parqctl/index/``: its list
columns load in milliseconds, where Parquet needs a third of a second for 10,000 files.
Writes are parqctl's own state: atomic replace, last writer wins, no run lock.

The record frame (``FileIndex.files``, polars), one row per file, sorted by path:

=================== ======================================================================
path                relative to the workspace root, ``/``-separated
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
schema_fingerprint  a short stable hash of the column names and Arrow types
columns, types      column names and their Arrow types, in file order
error               null when the file was read; else why not (truncated, no ``date``, ...)
session_days        the calendar days with bars, ascending (a bar's day is its session)
session_bars        distinct bar times on each of those days
=================== ======================================================================

``rows - sum(session_bars)`` is the number of duplicate (or null) bar times in a file.
``FileIndex.sessions`` gives the two list columns as flat numpy arrays.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pyarrow.parquet as pq

from core.config import FileLimits
from core.jobs import CancelToken, ProgressCallback, ProgressTracker
from core.safety.atomic import atomic_path, is_temp_name
from core.store.bars import TOO_LARGE, footer_problem, workspace_limits
from core.store.layout import PARTITION_FILE
from core.store.workspace import STATE_DIR, discover_datasets

if TYPE_CHECKING:
    import polars as pl

INDEX_DIR = Path(STATE_DIR) / "index"
INDEX_FILE = "files.arrow"
INDEX_VERSION = "1"
_VERSION_KEY = b"parqctl.index.version"
NS_PER_DAY = 86_400_000_000_000
_YEAR_DIR = re.compile(r"^year=(\d{4})$")
_MONTH_DIR = re.compile(r"^month=(\d{1,2})$")
_CANCEL_EVERY = 64  # files between cancel checks and progress reports

INDEX_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("kind", pa.string()),
        ("interval", pa.string()),
        ("venue", pa.string()),
        ("ticker", pa.string()),
        ("year", pa.int16()),
        ("month", pa.int8()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("rows", pa.int64()),
        ("min_date", pa.timestamp("ns")),
        ("max_date", pa.timestamp("ns")),
        ("schema_fingerprint", pa.string()),
        ("columns", pa.list_(pa.string())),
        ("types", pa.list_(pa.string())),
        ("error", pa.string()),
        ("session_days", pa.list_(pa.date32())),
        ("session_bars", pa.list_(pa.uint16())),
    ]
)
_SCALAR_FIELDS = INDEX_SCHEMA.names[:13]  # path .. schema_fingerprint
SESSION_FIELDS = ("session_days", "session_bars")
# The index without the per-session lists: a fiftieth of its size once decompressed.
_WITHOUT_SESSIONS = pa.schema([f for f in INDEX_SCHEMA if f.name not in SESSION_FIELDS])


def index_path(root: Path) -> Path:
    return root / INDEX_DIR / INDEX_FILE


def is_temp_file(name: str) -> bool:
    """A writer's temp or partial file (ours or the collector's): never a bar file."""
    return is_temp_name(name) or ".tmp" in name or name.endswith(".partial")


@dataclass(frozen=True)
class RefreshStats:
    """What a refresh did; ``opened`` counts files whose content was read."""

    scanned: int = 0
    opened: int = 0
    reused: int = 0
    removed: int = 0
    retried: int = 0  # files that changed while being read and were read again
    elapsed_s: float = 0.0
    persisted: bool = True
    persist_error: str | None = None


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
        return sorted(set(self.files["interval"].to_list()))


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


class _Found(NamedTuple):  # made for every file at every refresh: a tuple is cheapest
    """A bar file seen on disk by the scan."""

    path: str
    kind: str
    interval: str
    venue: str | None
    ticker: str
    year: int | None
    month: int | None
    size: int
    mtime_ns: int


def _entries(path: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            yield from entries
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return


def _stat_entry(entry: os.DirEntry[str]) -> os.stat_result | None:
    try:
        if entry.is_file(follow_symlinks=False):
            return entry.stat(follow_symlinks=False)
    except FileNotFoundError:  # removed between listing and stat
        pass
    return None


def _stat_file(path: str) -> os.stat_result | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def scan(root: Path) -> list[_Found]:
    """Every bar file below ``data/`` with its stat, from directory entries alone."""
    found: list[_Found] = []
    for dataset in discover_datasets(root):
        prefix = dataset.path.relative_to(root).as_posix() + "/"
        if dataset.kind == "legacy":
            for entry in _entries(dataset.path):
                name = entry.name
                if not name.endswith(".parquet") or is_temp_file(name) or name == ".parquet":
                    continue
                st = _stat_entry(entry)
                if st is not None:
                    found.append(
                        _Found(
                            prefix + name,
                            "legacy",
                            dataset.interval,
                            None,
                            name[: -len(".parquet")],
                            None,
                            None,
                            st.st_size,
                            st.st_mtime_ns,
                        )
                    )
        elif dataset.kind == "partitioned":
            found += _scan_partitions(dataset.path, prefix, dataset.interval, dataset.venue.id)
    return found


def _scan_partitions(path: Path, prefix: str, interval: str, venue: str) -> list[_Found]:
    """``ticker=<T>/year=<YYYY>/month=<MM>/data.parquet`` below one partitioned dataset."""
    found = []
    for ticker_dir in _entries(path):
        if not ticker_dir.name.startswith("ticker=") or ticker_dir.name == "ticker=":
            continue
        ticker = ticker_dir.name[len("ticker=") :]
        for year_dir in _entries(Path(ticker_dir.path)):
            year = _YEAR_DIR.match(year_dir.name)
            if not year:
                continue
            for month_dir in _entries(Path(year_dir.path)):
                month = _MONTH_DIR.match(month_dir.name)
                if not month:
                    continue
                st = _stat_file(os.path.join(month_dir.path, PARTITION_FILE))
                if st is not None:
                    rel = f"{prefix}{ticker_dir.name}/{year_dir.name}/{month_dir.name}/{PARTITION_FILE}"
                    found.append(
                        _Found(
                            rel,
                            "partitioned",
                            interval,
                            venue,
                            ticker,
                            int(year.group(1)),
                            int(month.group(1)),
                            st.st_size,
                            st.st_mtime_ns,
                        )
                    )
    return found


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
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:  # be liberal: a zoned column's local wall time
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


def _read_content(path: Path, st: os.stat_result, limits: FileLimits) -> _Content:
    facts: dict[str, Any] = {}
    try:
        # A native file (no filesystem resolution, no pre-buffering) and one column read
        # halve the per-file cost against ParquetFile(path).read(columns=...).
        with pa.OSFile(str(path)) as handle, pq.ParquetFile(handle, pre_buffer=False) as parquet:
            schema = parquet.schema_arrow
            facts = {
                "rows": parquet.metadata.num_rows,
                "fingerprint": schema_fingerprint(schema),
                "columns": list(schema.names),
                "types": [str(t) for t in schema.types],
            }
            found = schema.names.count("date")
            if found != 1:
                error = "no `date` column" if not found else f"{found} `date` columns"
                return _Content(st.st_size, st.st_mtime_ns, error=error, **facts)
            too_large = footer_problem(parquet.metadata, limits)
            if too_large is not None:  # its date column alone could exhaust the memory
                return _Content(st.st_size, st.st_mtime_ns, error=too_large, **facts)
            values = _date_values(parquet.reader.read_column(schema.get_field_index("date")))
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


def _records_table(found: list[_Found], contents: list[_Content]) -> pa.Table:
    """Arrow records for freshly read files, in the index schema."""
    columns: dict[str, list[Any]] = {name: [] for name in _SCALAR_FIELDS}
    names, types, errors = [], [], []
    day_offsets, days, bars = [0], [], []
    for item, content in zip(found, contents, strict=True):
        columns["path"].append(item.path)
        columns["kind"].append(item.kind)
        columns["interval"].append(item.interval)
        columns["venue"].append(item.venue)
        columns["ticker"].append(item.ticker)
        columns["year"].append(item.year)
        columns["month"].append(item.month)
        columns["size"].append(content.size)
        columns["mtime_ns"].append(content.mtime_ns)
        columns["rows"].append(content.rows)
        columns["min_date"].append(content.min_date)
        columns["max_date"].append(content.max_date)
        columns["schema_fingerprint"].append(content.fingerprint)
        names.append(content.columns)
        types.append(content.types)
        errors.append(content.error)
        if content.days is not None:
            days.append(content.days)
            bars.append(content.bars)
            day_offsets.append(day_offsets[-1] + len(content.days))
        else:
            day_offsets.append(day_offsets[-1])
    arrays = [pa.array(columns[name], INDEX_SCHEMA.field(name).type) for name in _SCALAR_FIELDS]
    offsets = pa.array(day_offsets, pa.int32())
    flat_days = np.concatenate(days) if days else np.array([], dtype=np.int32)
    flat_bars = np.concatenate(bars) if bars else np.array([], dtype=np.uint16)
    del days, bars
    # date32 is an int32 day count: the buffer is reused, not converted.
    day_values = pa.Array.from_buffers(pa.date32(), len(flat_days), [None, pa.py_buffer(flat_days)])
    arrays += [
        pa.array(names, INDEX_SCHEMA.field("columns").type),
        pa.array(types, INDEX_SCHEMA.field("types").type),
        pa.array(errors, pa.string()),
        pa.ListArray.from_arrays(offsets, day_values),
        pa.ListArray.from_arrays(offsets, pa.array(flat_bars, pa.uint16())),
    ]
    return pa.Table.from_arrays(arrays, schema=INDEX_SCHEMA)


def _empty_frame(sessions: bool = True) -> pl.DataFrame:
    import polars as pl

    return pl.from_arrow((INDEX_SCHEMA if sessions else _WITHOUT_SESSIONS).empty_table())


def load_index(root: Path, *, sessions: bool = True) -> FileIndex:
    """The persisted index as it is, without looking at the data tree.

    Empty when there is none yet, or when it is unreadable or of another version (it is
    parqctl's own cache: the next refresh rebuilds it). ``sessions=False`` leaves out the
    per-session lists, which are most of what there is to read.
    """
    import polars as pl

    schema = INDEX_SCHEMA if sessions else _WITHOUT_SESSIONS
    path = index_path(root)
    try:
        table = feather.read_table(path, columns=schema.names, memory_map=False)
    except (FileNotFoundError, NotADirectoryError):
        return FileIndex(root, _empty_frame(sessions))
    except (pa.ArrowException, OSError, KeyError):
        return FileIndex(root, _empty_frame(sessions))
    metadata = table.schema.metadata or {}
    if metadata.get(
        _VERSION_KEY
    ) != INDEX_VERSION.encode() or not table.schema.remove_metadata().equals(schema):
        return FileIndex(root, _empty_frame(sessions))
    return FileIndex(root, pl.from_arrow(table))


def _save(root: Path, table: pa.Table) -> str | None:
    """Write the index atomically; returns why not when the state dir is not writable."""
    path = index_path(root)
    table = table.replace_schema_metadata({_VERSION_KEY: INDEX_VERSION.encode()})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # No fsync: this is a cache; a torn or lost file is detected on load and rebuilt.
        with atomic_path(path, durable=False) as tmp:
            feather.write_feather(table, tmp, compression="zstd")
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc}"
    return None


def _read_all(
    root: Path,
    todo: list[_Found],
    workers: int,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    limits: FileLimits,
) -> tuple[list[_Found], list[_Content], int]:
    """Read the files in ``todo`` on a thread pool (pyarrow decodes without the GIL).

    Returns the files read (vanished ones left out), their contents, and the retries.
    On cancellation returns what was read so far, and the caller keeps it.
    """
    tracker = ProgressTracker("indexing", len(todo), "files", progress)
    done_found: list[_Found] = []
    contents: list[_Content] = []
    retried = 0
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
    return done_found, contents, retried


def _unchanged(prior: pl.DataFrame, found: list[_Found]) -> tuple[list[str], list[int]]:
    """The paths of ``prior`` and the positions of those still on disk as recorded; a file
    refused as too large is never kept (its footer is read again, against the limits of
    now)."""
    seen = {(f.path, f.size, f.mtime_ns) for f in found}
    prior_paths = prior["path"].to_list()
    keep = [
        i
        for i, (key, error) in enumerate(
            zip(
                zip(
                    prior_paths,
                    prior["size"].to_list(),
                    prior["mtime_ns"].to_list(),
                    strict=True,
                ),
                prior["error"].to_list(),
                strict=True,
            )
        )
        if key in seen and not (error and error.startswith(TOO_LARGE))
    ]
    return prior_paths, keep


def refresh_index(
    root: Path,
    *,
    full: bool = False,
    previous: FileIndex | None = None,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    sessions: bool = True,
    limits: FileLimits | None = None,
) -> FileIndex:
    """Bring the index up to date with the data tree and persist it.

    ``full`` re-reads every file. ``previous`` is an index already in memory (a console
    refreshing periodically), used instead of loading the persisted one. Files are read
    on ``workers`` threads (default: the CPU count). When cancelled, the files read so
    far are kept in the persisted index and JobCancelled is raised; the next refresh
    goes on from there. ``sessions=False`` returns the index without its per-session
    lists, for callers that do not need them: when no file changed, they are not even
    loaded. A file beyond ``limits`` (default: the workspace's ``[limits]``) is recorded
    with its footer facts and a ``too large to read`` error, its data unread.
    """
    import polars as pl

    started = time.perf_counter()
    if full:
        prior = _empty_frame()
    elif previous is not None:
        prior = previous.files
    else:
        prior = load_index(root, sessions=sessions).files
    found = scan(root)
    prior_paths, keep = _unchanged(prior, found)
    if (len(keep) < len(found) or len(keep) < len(prior_paths)) and SESSION_FIELDS[0] not in prior:
        # Something changed, and the persisted index is rewritten whole: load all of it.
        prior = load_index(root).files
        prior_paths, keep = _unchanged(prior, found)
    kept_paths = {prior_paths[i] for i in keep}
    todo = sorted((f for f in found if f.path not in kept_paths), key=lambda f: f.path)
    done, contents, retried = _read_all(
        root,
        todo,
        workers or os.cpu_count() or 1,
        progress,
        cancel,
        limits or workspace_limits(root),
    )
    indexed = kept_paths.union(f.path for f in done)
    removed = sum(1 for path in prior_paths if path not in indexed)
    files, persist_error = prior, None
    if done or removed or full:
        fresh = pl.from_arrow(_records_table(done, contents))
        del contents  # the per-file arrays: a copy of every session list
        if not keep:
            files = fresh
        else:
            # One gather in path order: filtering, then merging or sorting, would copy
            # every session list two or three times.
            keys = [(prior_paths[i], i) for i in keep]
            keys += [(f.path, len(prior_paths) + j) for j, f in enumerate(done)]
            order = [i for _, i in sorted(keys)]
            files = pl.concat([prior, fresh], rechunk=False)[order]
        persist_error = _save(root, files.to_arrow().cast(INDEX_SCHEMA))
    stats = RefreshStats(
        scanned=len(found),
        opened=len(done),
        reused=len(keep),
        removed=removed,
        retried=retried,
        elapsed_s=time.perf_counter() - started,
        persisted=persist_error is None,
        persist_error=persist_error,
    )
    if cancel is not None:
        cancel.raise_if_cancelled("run it again: the files read so far are kept in the index")
    if not sessions:
        files = files.drop(SESSION_FIELDS, strict=False)
    return FileIndex(root, files, stats)
