"""The persisted file index: a hot shard rewritten at each change, a cold one rarely.

    loaded = read_index(root, schema)      # LoadedIndex | None: cold records, then hot
    cold = read_cold_ref(root)             # which cold shard the hot one names (footer only)
    error = write_index(root, batches, schemas, cold_before)   # both shards
    error = write_hot(root, hot_batches, schemas, cold)        # the hot shard alone

The collector rewrites only the current month of each ticker, yet rewriting the whole
index (740,000 records with their session lists) after its daily update took a second
and a gigabyte. So the records are kept in two Arrow IPC files under ``.parqctl/index/``
(written and read by core.availability.arrow_cache): ``files.arrow``, the hot shard
(legacy files and partitioned months from ``cold.before`` on), and ``cold-<token>.arrow``,
the partitioned months before it.
The hot shard's metadata names its cold shard with its row count and boundary; each
shard stores the columns and types of the schemas its records use. A refresh whose
changes are all in hot months rewrites the hot shard alone; both are rewritten when a
change touches a cold month, or when the boundary lags the hot months by more than
``COLD_LAG`` (it then moves up to them).

A new cold shard is written under a new name before the hot shard that names it
replaces the old one (atomically), and older cold shards are removed after: a crash in
between leaves an unused file, never a hot shard naming a missing one. A cold shard
missing or not matching what the hot shard says makes the whole index unreadable, which
is what a damaged index is: parqctl's own cache, rebuilt by the next refresh.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from core.availability.arrow_cache import read_arrow, write_arrow
from core.availability.index_state import INDEX_DIR, INDEX_FILE, INDEX_VERSION, index_path
from core.safety import untrusted_json
from core.safety.atomic import atomic_path, confined

if TYPE_CHECKING:
    import polars as pl

INDEX_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("dataset", pa.string()),
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
        ("error", pa.string()),
        ("session_days", pa.list_(pa.date32())),
        ("session_bars", pa.list_(pa.uint16())),
    ]
)
SESSION_FIELDS = ("session_days", "session_bars")
# The index without the per-session lists: a fiftieth of its size once decompressed.
WITHOUT_SESSIONS = pa.schema([f for f in INDEX_SCHEMA if f.name not in SESSION_FIELDS])
COLD_LAG = 3  # months the boundary may lag the first hot month before both are rewritten
BATCH_ROWS = 65_536  # records per batch of a persisted shard
COLD_PREFIX = "cold-"

_VERSION_KEY = b"parqctl.index.version"
# Shards carry their own version: a parqctl from before them would take the hot shard for
# the whole index (and the old months for missing) where now it rebuilds. (Those from
# before the bounded cache files, core.availability.arrow_cache, cannot read them at all.)
SHARDS_VERSION = f"{INDEX_VERSION}.shards".encode()
_SCHEMAS_KEY = b"parqctl.index.schemas"
_COLD_KEY = b"parqctl.index.cold"

Schemas = dict[str, list[tuple[str, str]]]


@dataclass(frozen=True)
class ColdShard:
    """The cold shard a hot shard names: its file, its record count, and the first month
    (year * 12 + month - 1) that is not in it."""

    file: str
    rows: int
    before: int


@dataclass(frozen=True)
class LoadedIndex:
    table: pa.Table  # the cold shard's records (``cold.rows`` of them) first, then the hot
    schemas: Schemas
    cold: ColdShard | None


def month_key_of(table: pa.Table | pa.RecordBatch) -> pa.Array:
    import pyarrow.compute as pc  # (here: 30 ms at start-up, and only writes need it)

    year = pc.cast(table["year"], pa.int32())
    return pc.subtract(pc.add(pc.multiply(year, 12), pc.cast(table["month"], pa.int32())), 1)


def cold_mask(batch: pa.Table | pa.RecordBatch, before: int) -> pa.Array:
    """Which records belong in the cold shard: partitioned months before ``before``."""
    import pyarrow.compute as pc

    older = pc.fill_null(pc.less(month_key_of(batch), before), False)
    return pc.and_(pc.equal(batch["kind"], "partitioned"), older)


def read_index(root: Path, schema: pa.Schema) -> LoadedIndex | None:
    """Both shards' records in ``schema``'s columns; None when there is no index, or it is
    unreadable, of another version, or its shards do not match."""
    for _attempt in (0, 1):  # a writer may replace both between our two reads: once more
        hot = _read_shard(root, INDEX_FILE, schema)
        if hot is None:
            return None
        table, schemas, metadata = hot
        cold = _cold_ref(metadata)
        if cold is False:
            return None
        if cold is None:
            return LoadedIndex(table, schemas, None)
        shard = _read_cold(root, cold, schema)
        if shard is None:
            continue
        if shard is False:
            return None
        return LoadedIndex(pa.concat_tables([shard[0], table]), shard[1] | schemas, cold)
    return None


def read_cold(root: Path, cold: ColdShard, schema: pa.Schema) -> pa.Table | None:
    """The records of the cold shard ``cold``; None when it is missing or not that one."""
    shard = _read_cold(root, cold, schema)
    return shard[0] if shard else None


def _read_cold(
    root: Path, cold: ColdShard, schema: pa.Schema
) -> tuple[pa.Table, Schemas] | bool | None:
    """(records, schemas); None when missing or unreadable, False when not ``cold``."""
    shard = _read_shard(root, cold.file, schema)
    if shard is None:
        return None
    table, schemas, metadata = shard
    try:
        own = untrusted_json.loads(metadata.get(_COLD_KEY, b"null"))
    except ValueError:
        return False
    if table.num_rows != cold.rows or own != {"file": cold.file, "before": cold.before}:
        return False
    return table, schemas


def read_columns(root: Path, names: list[str]) -> pa.Table | None:
    """Some columns of every record (pyarrow alone: no polars); None without an index."""
    loaded = read_index(root, pa.schema([INDEX_SCHEMA.field(name) for name in names]))
    return None if loaded is None else loaded.table


def read_hot(root: Path, schema: pa.Schema) -> LoadedIndex | None:
    """The hot shard alone (its ``cold`` says which cold shard goes with it)."""
    hot = _read_shard(root, INDEX_FILE, schema)
    if hot is None:
        return None
    cold = _cold_ref(hot[2])
    return None if cold is False else LoadedIndex(hot[0], hot[1], cold)


def read_cold_ref(root: Path) -> ColdShard | bool | None:
    """The cold shard the hot one names, read from its footer; False when unreadable."""
    try:
        files = read_arrow(root, INDEX_DIR / INDEX_FILE)
        if files is None:
            return False
        metadata = pa.ipc.open_file(files[0]).schema.metadata or {}
    except (OSError, pa.ArrowException):
        return False
    return _cold_ref(metadata)


def _cold_ref(metadata: dict[bytes, bytes]) -> ColdShard | bool | None:
    raw = metadata.get(_COLD_KEY)
    if raw is None:
        return None
    try:
        cold = ColdShard(**untrusted_json.loads(raw))
    except (ValueError, TypeError):
        return False
    valid = (
        isinstance(cold.file, str)
        and cold.file.startswith(COLD_PREFIX)
        and "/" not in cold.file
        and all(isinstance(n, int) and not isinstance(n, bool) for n in (cold.rows, cold.before))
    )
    return cold if valid else False


def _read_shard(
    root: Path, name: str, schema: pa.Schema
) -> tuple[pa.Table, Schemas, dict[bytes, bytes]] | None:
    try:
        lists = [n for n in schema.names if n in SESSION_FIELDS]
        files = read_arrow(root, INDEX_DIR / name, apart=bool(lists))
        if files is None or (lists and files[1] is None):
            return None
        stored = pa.ipc.open_file(files[0]).schema
        fields = [stored.get_field_index(n) for n in schema.names if n not in SESSION_FIELDS]
        if min(fields, default=0) < 0:
            return None
        options = pa.ipc.IpcReadOptions(included_fields=fields)
        table = pa.ipc.open_file(files[0], options=options).read_all()
        if lists:  # the session lists are stored apart (core.availability.arrow_cache)
            apart = pa.ipc.open_file(files[1]).read_all()
            if apart.num_rows != table.num_rows:
                return None
            for name in lists:
                table = table.append_column(apart.schema.field(name), apart[name])
        table = table.select(schema.names).replace_schema_metadata(stored.metadata)
    except (OSError, pa.ArrowException, KeyError):
        return None
    metadata = table.schema.metadata or {}
    if metadata.get(_VERSION_KEY) != SHARDS_VERSION or not table.schema.remove_metadata().equals(
        schema
    ):
        return None
    try:
        schemas = {
            fp: [(name, kind) for name, kind in columns]
            for fp, columns in untrusted_json.loads(metadata.get(_SCHEMAS_KEY, b"{}")).items()
        }
    except (ValueError, TypeError):
        return None
    return table.replace_schema_metadata(None), schemas, metadata


def arrow_batches(files: pl.DataFrame | pa.Table) -> Iterator[pa.RecordBatch]:
    """The records in INDEX_SCHEMA, a batch at a time: a polars frame is converted slice
    by slice (a whole conversion is a copy of the index)."""
    rows = files.num_rows if isinstance(files, pa.Table) else files.height
    for offset in range(0, rows, BATCH_ROWS):
        part = files.slice(offset, BATCH_ROWS)
        if not isinstance(part, pa.Table):
            part = part.to_arrow()
        # One batch each (the worker processes' records come in thousands of small ones:
        # as many batches in the file made loading it ten times slower).
        yield from part.cast(INDEX_SCHEMA).combine_chunks().to_batches()


def write_index(
    root: Path, files: pl.DataFrame | pa.Table, schemas: Schemas, cold_before: int
) -> str | None:
    """Write both shards from ``files`` (records in path order); why not, or None."""
    import pyarrow.compute as pc

    token = f"{COLD_PREFIX}{time.time_ns():x}.arrow"
    cold_path = root / INDEX_DIR / token
    used = set(_fingerprints(files))
    hot_parts: list[pa.RecordBatch] = []
    rows = 0
    metadata = _metadata(schemas, used, {"file": token, "before": cold_before})
    try:
        # Never through a link: a `.parqctl/index` linked elsewhere is not written (nor
        # cleaned) outside the workspace. (An UnsafeLinkError is an OSError.)
        confined(root, cold_path).parent.mkdir(parents=True, exist_ok=True)
        # No fsync: this is a cache; a torn or lost file is detected on load and rebuilt.
        with atomic_path(cold_path, durable=False) as tmp:

            def cold_batches():
                nonlocal rows
                for batch in arrow_batches(files):
                    mask = cold_mask(batch, cold_before)
                    cold = batch.filter(mask)
                    if cold.num_rows:
                        rows += cold.num_rows
                        yield cold
                    hot = batch.filter(pc.invert(mask))
                    if hot.num_rows:
                        hot_parts.append(hot)

            write_arrow(
                tmp, INDEX_SCHEMA.with_metadata(metadata), cold_batches(), apart=SESSION_FIELDS
            )
    except OSError as exc:
        return f"cannot write {cold_path}: {exc.strerror or exc}"
    error = write_hot(root, hot_parts, schemas, ColdShard(token, rows, cold_before))
    if error is None:
        _remove_other_cold(root, token)
    return error


def write_hot(
    root: Path, batches: Iterable[pa.RecordBatch], schemas: Schemas, cold: ColdShard | None
) -> str | None:
    """Write the hot shard naming ``cold``; why not, or None."""
    path = index_path(root)
    parts = list(batches)
    if len(parts) > 1:  # the hot rows of each of a full write's batches: a few at most
        parts = list(arrow_batches(pa.Table.from_batches(parts, INDEX_SCHEMA)))
    used = set().union(*(_fingerprints(b) for b in parts)) if parts else set()
    ref = None if cold is None else cold.__dict__
    schema = INDEX_SCHEMA.with_metadata(_metadata(schemas, used, ref))
    try:
        confined(root, path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, durable=False) as tmp:
            write_arrow(tmp, schema, parts, apart=SESSION_FIELDS)
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc}"
    return None


def _fingerprints(records: pl.DataFrame | pa.Table | pa.RecordBatch) -> set[str]:
    import pyarrow.compute as pc

    column = records["schema_fingerprint"]
    if isinstance(column, pa.Array | pa.ChunkedArray):
        return set(pc.unique(column.drop_null()).to_pylist())
    return set(column.drop_nulls().unique().to_list())


def _metadata(schemas: Schemas, used: set[str], cold: dict | None) -> dict[bytes, bytes]:
    metadata = {
        _VERSION_KEY: SHARDS_VERSION,
        _SCHEMAS_KEY: json.dumps(
            {fp: schemas[fp] for fp in sorted(used) if fp in schemas}
        ).encode(),
    }
    if cold is not None:
        metadata[_COLD_KEY] = json.dumps(cold).encode()
    return metadata


def _remove_other_cold(root: Path, keep: str) -> None:
    """Remove the cold shards older than ``keep`` (parqctl's own cache files)."""
    with contextlib.suppress(OSError):
        for entry in confined(root, INDEX_DIR).iterdir():
            name = entry.name
            if name.startswith(COLD_PREFIX) and name.endswith(".arrow") and name < keep:
                with contextlib.suppress(OSError):
                    entry.unlink()
