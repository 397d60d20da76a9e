"""The console's past queries, ``.parqctl/sql_history.jsonl``: one JSON line per query run,
appended (never rewritten), read back newest first."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from core.safety import atomic, untrusted_json
from core.store.workspace import STATE_DIR

HISTORY_FILE = Path(STATE_DIR) / "sql_history.jsonl"
READ_BYTES = 512 * 1024  # the tail that is read back: thousands of queries
MAX_QUERY_CHARS = 20_000  # a longer query is kept in the log cut to this


@dataclass(frozen=True)
class HistoryEntry:
    query: str
    ts: float
    rows: int | None
    elapsed_s: float | None
    error: str | None


def record(
    root: Path,
    query: str,
    *,
    rows: int | None = None,
    elapsed_s: float | None = None,
    error: str | None = None,
    now: float | None = None,
) -> None:
    """Append one query to the history (no fsync: it is a convenience, not a record)."""
    entry = {
        "ts": round(time.time() if now is None else now, 3),
        "query": query[:MAX_QUERY_CHARS],
        "rows": rows,
        "elapsed_s": None if elapsed_s is None else round(elapsed_s, 3),
        "error": error,
    }
    line = json.dumps(entry, ensure_ascii=False) + "\n"
    atomic.append(Path(root), HISTORY_FILE, line.encode("utf-8"), sync=False)


def load(root: Path, limit: int = 200) -> list[HistoryEntry]:
    """The last ``limit`` distinct queries, newest first (a query run again moves up)."""
    try:
        content = atomic.read_state_file(Path(root), HISTORY_FILE, limit=READ_BYTES)
    except OSError:
        return []
    if not content:
        return []
    seen: set[str] = set()
    found: list[HistoryEntry] = []
    for line in reversed(content.decode("utf-8", errors="replace").splitlines()):
        try:
            raw = untrusted_json.loads(line)
            query = raw["query"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a torn line (the first of a cut tail, or a crash mid-append)
        if not isinstance(query, str) or query.strip() in seen:
            continue
        seen.add(query.strip())
        found.append(
            HistoryEntry(
                query,
                float(raw.get("ts") or 0),
                raw.get("rows") if isinstance(raw.get("rows"), int) else None,
                raw.get("elapsed_s") if isinstance(raw.get("elapsed_s"), int | float) else None,
                raw.get("error") if isinstance(raw.get("error"), str) else None,
            )
        )
        if len(found) >= limit:
            break
    return found
