"""The file index's state: when it last looked at what, and the hot snapshot.

    state = load_state(ws.root)         # IndexState: full_scan_at, refreshed_at, strays
    hot_unchanged(ws.root)              # would a hot refresh change nothing? (no index load)

Kept apart from core.availability.index so that the questions asked at every call of
``health``, ``availability`` and the dashboard (how fresh is the index, did anything
change) import neither pyarrow nor polars. ``state.json`` holds the scan times, the stray
files and the directories that could not be read; ``hot.json`` the stat of every file
the next hot scan of this month will look at, and the tickers and datasets it will list.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from core.availability import index_journal, index_scan
from core.availability.index_scan import HotScope, ScanResult, Stray
from core.safety import untrusted_json
from core.safety.atomic import MAX_JSON_STATE_BYTES, atomic_open, confined, read_state_file
from core.store.workspace import STATE_DIR, Unreadable

INDEX_DIR = Path(STATE_DIR) / "index"
INDEX_FILE = "files.arrow"
STATE_FILE = "state.json"
HOT_FILE = "hot.json"
SUMMARY_FILE = "summary.json"
# Per (dataset, ticker) of the index: files, bytes, rows, unreadable files, first and last
# bar (epoch nanoseconds of naive exchange-local time; None without readable bars).
SUMMARY_COLUMNS = (
    "dataset",
    "kind",
    "interval",
    "ticker",
    "files",
    "bytes",
    "rows",
    "unreadable",
    "min_date",
    "max_date",
    "venue",
    "written_ns",
)
INDEX_VERSION = "2"
FULL_SCAN_DAYS = 7  # scan="due" stats every file when the last full scan is older


def index_path(root: Path) -> Path:
    return root / INDEX_DIR / INDEX_FILE


def read_index_file(root: Path, name: str) -> bytes | None:
    """A JSON file of the index directory, or None when it is not there. Never waits on a
    FIFO put in its place, follows a link nor reads more than MAX_JSON_STATE_BYTES
    (read_state_file): an OSError then, which every reader of the index takes for a
    damaged cache."""
    return read_state_file(root, INDEX_DIR / name, max_bytes=MAX_JSON_STATE_BYTES)


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
    scope: str = "all"  # "hot" or "all": which files were looked at
    looked_at: int = 0  # files stat'ed by this refresh (all of them for a full scan)


@dataclass(frozen=True)
class IndexState:
    """When the index last looked at what; epoch seconds, None for never."""

    full_scan_at: float | None = None  # every file stat'ed (cold months included)
    refreshed_at: float | None = None  # the hot months, new tickers and parqctl's writes
    strays: tuple[Stray, ...] = ()  # non-bar files in the datasets, as last seen
    unreadable: tuple[Unreadable, ...] = ()  # directories that could not be listed

    def as_dict(self) -> dict[str, Any]:
        return {
            "full_scan_at": self.full_scan_at,
            "refreshed_at": self.refreshed_at,
            "strays": len(self.strays),
            "unreadable": [str(u.path) for u in self.unreadable],
        }


def load_state(root: Path) -> IndexState:
    """The scan times, strays and unreadable directories of the last refresh."""
    try:
        raw = untrusted_json.loads(read_index_file(root, STATE_FILE) or b"null")
        if raw.get("version") != INDEX_VERSION or not index_path(root).exists():
            return IndexState()
        return IndexState(
            full_scan_at=raw.get("full_scan_at"),
            refreshed_at=raw.get("refreshed_at"),
            strays=tuple(Stray(*s) for s in raw.get("strays", [])),
            unreadable=tuple(Unreadable(root / p, r) for p, r in raw.get("unreadable", [])),
        )
    except (OSError, ValueError, TypeError, AttributeError):
        return IndexState()


def load_summary(
    root: Path, columns: tuple[str, ...] = SUMMARY_COLUMNS
) -> dict[str, list[Any]] | None:
    """The summary, column by column, as of the index's last refresh; None when there is no
    index yet, or its summary lacks one of ``columns`` (written by an older parqctl)."""
    if not load_state(root).refreshed_at:
        return None
    try:
        raw = untrusted_json.loads(read_index_file(root, SUMMARY_FILE) or b"null")
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or not set(columns) <= set(raw):
        return None
    lengths = {len(raw[name]) if isinstance(raw[name], list) else -1 for name in columns}
    return raw if len(lengths) == 1 and -1 not in lengths else None


def save_state(root: Path, state: IndexState) -> str | None:
    path = root / INDEX_DIR / STATE_FILE
    raw = {
        "version": INDEX_VERSION,
        "full_scan_at": state.full_scan_at,
        "refreshed_at": state.refreshed_at,
        "strays": [list(s) for s in state.strays],
        "unreadable": [[_relative(u.path, root), u.reason] for u in state.unreadable],
    }
    try:
        confined(root, path).parent.mkdir(parents=True, exist_ok=True)  # never through a link
        with atomic_open(path, durable=False) as handle:
            handle.write(json.dumps(raw).encode("utf-8"))
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc}"
    return None


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def month_key(day: date) -> int:
    return day.year * 12 + day.month - 1


def stray_looked_at(stray: Stray, result: ScanResult) -> bool:
    """Whether a hot scan looked where ``stray`` was (so it saw it, if it is there)."""
    assert result.hot is not None
    parts = stray.path[len(stray.dataset) + 1 :].split("/")
    ticker = parts[0][len("ticker=") :] if parts[0].startswith("ticker=") else None
    return (
        stray.dataset not in result.datasets
        or ticker is None
        or ticker not in result.present.get(stray.dataset, ())
        or (stray.dataset, ticker) in result.walked
        or _in_hot_month(parts, result.hot)
    )


def _in_hot_month(parts: list[str], hot: HotScope) -> bool:
    try:
        year = int(parts[1].removeprefix("year="))
        month = int(parts[2].removeprefix("month="))
    except (ValueError, IndexError):
        return False
    return hot.first_month <= year * 12 + month - 1 <= hot.last_month


def stat_of(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def cold_stat(root: Path) -> list[list[Any]]:
    """The name and stat of each of the index's cold shards (core.availability.index_shards,
    files ``cold-*.arrow``), to see that they are still those of the last refresh."""
    try:
        names = sorted(p.name for p in (root / INDEX_DIR).glob("cold-*.arrow"))
    except OSError:
        return []
    return [[name, stat_of(root / INDEX_DIR / name)] for name in names]


def full_scan_due(state: IndexState, now: float) -> bool:
    return state.full_scan_at is None or now - state.full_scan_at > FULL_SCAN_DAYS * 86400


def hot_range(now: float) -> tuple[int, int]:
    """The months a hot scan looks at when the last refresh was this month."""
    month = month_key(date.fromtimestamp(now))
    return month - 1, month + 1


def hot_unchanged(root: Path, *, scan: str = "hot", now: float | None = None) -> bool:
    """Whether ``refresh_index(root, scan=scan)`` would change nothing, found without
    loading the index: no full scan is due, the hot scan's files, tickers, datasets and
    strays are those of the last refresh, and parqctl noted no change. Records the
    refresh's time when so."""
    now = time.time() if now is None else now
    if scan == "all" or (scan == "due" and full_scan_due(load_state(root), now)):
        return False
    return unchanged_hot(root, now) is not None


def unchanged_hot(root: Path, now: float) -> int | None:
    """The files a hot scan looked at when it found nothing changed; else None."""
    state = load_state(root)
    if state.refreshed_at is None or state.full_scan_at is None:
        return None
    try:
        raw = untrusted_json.loads(read_index_file(root, HOT_FILE) or b"null")
        if raw["version"] != INDEX_VERSION or tuple(raw["range"]) != hot_range(now):
            return None
        if (
            raw["too_large"]
            or month_key(date.fromtimestamp(state.refreshed_at)) != raw["range"][0] + 1
        ):
            return None
        if raw["index"] is None or raw["index"] != stat_of(index_path(root)):
            return None  # the index was replaced since (another process, or damage)
        if raw.get("cold") != cold_stat(root):
            return None  # its cold shard too
        known = {d: set(t) for d, t in raw["known"].items()}
        files = {tuple(f) for f in raw["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if index_journal.pending(root).paths:
        return None
    first, last = raw["range"]
    result = index_scan.scan(root, HotScope(first, last, known))
    if (
        sorted(result.datasets) != raw["datasets"]
        or {d: sorted(t) for d, t in result.present.items()} != raw["present"]
        or {(f.path, f.size, f.mtime_ns) for f in result.found} != files
        or {u.path for u in result.unreadable} != {u.path for u in state.unreadable}
        or set(result.strays) != {s for s in state.strays if stray_looked_at(s, result)}
    ):
        index_scan.keep(root, result)  # the refresh that follows looks at the same
        return None
    save_state(root, dataclasses.replace(state, refreshed_at=now))
    return len(result.found)


def write_hot(root: Path, raw: dict[str, Any]) -> None:
    """Keep the hot snapshot (a cache: failing to write it only costs a full refresh)."""
    try:
        with atomic_open(confined(root, INDEX_DIR / HOT_FILE), durable=False) as handle:
            handle.write(json.dumps({**raw, "version": INDEX_VERSION}).encode("utf-8"))
    except OSError:
        pass
