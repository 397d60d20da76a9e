"""Bar tables: the collector's schema, reading bar files, writing them durably."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.config import CONFIG_FILE, FileLimits, load_config
from core.errors import DataError, MetadataError
from core.safety import untrusted_json
from core.safety.atomic import atomic_path

BAR_SCHEMA = pa.schema(
    [
        ("stock", pa.string()),
        ("date", pa.timestamp("ns")),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.int64()),
        ("sequence", pa.int64()),
    ]
)
BAR_COLUMNS = tuple(BAR_SCHEMA.names)
# The bar dates parqctl places on a trading calendar. A valid timestamp[ns] reaches
# 2262-04-11, but no exchange calendar can be built that far (nor far back): a bar
# outside these days is a corrupted time, an integrity error, never a session.
FIRST_BAR_DAY = date(1900, 1, 1)
LAST_BAR_DAY = date(2200, 12, 31)
COMPRESSION = "gzip"
PANDAS_KEY = b"pandas"
# How the collector's frame describes each bar column in the pandas metadata that
# ``df.to_parquet`` writes: (pandas_type, numpy_type). Its normaliser makes ``stock``
# pandas ``string`` and ``volume``/``sequence`` ``Int64``, so a plain ``pd.read_parquet``
# gives those dtypes back instead of object / int64 / float64.
_COLLECTOR_DTYPES = {
    "stock": ("unicode", "string"),
    "date": ("datetime", "datetime64[ns]"),
    "open": ("float64", "float64"),
    "high": ("float64", "float64"),
    "low": ("float64", "float64"),
    "close": ("float64", "float64"),
    "volume": ("int64", "Int64"),
    "sequence": ("int64", "Int64"),
}
_PANDAS_CACHE_SIZE = 32
# (schema, the table's own pandas metadata, the metadata to write), newest first.
# A linear scan with ``Schema.equals`` (metadata ignored, ~0.2 us): hashing a schema for
# a dict or lru_cache costs ~10 us, noticeable when the migration writes a file per month.
_pandas_cache: list[tuple[pa.Schema, bytes | None, bytes]] = []


@functools.lru_cache(maxsize=32)  # called per month file; a ticker's months share a schema
def parquet_write_options(schema: pa.Schema) -> dict:
    """How bar files are encoded: the collector's codec; dictionaries for text columns only.

    pyarrow's default dictionary-encodes every column; in a month file (a few hundred rows)
    prices and volumes barely repeat, so each column then costs a second compressed page
    for nothing: dictionaries on ``stock`` alone write ~20% faster, decode ~15% faster and
    make files ~14% smaller (measured on 1h month files of the demo store).
    """
    text = [
        f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    return {"compression": COMPRESSION, "use_dictionary": tuple(text) or False}


def with_pandas_metadata(table: pa.Table) -> pa.Table:
    """The table with pandas metadata equal in meaning to what the collector's files carry.

    No index column; the bar columns described with the collector's dtypes; any extra
    column kept and described, by the table's own pandas metadata where that fits the
    column's type, otherwise as pandas reads that Arrow type. Other schema metadata is
    kept. Built once per schema, without importing pandas (migration workers run without it).
    """
    schema = table.schema
    metadata = schema.metadata or {}
    own = metadata.get(PANDAS_KEY)
    described = _pandas_json(schema, own)
    if described == own:
        return table
    return table.replace_schema_metadata({**metadata, PANDAS_KEY: described})


def _pandas_json(schema: pa.Schema, own: bytes | None) -> bytes:
    for known, known_own, described in _pandas_cache:
        if known_own == own and known.equals(schema):
            return described
    described = _describe_for_pandas(schema, own)
    _pandas_cache.insert(0, (schema, own, described))
    del _pandas_cache[_PANDAS_CACHE_SIZE:]
    return described


def _describe_for_pandas(schema: pa.Schema, own: bytes | None) -> bytes:
    """The ``pandas`` metadata JSON, in the shape pyarrow writes for ``df.to_parquet``."""
    given = _own_column_entries(own)
    columns = []
    for field in schema:
        entry = _collector_entry(field)
        if entry is None:
            kept = given.get(field.name)
            if kept is not None and _entry_fits(kept, field.type):
                extra = kept.get("metadata")
                entry = _entry(
                    field.name,
                    kept["pandas_type"],
                    kept["numpy_type"],
                    extra if isinstance(extra, dict) else None,
                )
        columns.append(entry or _arrow_entry(field))
    meta: dict = {"index_columns": [], "column_indexes": [], "columns": columns}
    meta["creator"] = {"library": "pyarrow", "version": pa.__version__}
    version = _pandas_version()
    if version:
        meta["pandas_version"] = version
    return json.dumps(meta).encode("utf-8")


def _collector_entry(field: pa.Field) -> dict | None:
    if field.name not in _COLLECTOR_DTYPES:
        return None
    expected = BAR_SCHEMA.field(field.name).type
    if field.type != expected and not (
        field.name == "stock" and pa.types.is_large_string(field.type)
    ):
        return None  # not the collector's type: described as what it is
    pandas_type, numpy_type = _COLLECTOR_DTYPES[field.name]
    return _entry(field.name, pandas_type, numpy_type)


def _entry(name: str, pandas_type: str, numpy_type: str, extra: dict | None = None) -> dict:
    return {
        "name": name,
        "field_name": name,
        "pandas_type": pandas_type,
        "numpy_type": numpy_type,
        "metadata": extra,
    }


def _arrow_entry(field: pa.Field) -> dict:
    """A column with no description of its own: the dtype pandas reads its Arrow type as."""
    dtype, name = field.type, field.name
    if _is_number(dtype):
        numpy_name = _numpy_name(dtype)
        return _entry(name, numpy_name, numpy_name)
    if _is_text(dtype):
        return _entry(name, "unicode", "object")
    if pa.types.is_timestamp(dtype):
        numpy_name = f"datetime64[{dtype.unit}]"
        if dtype.tz is None:
            return _entry(name, "datetime", numpy_name)
        return _entry(name, "datetimetz", numpy_name, {"timezone": dtype.tz})
    if pa.types.is_date(dtype):
        return _entry(name, "date", "object")
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return _entry(name, "bytes", "object")
    if pa.types.is_decimal(dtype):
        return _entry(
            name, "decimal", "object", {"precision": dtype.precision, "scale": dtype.scale}
        )
    return _entry(name, "object", "object")


def _own_column_entries(own: bytes | None) -> dict[str, dict]:
    if not own:
        return {}
    try:
        columns = untrusted_json.loads(own).get("columns")
    except (ValueError, AttributeError):
        return {}
    if not isinstance(columns, list):
        return {}
    return {
        c["field_name"]: c
        for c in columns
        if isinstance(c, dict) and isinstance(c.get("field_name"), str)
    }


def _entry_fits(entry: dict, dtype: pa.DataType) -> bool:
    """Whether a column's own pandas description still fits its Arrow type: the dtype it
    names (``Int64``, ``string``, ...) must read that type without loss or error."""
    numpy_type, pandas_type = entry.get("numpy_type"), entry.get("pandas_type")
    if not isinstance(numpy_type, str) or not isinstance(pandas_type, str):
        return False
    lowered = numpy_type.lower()
    if pa.types.is_boolean(dtype):
        return lowered in ("bool", "boolean")
    if _is_number(dtype):  # int64 as int64 or Int64, double as float64 or Float64
        return lowered == _numpy_name(dtype)
    if _is_text(dtype):
        return lowered in ("object", "str", "string") or lowered.startswith("string[")
    if pa.types.is_timestamp(dtype):
        extra = entry.get("metadata")
        zone = extra.get("timezone") if isinstance(extra, dict) else None
        return lowered.startswith("datetime64[") and zone == dtype.tz
    return False


def _is_number(dtype: pa.DataType) -> bool:
    return pa.types.is_boolean(dtype) or pa.types.is_integer(dtype) or pa.types.is_floating(dtype)


def _numpy_name(dtype: pa.DataType) -> str:
    return np.dtype(dtype.to_pandas_dtype()).name  # int64, float64, bool, ...


def _is_text(dtype: pa.DataType) -> bool:
    types = pa.types
    return types.is_string(dtype) or types.is_large_string(dtype) or types.is_string_view(dtype)


@functools.cache
def _pandas_version() -> str | None:
    """The installed pandas's version, from its distribution metadata (no import)."""
    try:
        return importlib.metadata.version("pandas")
    except importlib.metadata.PackageNotFoundError:
        return None


# The start of the message (and of the file index's error) for a file beyond the limits.
TOO_LARGE = "too large to read"
MIB = 1024 * 1024
# Bytes per value of each Parquet physical type once decoded into Arrow; byte arrays
# (text) add their length, from the column's statistics where the footer has them.
_PHYSICAL_WIDTH = {
    "BOOLEAN": 1,
    "INT32": 4,
    "INT64": 8,
    "INT96": 8,
    "FLOAT": 4,
    "DOUBLE": 8,
    "BYTE_ARRAY": 4,
}
_UNKNOWN_TEXT_LENGTH = 16  # a value's length when the footer does not say


class FileTooLargeError(DataError):
    """A bar file whose footer says it would not fit the memory a command may use."""


def decoded_bytes(metadata: pq.FileMetaData, *, text_stats: bool = True) -> int:
    """About how many bytes the file takes once decoded into Arrow, from its footer alone.

    Fixed-width columns by their width; text by its offsets plus the longer of each row
    group's min/max value (the footer's statistics), else the encoded size per value
    (``text_stats`` False: a fixed guess, without walking the row groups).
    Compression and dictionaries do not count: a 2 MB file can decode to gigabytes.
    """
    rows = metadata.num_rows
    schema = metadata.schema
    total = 0
    text_columns = []
    for i in range(metadata.num_columns):
        column = schema.column(i)
        physical = column.physical_type
        if physical == "FIXED_LEN_BYTE_ARRAY":
            total += rows * max(column.length or 0, 1)
        elif physical == "BYTE_ARRAY":
            text_columns.append(i)
        else:
            total += rows * _PHYSICAL_WIDTH.get(physical, 8)
    if not text_stats:
        return total + rows * len(text_columns) * (4 + _UNKNOWN_TEXT_LENGTH)
    for group in range(metadata.num_row_groups if text_columns else 0):
        row_group = metadata.row_group(group)
        for i in text_columns:
            chunk = row_group.column(i)
            total += row_group.num_rows * (4 + _text_length(chunk, row_group.num_rows))
    return total


def _text_length(chunk: pq.ColumnChunkMetaData, rows: int) -> int:
    stats = chunk.statistics
    if stats is not None and stats.has_min_max:
        return max(len(stats.min), len(stats.max))
    if rows:
        return max(chunk.total_uncompressed_size // rows, 1)
    return _UNKNOWN_TEXT_LENGTH


def footer_problem(metadata: pq.FileMetaData, limits: FileLimits) -> str | None:
    """Why a file is beyond ``limits`` (its rows, its decoded size, the limits), or None."""
    rows = metadata.num_rows
    # Within the row limit only, the estimate walks the row groups' statistics: a forged
    # footer may list millions of them.
    within_rows = rows <= limits.max_file_rows
    size = decoded_bytes(metadata, text_stats=within_rows)
    if within_rows and size <= limits.max_file_mb * MIB:
        return None
    return (
        f"{TOO_LARGE}: {rows:,} rows in {metadata.num_row_groups:,} row groups, about "
        f"{size / MIB:,.0f} MiB decoded (limits {limits.max_file_rows:,} rows, "
        f"{limits.max_file_mb:,} MiB)"
    )


def too_large_error(path: Path | str, problem: str) -> FileTooLargeError:
    """The one-line refusal to read a file beyond the limits."""
    return FileTooLargeError(
        f"bar file {path} is {problem}",
        f"set it aside with `parqctl quarantine add {path} --reason 'too large'`, or raise "
        "[limits] max_file_rows / max_file_mb in .parqctl/config.toml if it is genuine",
    )


def check_bar_footer(path: Path | str, metadata: pq.FileMetaData, limits: FileLimits) -> None:
    """Raise FileTooLargeError when the footer says the file is beyond ``limits``."""
    problem = footer_problem(metadata, limits)
    if problem is not None:
        raise too_large_error(path, problem)


def workspace_limits(root: Path) -> FileLimits:
    """The file limits of the workspace at ``root`` (``[limits]`` in its config.toml).

    Cached while config.toml is unchanged. A config that does not load gives the
    defaults here: the commands that load it report it.
    """
    try:
        st = os.stat(root / CONFIG_FILE)
        stamp: tuple = (st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        stamp = ()
    return _limits_of(str(root), stamp)


@functools.lru_cache(maxsize=8)
def _limits_of(root: str, _stamp: tuple) -> FileLimits:
    try:
        return load_config(Path(root)).limits
    except MetadataError:
        return FileLimits()


def read_bar_file(
    path: Path, columns: list[str] | None = None, *, limits: FileLimits | None = None
) -> pa.Table:
    """Read one bar file; a file that is not readable Parquet raises DataError naming it,
    and one whose footer is beyond ``limits`` (default: the defaults) FileTooLargeError,
    before any of its data is read."""
    try:
        with pq.ParquetFile(path) as parquet:
            check_bar_footer(path, parquet.metadata, limits or FileLimits())
            return parquet.read(columns=columns)
    except FileNotFoundError:
        raise DataError(
            f"bar file not found: {path}", "refresh the view; it may have moved"
        ) from None
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"unreadable bar file {path}: {exc}",
            "the file is damaged or still being written; move it aside and re-fetch the ticker",
        ) from None


def concat_bar_tables(tables: list[pa.Table]) -> pa.Table:
    """Concatenate tables whose schemas may differ by extra columns; drop pandas metadata."""
    if not tables:
        return BAR_SCHEMA.empty_table()
    stripped = [t.replace_schema_metadata(None) for t in tables]
    return pa.concat_tables(stripped, promote_options="permissive")


def write_bar_file(
    path: Path, table: pa.Table, *, durable: bool = True, compression_level: int | None = None
) -> None:
    """Write a bar table the way the collector does (gzip, no index, pandas metadata),
    atomically.

    ``compression_level`` None is pyarrow's default gzip level; lower levels write several
    times faster for slightly larger files, and any gzip reader reads them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, durable=durable) as tmp:
        pq.write_table(
            with_pandas_metadata(table),
            tmp,
            compression=COMPRESSION,
            compression_level=compression_level,
        )
