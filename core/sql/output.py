"""A query's rows as CSV, JSON or Parquet, streamed batch by batch, to a stream or to a
file that parqctl writes atomically (temp file beside it, fsync, rename).

``out_path`` decides where a result may go: never inside the workspace's ``data/``, its
legacy homes (``stocks_<iv>/``) or the run lock; never over an existing file unless the
operator says so; only into a directory that exists. It is the only file the SQL command
writes, and parqctl writes it, not DuckDB (whose file access is off).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from core.errors import ParqctlError
from core.safety.atomic import atomic_path
from core.store.layout import interval_of_dataset_dir
from core.store.workspace import LOCK_DIR

if TYPE_CHECKING:
    import pyarrow as pa

FILE_FORMATS = ("csv", "json", "parquet")
EXTENSIONS = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}


def format_for(path: Path, chosen: str | None = None) -> str:
    """The format to write ``path`` in: ``chosen``, else its extension's."""
    if chosen in FILE_FORMATS:
        return chosen
    found = EXTENSIONS.get(Path(path).suffix.lower())
    if found is None:
        raise ParqctlError(
            f"cannot tell the format of {path} from its name",
            "end it in .csv, .json or .parquet, or pass --format",
        )
    return found


def out_path(workspace_root: Path, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """``path`` made absolute, once it is a place the result may be written; else
    ParqctlError naming why. Links are resolved before deciding."""
    target = Path(path).expanduser().absolute()
    parent = Path(os.path.realpath(target.parent))
    if not parent.is_dir():
        raise ParqctlError(f"no directory {target.parent} for {target.name}", "create it first")
    real = parent / target.name
    if os.path.islink(target):
        real = Path(os.path.realpath(target))
    root = Path(os.path.realpath(workspace_root))
    protected = [root / "data", root / LOCK_DIR]
    with os.scandir(root) as entries:
        protected += [
            Path(e.path) for e in entries if interval_of_dataset_dir(e.name) and e.is_dir()
        ]
    for directory in protected:
        real_dir = Path(os.path.realpath(directory))
        if real == real_dir or real_dir in real.parents:
            where = directory.relative_to(root)
            raise ParqctlError(
                f"refusing to write {target}: it is inside the workspace's {where}/",
                "write results outside data/, the legacy stocks_<iv>/ folders and .run_lock/",
            )
    if os.path.lexists(target) and not force:
        raise ParqctlError(f"{target} exists", "pass --force to replace it, or name another file")
    if target.is_dir():
        raise ParqctlError(f"{target} is a directory", "name a file")
    return target


# --- values for people: timestamps without trailing zeros, no NaN in JSON ----------------


def readable(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Timestamps at the coarsest unit that keeps them (bars are whole seconds), so that
    CSV, JSON and the table show ``2025-01-02 09:30:00`` rather than nanoseconds."""
    import pyarrow as pa

    columns, changed = [], False
    for column in batch.columns:
        if pa.types.is_timestamp(column.type) and column.type.unit != "s":
            for unit in ("s", "ms", "us"):
                try:
                    column = column.cast(pa.timestamp(unit, column.type.tz))
                    changed = True
                    break
                except pa.ArrowInvalid:
                    continue
            else:
                column = column.cast(pa.timestamp("us", column.type.tz), safe=False)
                changed = True
        columns.append(column)
    if not changed:
        return batch
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def plain_value(value: Any) -> Any:
    """A value JSON can hold: ISO dates and times, numbers, text; NaN and infinities as
    null, bytes as hex."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


# --- writers -------------------------------------------------------------------------------


def write_csv(batches: Iterable[pa.RecordBatch], handle: IO[bytes], schema: pa.Schema) -> int:
    import pyarrow.csv as csv

    rows = 0
    writer = None
    for batch in batches:
        batch = readable(batch)
        if writer is None:
            writer = csv.CSVWriter(handle, batch.schema)
        writer.write_batch(batch)
        rows += batch.num_rows
    if writer is None:  # no rows: the header alone
        writer = csv.CSVWriter(handle, _readable_schema(schema))
    writer.close()
    return rows


def _readable_schema(schema: pa.Schema) -> pa.Schema:
    import pyarrow as pa

    fields = [
        pa.field(f.name, pa.timestamp("s", f.type.tz)) if pa.types.is_timestamp(f.type) else f
        for f in schema
    ]
    return pa.schema(fields)


def write_json(batches: Iterable[pa.RecordBatch], handle: IO[bytes]) -> int:
    """A JSON array of row objects, one per line."""
    rows = 0
    handle.write(b"[")
    for batch in batches:
        for row in readable(batch).to_pylist():
            line = json.dumps(
                {k: plain_value(v) for k, v in row.items()}, ensure_ascii=False, allow_nan=False
            )
            handle.write((",\n" if rows else "\n").encode() + line.encode("utf-8"))
            rows += 1
    handle.write(b"\n]\n" if rows else b"]\n")
    return rows


def write_parquet(batches: Iterable[pa.RecordBatch], path: Path, schema: pa.Schema) -> int:
    import pyarrow.parquet as pq

    rows = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def write_stream(
    batches: Iterable[pa.RecordBatch], handle: IO[bytes], fmt: str, schema: pa.Schema
) -> int:
    if fmt == "csv":
        return write_csv(batches, handle, schema)
    if fmt == "json":
        return write_json(batches, handle)
    raise ParqctlError(f"--format {fmt} cannot be written to a stream", "pass --out FILE")


def write_file(batches: Iterable[pa.RecordBatch], target: Path, fmt: str, schema: pa.Schema) -> int:
    """Write the rows to ``target`` atomically: the old file (if any) stays until the new
    one is complete; an interrupted or failed write leaves nothing behind."""
    with atomic_path(target) as tmp:
        if fmt == "parquet":
            return write_parquet(batches, tmp, schema)
        with open(tmp, "xb") as handle:
            rows = write_stream(batches, handle, fmt, schema)
            handle.flush()
    return rows
