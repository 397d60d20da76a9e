"""Trading sessions kept under ``.parqctl/index/calendars/``, so warm queries build no calendar.

Building an exchange_calendars calendar takes about a second, and importing the library
several; availability from a warm index must answer faster than that. Sessions of a
calendar are stored for whole years, one small Arrow file per calendar, tagged with the
exchange_calendars version that computed them: another version recomputes them.
"""

from __future__ import annotations

import importlib.metadata
from datetime import date
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pyarrow as pa

from core.availability.arrow_cache import read_arrow, write_arrow
from core.availability.calendars import SessionTable, sessions
from core.availability.index import INDEX_DIR, numpy_values
from core.safety.atomic import UnsafeLinkError, atomic_path, confined

CALENDAR_DIR = INDEX_DIR / "calendars"
_SCHEMA = pa.schema(
    [("date", pa.date32()), ("open", pa.timestamp("ns")), ("close", pa.timestamp("ns"))]
)


def _library_version() -> str:
    return importlib.metadata.version("exchange_calendars")


def _cache_file(root: Path, calendar: str) -> Path:
    return root / CALENDAR_DIR / f"{quote(calendar, safe='')}.arrow"


def _load(root: Path, path: Path, version: str) -> tuple[date, date, SessionTable] | None:
    try:
        files = read_arrow(root, path.relative_to(root))  # never waits on a FIFO
        if files is None:
            return None
        table = pa.ipc.open_file(files[0]).read_all()
        meta = table.schema.metadata or {}
        if meta.get(b"exchange_calendars") != version.encode():
            return None
        start = date.fromisoformat(meta[b"start"].decode())
        end = date.fromisoformat(meta[b"end"].decode())
        calendar = meta[b"calendar"].decode()
        found = SessionTable(
            calendar,
            numpy_values(table["date"].combine_chunks(), np.int32).astype("datetime64[D]"),
            numpy_values(table["open"].combine_chunks(), np.int64).view("datetime64[ns]"),
            numpy_values(table["close"].combine_chunks(), np.int64).view("datetime64[ns]"),
        )
    except (OSError, pa.ArrowException, KeyError, ValueError):
        return None
    return start, end, found


def _save(path: Path, start: date, end: date, table: SessionTable, version: str) -> None:
    arrow = pa.Table.from_arrays(
        [pa.array(table.dates), pa.array(table.opens), pa.array(table.closes)], schema=_SCHEMA
    ).replace_schema_metadata(
        {
            "calendar": table.calendar,
            "exchange_calendars": version,
            "start": start.isoformat(),
            "end": end.isoformat(),
        }
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, durable=False) as tmp:  # a cache: recomputed when lost
            write_arrow(tmp, arrow.schema, arrow.to_batches())
    except OSError:
        pass  # a read-only workspace still answers, only slower next time


def _slice(table: SessionTable, start: date, end: date) -> SessionTable:
    lo = np.searchsorted(table.dates, np.datetime64(start, "D"), side="left")
    hi = np.searchsorted(table.dates, np.datetime64(end, "D"), side="right")
    return SessionTable(table.calendar, table.dates[lo:hi], table.opens[lo:hi], table.closes[lo:hi])


def cached_sessions(root: Path, calendar: str, start: date, end: date) -> SessionTable:
    """``core.availability.calendars.sessions(calendar, start, end)``, from the workspace's cache if it can."""
    if end < start:
        return sessions(calendar, start, end)
    version = _library_version()
    try:
        path = confined(root, _cache_file(root, calendar))
    except UnsafeLinkError:  # never read or write a cache through a link: compute it
        return sessions(calendar, start, end)
    cached = _load(root, path, version)
    if cached is not None and cached[0] <= start and end <= cached[1]:
        return _slice(cached[2], start, end)
    span_start, span_end = date(start.year, 1, 1), date(end.year, 12, 31)
    if cached is not None:
        span_start, span_end = min(span_start, cached[0]), max(span_end, cached[1])
    table = sessions(calendar, span_start, span_end)
    _save(path, span_start, span_end, table, version)
    return _slice(table, start, end)
