"""Merging new bars into where the collector reads them, by (stock, date).

``plan_merge`` reads the ticker's bars from the layout the collector routes it to
(``core.store.routing.locate``: its legacy file, or its month files under ``ticker=<T>/``) and
sorts the incoming rows into new ones, identical ones and differing ones; it writes
nothing. ``write_merge`` then writes the files that change, each atomically, with the
collector's codec and pandas metadata, under the run lock: the lock is checked, the path
is checked to be inside the workspace and the disk to be below the critical watermark
right before each file.

A stored value is never replaced unless asked (``overwrite``): then the old file is moved
into quarantine (``core.integrity.quarantine``) just before the new one takes its place, so the
values it held can be restored. Extra columns of stored files are kept (new rows get
nulls there; an overwritten row keeps its own).
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.availability import index_journal
from core.disk.watermarks import ensure_room
from core.errors import DataError, ParqctlError
from core.integrity import quarantine
from core.safety import run_lock
from core.safety.atomic import TEMP_MARKER, atomic_path, temp_path_for
from core.safety.containment import require_inside
from core.safety.run_lock import RunLock
from core.store.bars import (
    BAR_SCHEMA,
    COMPRESSION,
    read_bar_file,
    with_pandas_metadata,
    write_bar_file,
)
from core.store.layout import PARTITION_FILE
from core.store.routing import BarLocation, locate
from core.store.workspace import Workspace

COMPARED = ("open", "high", "low", "close", "volume")
CONFLICTS_KEPT = 20  # differing values described in full; the rest are counted
_REL_TOLERANCE = 1e-9  # float noise, not a different price
_BYTES_PER_ROW = 64  # a generous estimate of a written row, for the disk check


@dataclass(frozen=True)
class Conflict:
    """One stored value that differs from the one offered."""

    date: datetime
    column: str
    stored: Any
    incoming: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(sep=" "),
            "column": self.column,
            "stored": self.stored,
            "incoming": self.incoming,
        }


@dataclass
class FileChange:
    path: Path
    table: pa.Table  # the file's whole new content
    existed: bool
    added: int
    overwritten: int


@dataclass
class MergePlan:
    ticker: str
    interval: str
    location: BarLocation
    offered: int = 0  # rows offered
    added: int = 0  # rows not stored yet
    identical: int = 0  # stored with the same values
    differing: int = 0  # stored with other values (rows)
    overwritten: int = 0  # differing rows the new content replaces (overwrite only)
    conflicts: list[Conflict] = field(default_factory=list)
    changes: list[FileChange] = field(default_factory=list)
    last_written: datetime | None = None  # the latest bar added or overwritten

    @property
    def overlapping(self) -> int:
        return self.identical + self.differing

    @property
    def mode(self) -> str:
        return self.location.mode

    def as_dict(self) -> dict[str, Any]:
        summary = merge_summary(self)
        return {
            "ticker": self.ticker,
            "interval": self.interval,
            "layout": summary.pop("layout"),
            "offered": self.offered,
            **summary,
        }


def merge_summary(merge: MergePlan | None) -> dict[str, Any]:
    """What a merge did (or nothing, without one), for the JSON of each ingest command."""
    return {
        "layout": merge.mode if merge else None,
        "added": merge.added if merge else 0,
        "identical": merge.identical if merge else 0,
        "differing": merge.differing if merge else 0,
        "overwritten": merge.overwritten if merge else 0,
        "conflicts": [c.as_dict() for c in merge.conflicts] if merge else [],
        "files": [str(c.path) for c in merge.changes] if merge else [],
    }


def plan_merge(
    ws: Workspace, ticker: str, interval: str, incoming: pa.Table, *, overwrite: bool = False
) -> MergePlan:
    """What merging ``incoming`` (bars of ``ticker``, the format's schema) would change.

    Refuses (ParqctlError) when the collector reads a legacy file that is missing while
    the ticker's bars sit in a legacy home it never reads: a new file there would hide
    them. An unreadable stored file is refused too (DataError naming it)."""
    location = locate(ws, ticker, interval)
    plan = MergePlan(ticker, interval, location, offered=incoming.num_rows)
    if incoming.num_rows == 0:
        return plan
    incoming = incoming.sort_by("date")
    if location.mode == "legacy":
        path = location.legacy_path
        if not path.is_file() and location.stranded:
            raise ParqctlError(
                f"the collector reads the {interval} bars of {ticker} from {path}, which is "
                f"missing, while they are in {location.stranded[0]}, where it never reads",
                "move that file to where the collector reads it (or migrate), then fetch again",
            )
        _merge_file(plan, path, incoming, overwrite)
    else:
        for (year, month), rows in _by_month(incoming):
            path = location.partition_dir / f"year={year:04d}" / f"month={month:02d}"
            _merge_file(plan, path / PARTITION_FILE, rows, overwrite)
    return plan


def _by_month(table: pa.Table) -> list[tuple[tuple[int, int], pa.Table]]:
    years = pc.year(table["date"]).to_pylist()
    months = pc.month(table["date"]).to_pylist()
    keys = sorted(set(zip(years, months, strict=True)))
    groups = []
    for year, month in keys:
        mask = pc.and_(
            pc.equal(pc.year(table["date"]), year), pc.equal(pc.month(table["date"]), month)
        )
        groups.append(((year, month), table.filter(mask)))
    return groups


def _merge_file(plan: MergePlan, path: Path, incoming: pa.Table, overwrite: bool) -> None:
    existed = path.is_file()
    stored = read_bar_file(path) if existed else None
    if stored is not None and "date" not in stored.column_names:
        raise DataError(f"{path} has no date column", "run `parqctl integrity` on it")
    present, differing, conflicts = _compare(stored, incoming)
    new_rows = incoming.filter(pc.invert(present))
    identical = int(pc.sum(present).as_py() or 0) - len(differing)
    plan.added += new_rows.num_rows
    plan.identical += identical
    plan.differing += len(differing)
    room = CONFLICTS_KEPT - len(plan.conflicts)
    plan.conflicts += conflicts[: max(room, 0)]
    replaced = incoming.filter(_is_in(incoming, differing)) if overwrite and differing else None
    if new_rows.num_rows == 0 and replaced is None:
        return
    content = _content(stored, new_rows, replaced)
    overwritten = replaced.num_rows if replaced is not None else 0
    plan.overwritten += overwritten
    plan.changes.append(FileChange(path, content, existed, new_rows.num_rows, overwritten))
    written = [t for t in (new_rows, replaced) if t is not None and t.num_rows]
    latest = max(pc.max(t["date"]).as_py() for t in written)
    plan.last_written = latest if plan.last_written is None else max(plan.last_written, latest)


def _is_in(table: pa.Table, dates: list[datetime]) -> pa.Array:
    return pc.is_in(table["date"], value_set=pa.array(dates, type=table.schema.field("date").type))


def _compare(
    stored: pa.Table | None, incoming: pa.Table
) -> tuple[pa.Array, list[datetime], list[Conflict]]:
    """Which incoming rows are stored already, which of those differ, and how."""
    if stored is None or stored.num_rows == 0:
        return pa.array([False] * incoming.num_rows), [], []
    import polars as pl

    columns = [c for c in ("date", *COMPARED) if c in stored.column_names]
    old = (
        pl.from_arrow(stored.select(columns).replace_schema_metadata(None))
        .with_columns(pl.col("date").cast(pl.Datetime("ns")))
        .unique(subset="date", keep="first", maintain_order=True)
    )
    new = pl.from_arrow(incoming.select(["date", *COMPARED]))
    joined = new.with_row_index("_row").join(
        old.with_columns(pl.lit(True).alias("_present")), on="date", how="left", suffix="_stored"
    )
    present_mask = joined.sort("_row")["_present"].fill_null(False)
    overlap = joined.filter(pl.col("_present").fill_null(False)).sort("date")
    differing: list[datetime] = []
    conflicts: list[Conflict] = []
    for row in overlap.iter_rows(named=True):
        changed = False
        for column in COMPARED:
            key = f"{column}_stored" if f"{column}_stored" in row else None
            stored_value = row[key] if key else None
            if not _same(stored_value, row[column]):
                changed = True
                if len(conflicts) < CONFLICTS_KEPT:
                    conflicts.append(Conflict(row["date"], column, stored_value, row[column]))
        if changed:
            differing.append(row["date"])
    return pa.array(present_mask.to_list(), type=pa.bool_()), differing, conflicts


def _same(a: Any, b: Any) -> bool:
    a = None if isinstance(a, float) and math.isnan(a) else a
    b = None if isinstance(b, float) and math.isnan(b) else b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=_REL_TOLERANCE, abs_tol=1e-12)
    return a == b


def _aligned(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """``rows`` (the format's columns) with the columns of ``schema``, nulls for extras."""
    columns = []
    for f in schema:
        if f.name in rows.column_names:
            columns.append(rows[f.name].cast(f.type))
        else:
            columns.append(pa.nulls(rows.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _content(stored: pa.Table | None, new_rows: pa.Table, replaced: pa.Table | None) -> pa.Table:
    """The file's new content, sorted by date, in the stored file's own schema."""
    if stored is None:
        return new_rows.sort_by("date")
    schema = pa.schema([f for f in stored.schema])  # without the schema's metadata
    stored = stored.replace_schema_metadata(None)
    if not set(BAR_SCHEMA.names) <= set(schema.names):
        missing = [f for f in BAR_SCHEMA if f.name not in schema.names]
        schema = pa.schema([*schema, *missing])
        stored = _with_missing(stored, missing)
    parts = []
    if replaced is not None and replaced.num_rows:
        differing = _is_in(stored, replaced["date"].to_pylist())
        kept, old_rows = stored.filter(pc.invert(differing)), stored.filter(differing)
        parts += [kept, _overwritten(old_rows, replaced, schema)]
    else:
        parts.append(stored)
    parts.append(_aligned(new_rows, schema))
    return pa.concat_tables(parts).sort_by("date")


def _with_missing(stored: pa.Table, missing: list[pa.Field]) -> pa.Table:
    for f in missing:
        stored = stored.append_column(f, pa.nulls(stored.num_rows, f.type))
    return stored


def _overwritten(old_rows: pa.Table, replaced: pa.Table, schema: pa.Schema) -> pa.Table:
    """The incoming values, with each stored row's extra columns kept (the first row of
    a date stored twice)."""
    extras = [n for n in schema.names if n not in BAR_SCHEMA.names]
    new = _aligned(replaced, schema)
    if not extras:
        return new
    import polars as pl

    first = (
        pl.from_arrow(old_rows.select(["date", *extras]))
        .with_columns(pl.col("date").cast(pl.Datetime("ns")))
        .unique(subset="date", keep="first", maintain_order=True)
    )
    order = pl.from_arrow(replaced.select(["date"])).with_columns(
        pl.col("date").cast(pl.Datetime("ns"))
    )
    kept = order.join(first, on="date", how="left", maintain_order="left").to_arrow()
    for name in extras:
        index = new.schema.get_field_index(name)
        new = new.set_column(index, schema.field(name), kept[name].cast(schema.field(name).type))
    return new


def write_merge(ws: Workspace, plan: MergePlan, *, lock: RunLock, reason: str) -> list[str]:
    """Write the plan's files; returns the ids of the quarantine entries made for the old
    files that overwritten rows replaced."""
    entries = []
    for change in plan.changes:
        path = change.path
        require_inside(ws, path, "write")
        estimate = change.table.num_rows * _BYTES_PER_ROW
        ensure_room(_existing_parent(path), ws.config.watermarks, estimate)
        run_lock.ensure_still_held(ws.root)
        clear_stale_temps(path)
        if change.existed and change.overwritten:
            with atomic_path(path) as tmp:
                pq.write_table(with_pandas_metadata(change.table), tmp, compression=COMPRESSION)
                run_lock.ensure_still_held(ws.root)
                entry = quarantine.add(ws.root, path, reason, lock=lock)
            entries.append(entry.id)
        else:
            write_bar_file(path, change.table)
        index_journal.note_changed(ws.root, [path])  # an old month: the index re-reads it
    return entries


def clear_stale_temps(target: Path) -> int:
    """Remove the temp files an interrupted writer (a SIGKILL mid-write) left beside
    ``target``. Every parqctl writer holds the run lock, which is ours now, so none of them
    is being written; the collector's own temp names are never touched. Returns how many."""
    prefix = temp_path_for(target).name.split(TEMP_MARKER)[0] + TEMP_MARKER
    removed = 0
    try:
        entries = list(os.scandir(target.parent))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed


def _existing_parent(path: Path) -> Path:
    current = path.parent
    while not current.exists() and current != current.parent:
        current = current.parent
    return current
