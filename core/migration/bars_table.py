"""Bar tables as the migration reads them: normalised, duplicates collapsed, months merged.

Normalising gives the bar columns the collector's types (exact, checked casts only: a
value that would change raises), puts them first in the collector's order, keeps every
extra column, and sorts by date. Nothing is dropped silently: a row that cannot be placed
or two different rows for one timestamp are reported as a ``BarProblem``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow._parquet as _parquet
import pyarrow.compute as pc

from core.store.bars import BAR_COLUMNS, BAR_SCHEMA, PANDAS_KEY

REQUIRED_COLUMNS = ("stock", "date", "open", "high", "low", "close")
OPTIONAL_COLUMNS = ("volume", "sequence")  # added as nulls when missing (older files)
CONFLICT_EXAMPLES = 10


class BarProblem(Exception):
    """Rows that cannot be migrated as they are; ``kind`` is invalid, conflict or mismatch."""

    def __init__(self, kind: str, message: str, conflicts: list[dict] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.conflicts = conflicts or []


@dataclass
class Normalised:
    table: pa.Table
    raw_rows: int
    cast_columns: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    collapsed: list[str] = field(default_factory=list)  # timestamps of exact duplicates removed

    @property
    def extra_columns(self) -> list[str]:
        return [c for c in self.table.column_names if c not in BAR_COLUMNS]


def read_parquet(path: Path) -> pa.Table:
    """The whole file on this thread (the migration parallelises across processes).

    The files are small and many: one read of the whole file, then decoding from memory,
    is cheaper than pyarrow's path handling and its reads of the footer and each column.
    """
    with open(path, "rb", buffering=0) as handle:
        return decode_parquet(handle.read())


def decode_parquet(data: bytes | pa.Buffer) -> pa.Table:
    """Decode a whole Parquet file held in memory.

    The reader under ``pq.ParquetFile`` directly: the wrapper's per-file set-up (nested
    column paths, metadata objects) is a measurable share of decoding a month's file.
    """
    reader = _parquet.ParquetReader()
    # No pre-buffering: it only coalesces reads, and the file is in memory already.
    reader.open(pa.BufferReader(data), pre_buffer=False, arrow_extensions_enabled=True)
    return reader.read_all(use_threads=False)


def normalise(table: pa.Table, ticker: str, source: str) -> Normalised:
    """Collector types and column order, rows sorted by date, exact duplicates collapsed."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise BarProblem("invalid", f"{source}: not a bar file, no column {', '.join(missing)}")
    raw_rows = table.num_rows
    metadata = table.schema.metadata or {}
    result = Normalised(table, raw_rows)
    columns: dict[str, pa.ChunkedArray] = {}
    for name in BAR_COLUMNS:
        target = BAR_SCHEMA.field(name).type
        if name not in table.column_names:
            result.added_columns.append(name)
            columns[name] = pa.chunked_array([pa.nulls(raw_rows, target)])
            continue
        column = table.column(name)
        if column.type != target:
            result.cast_columns.append(name)
            column = _cast_exactly(column, target, name, source)
        columns[name] = column
    for name in table.column_names:
        if name not in columns:
            columns[name] = table.column(name)
    out = pa.Table.from_arrays(list(columns.values()), names=list(columns))
    _check_rows(out, ticker, source)
    if PANDAS_KEY in metadata:
        # Kept for the descriptions of extra columns (an ``Int64`` stays ``Int64``); the
        # writer (core.store.bars.with_pandas_metadata) describes the bar columns and the index anew.
        out = out.replace_schema_metadata({PANDAS_KEY: metadata[PANDAS_KEY]})
    dates = out.column("date").to_numpy()
    if len(dates) > 1 and not (dates[1:] >= dates[:-1]).all():
        out = out.take(pc.sort_indices(out, [("date", "ascending")]))
    result.table, result.collapsed = collapse_duplicates(out, source)
    return result


def _cast_exactly(column: pa.ChunkedArray, target: pa.DataType, name: str, source: str):
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if name == "date" and pa.types.is_timestamp(column.type) and column.type.tz:
        raise BarProblem(
            "invalid",
            f"{source}: dates carry the time zone {column.type.tz}; the collector writes "
            "naive exchange-local times",
        )
    if pa.types.is_floating(column.type) and pa.types.is_integer(target):
        column = pc.if_else(pc.is_nan(column), None, column)
    try:
        return column.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise BarProblem(
            "invalid", f"{source}: column {name} ({column.type}) is not {target}: {exc}"
        ) from None


def _check_rows(table: pa.Table, ticker: str, source: str) -> None:
    dates = table.column("date")
    if dates.null_count:
        raise BarProblem("invalid", f"{source}: {dates.null_count} rows without a date")
    stock = table.column("stock")
    if stock.null_count:
        raise BarProblem("invalid", f"{source}: {stock.null_count} rows without a stock")
    others = pc.unique(pc.filter(stock, pc.not_equal(stock, ticker))).to_pylist()
    if others:
        shown = ", ".join(map(str, others[:5]))
        raise BarProblem(
            "invalid", f"{source}: rows of another ticker ({shown}) in {ticker}'s file"
        )


def collapse_duplicates(table: pa.Table, source: str) -> tuple[pa.Table, list[str]]:
    """Drop rows identical to an earlier row of the same timestamp; different ones conflict.

    ``table`` is sorted by date. Returns the table and the timestamps collapsed.
    """
    dates = table.column("date").to_numpy().astype("datetime64[ns]").astype(np.int64)
    repeated = np.flatnonzero(dates[1:] == dates[:-1]) + 1
    if not len(repeated):
        return table, []
    group_start = np.maximum.accumulate(
        np.where(np.r_[True, dates[1:] != dates[:-1]], np.arange(len(dates)), 0)
    )
    firsts = table.take(pa.array(group_start[repeated])).to_pylist()
    seconds = table.take(pa.array(repeated)).to_pylist()
    conflicts = [
        _conflict(a, b, "first row", "repeated row")
        for a, b in zip(firsts, seconds, strict=True)
        if not _same_row(a, b)
    ]
    if conflicts:
        raise BarProblem(
            "conflict",
            f"{source}: {len(conflicts)} timestamps have rows with different values",
            conflicts[:CONFLICT_EXAMPLES],
        )
    keep = np.ones(len(dates), dtype=bool)
    keep[repeated] = False
    collapsed = [_iso(row["date"]) for row in seconds]
    return table.filter(pa.array(keep)), collapsed


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


def _same_row(a: dict, b: dict, columns: list[str] | None = None) -> bool:
    return all(_same_value(a.get(c), b.get(c)) for c in (columns or a.keys()))


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _conflict(a: dict, b: dict, a_name: str, b_name: str, columns: list[str] | None = None):
    differing = [c for c in (columns or a.keys()) if not _same_value(a.get(c), b.get(c))]
    return {
        "date": _iso(a["date"]),
        "columns": differing,
        a_name: {c: _iso(a.get(c)) for c in differing},
        b_name: {c: _iso(b.get(c)) for c in differing},
    }


@dataclass
class MonthMerge:
    table: pa.Table
    existing_rows: int
    overlapping: int  # timestamps in both, with equal values
    adopted: int  # rows only the existing file had, kept


def merge_month(legacy: pa.Table, existing: pa.Table, source: str) -> MonthMerge:
    """Legacy rows of a month merged with an existing partition file's rows of that month.

    Both are normalised. A timestamp in both must have equal values in every column they
    share; otherwise the month conflicts and nothing is written. Columns only one side
    has are kept, filled from the side that has them.
    """
    existing = _align_shared_types(legacy, existing, source)
    left = legacy.column("date").to_numpy().astype(np.int64)
    right = existing.column("date").to_numpy().astype(np.int64)
    _, li, ri = np.intersect1d(left, right, assume_unique=True, return_indices=True)
    shared = [c for c in legacy.column_names if c in existing.column_names]
    if len(li):
        _check_overlap(legacy.take(pa.array(li)), existing.take(pa.array(ri)), shared, source)
    only_existing = np.ones(len(right), dtype=bool)
    only_existing[ri] = False
    out_left = legacy
    existing_only_columns = [c for c in existing.column_names if c not in legacy.column_names]
    if existing_only_columns:
        positions = pc.index_in(legacy.column("date"), value_set=existing.column("date"))
        for name in existing_only_columns:
            out_left = out_left.append_column(
                existing.schema.field(name), existing.column(name).take(positions)
            )
    out_right = existing.filter(pa.array(only_existing))
    for name in out_left.column_names:
        if name not in out_right.column_names:
            field_ = out_left.schema.field(name)
            out_right = out_right.append_column(field_, pa.nulls(out_right.num_rows, field_.type))
    merged = pa.concat_tables([out_left, out_right.select(out_left.column_names)])
    merged = merged.replace_schema_metadata(legacy.schema.metadata)
    merged = merged.take(pc.sort_indices(merged, [("date", "ascending")]))
    return MonthMerge(merged, existing.num_rows, len(li), int(only_existing.sum()))


def _align_shared_types(legacy: pa.Table, existing: pa.Table, source: str) -> pa.Table:
    for name in legacy.column_names:
        if name in existing.column_names:
            want = legacy.schema.field(name).type
            if existing.schema.field(name).type != want:
                i = existing.column_names.index(name)
                column = _cast_exactly(existing.column(name), want, name, source)
                existing = existing.set_column(i, pa.field(name, want), column)
    return existing


def _check_overlap(left: pa.Table, right: pa.Table, columns: list[str], source: str) -> None:
    differs = np.zeros(left.num_rows, dtype=bool)
    for name in columns:
        a, b = left.column(name), right.column(name)
        same = pc.fill_null(pc.equal(a, b), False)
        same = pc.or_(same, pc.and_(pc.is_null(a), pc.is_null(b)))
        if pa.types.is_floating(a.type):
            same = pc.or_(same, pc.fill_null(pc.and_(pc.is_nan(a), pc.is_nan(b)), False))
        differs |= ~same.to_numpy(zero_copy_only=False)
    if differs.any():
        rows = np.flatnonzero(differs)
        lefts = left.take(pa.array(rows[:CONFLICT_EXAMPLES])).to_pylist()
        rights = right.take(pa.array(rows[:CONFLICT_EXAMPLES])).to_pylist()
        raise BarProblem(
            "conflict",
            f"{source}: {len(rows)} timestamps already stored with different values",
            [
                _conflict(a, b, "legacy", "partition", columns)
                for a, b in zip(lefts, rights, strict=True)
            ],
        )
