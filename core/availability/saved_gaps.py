"""The last gap summary (core.availability.gap_watch), saved beside the file index, so that the
console's dashboard paints coverage as it starts, while the summary is recomputed.

Recomputing it loads the index and builds the coverage grids (about a second on 5,000
tickers, with imports); the saved one is a small JSON file. It is saved with what it was
computed from: the day, and the stat of the index file and of every metadata and config
file. It is returned only while they are all unchanged: the same index on the same day
gives the same summary. Bars written since the index was last refreshed are not in it;
the recomputation that follows catches up with them.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import date
from pathlib import Path
from typing import Any

from core import health
from core.availability.gap_watch import GapWatch
from core.config import CONFIG_FILE
from core.jobs import CancelToken
from core.safety import untrusted_json
from core.safety.atomic import MAX_JSON_STATE_BYTES, atomic_open, confined, read_state_file
from core.store.metadata import INTERVALS_FILE, STORAGE_CONFIG_FILE, TICKERS_FILE
from core.store.workspace import STATE_DIR, Workspace

SAVED_FILE = Path(STATE_DIR) / "index" / "gap_summary.json"
# core.availability.index.index_path(root), not imported: core.availability.index loads pyarrow, too slow at start-up.
_INDEX_FILE = Path(STATE_DIR) / "index" / "files.arrow"
_INPUTS = (
    _INDEX_FILE,
    Path(TICKERS_FILE),
    Path(INTERVALS_FILE),
    Path(STORAGE_CONFIG_FILE),
    CONFIG_FILE,
)


def _inputs(root: Path) -> dict[str, list[int] | None]:
    """(size, mtime_ns) of each file the summary is computed from; None if absent."""
    stats: dict[str, list[int] | None] = {}
    for relative in _INPUTS:
        try:
            st = (root / relative).stat()
        except OSError:
            stats[relative.as_posix()] = None
            continue
        stats[relative.as_posix()] = [st.st_size, st.st_mtime_ns]
    return stats


def save(root: Path, watch: GapWatch) -> None:
    """Keep ``watch``, just computed from the workspace as it is now (a cache: no fsync;
    a workspace that cannot be written to is not an error here)."""
    record = {"inputs": _inputs(root), "summary": dataclasses.asdict(watch)}
    text = json.dumps(record, default=date.isoformat)
    try:
        path = confined(root, SAVED_FILE)  # an UnsafeLinkError is an OSError: not kept
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, durable=False) as handle:
            handle.write(text.encode("utf-8"))
    except OSError:
        pass


def load(root: Path, today: date) -> GapWatch | None:
    """The saved summary, if it was computed today from the files as they are now."""
    try:
        record = untrusted_json.loads(
            read_state_file(root, SAVED_FILE, max_bytes=MAX_JSON_STATE_BYTES) or b"null"
        )  # no FIFO wait
        if record["inputs"] != _inputs(root):
            return None
        watch = _decode(GapWatch, record["summary"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return watch if watch.today == today else None


def health_report_saving_gaps(
    ws: Workspace,
    *,
    now: float,
    today: date,
    fast_parts: health.HealthReport | None = None,
    cancel: CancelToken | None = None,
) -> health.HealthReport:
    """``health.health_report`` with the gap summary, which is saved for the next start.

    ``fast_parts`` is the report made with ``gaps=False`` a moment ago, to be completed
    rather than made again. ``cancel`` is checked once, before the gap summary.
    """
    report = fast_parts or health.health_report(ws, now=now, today=today, gaps=False)
    if cancel is not None:
        cancel.raise_if_cancelled("the next refresh computes it again")
    full = health.with_gaps(report, ws, today, reuse_saved=False)
    if full.gaps is not None:
        save(ws.root, full.gaps)
    return full


def _decode(kind: Any, value: Any) -> Any:
    """``value`` (as ``dataclasses.asdict`` and JSON left it) as an instance of ``kind``,
    from the dataclasses' type hints; ValueError if it does not fit."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        (inner,) = (arg for arg in typing.get_args(kind) if arg is not type(None))
        return _decode(inner, value)
    if origin is list:
        (item,) = typing.get_args(kind)
        return [_decode(item, element) for element in value]
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(
            **{f.name: _decode(hints[f.name], value[f.name]) for f in dataclasses.fields(kind)}
        )
    if kind is date:
        return date.fromisoformat(value)
    if kind in (int, str, bool, float) and type(value) is kind:
        return value
    raise ValueError(f"a saved {type(value).__name__} is not a {kind}")
