"""Windows Yahoo answered with no bars: a real halt, a thin ticker, a symbol not yet listed.

Kept in ``.parqctl/ingest/confirmed_empty.json`` (parqctl's own state; the collector never
looks there), one record per gap asked for, with the day it was asked. Backfill does not
ask for a gap inside a recorded window again unless told to (``--recheck``), and
availability shows such a gap as confirmed empty rather than recoverable.

```json
{"schema_version": 1,
 "windows": [{"ticker": "ABC", "interval": "1d", "start": "2025-03-03",
              "end": "2025-03-07", "sessions": 5, "asked": "2026-12-06"}]}
```
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from core.safety import atomic, untrusted_json
from core.store.workspace import STATE_DIR

EMPTY_FILE = Path(STATE_DIR) / "ingest" / "confirmed_empty.json"
SCHEMA_VERSION = 1
_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class EmptyWindow:
    ticker: str
    interval: str
    start: date
    end: date  # inclusive: the last day of the gap asked for
    sessions: int
    asked: date

    def covers(self, ticker: str, interval: str, start: date, end: date) -> bool:
        return (
            self.ticker == ticker
            and self.interval == interval
            and self.start <= start
            and end <= self.end
        )

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        for key in ("start", "end", "asked"):
            record[key] = record[key].isoformat()
        return record


def load(root: Path) -> list[EmptyWindow]:
    """The recorded windows; none when the file is missing, and none (never an error)
    from a file that is damaged: it only saves requests."""
    try:
        content = atomic.read_state_file(Path(root), EMPTY_FILE, limit=_MAX_BYTES)
    except OSError:
        return []
    if content is None:
        return []
    try:
        data = untrusted_json.loads(content)
        windows = data["windows"]
        return [
            EmptyWindow(
                str(w["ticker"]),
                str(w["interval"]),
                date.fromisoformat(w["start"]),
                date.fromisoformat(w["end"]),
                int(w.get("sessions", 0)),
                date.fromisoformat(w["asked"]),
            )
            for w in windows
        ]
    except (ValueError, KeyError, TypeError, RecursionError):
        return []


def days_by_ticker(root: Path, interval: str) -> dict[str, list[tuple[date, date]]]:
    """Ticker -> (first, last) day of each window of ``interval`` Yahoo had no bars for."""
    found: dict[str, list[tuple[date, date]]] = {}
    for window in load(root):
        if window.interval == interval:
            found.setdefault(window.ticker, []).append((window.start, window.end))
    return found


def covering(
    windows: list[EmptyWindow], ticker: str, interval: str, start: date, end: date
) -> EmptyWindow | None:
    return next((w for w in windows if w.covers(ticker, interval, start, end)), None)


def save(root: Path, windows: list[EmptyWindow]) -> None:
    """Write the records (atomically, refusing a link in place of .parqctl)."""
    ordered = sorted(set(windows), key=lambda w: (w.interval, w.ticker, w.start, w.end))
    target = atomic.confined(Path(root), Path(root) / EMPTY_FILE)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(
        target,
        {"schema_version": SCHEMA_VERSION, "windows": [w.as_dict() for w in ordered]},
    )


def update(
    root: Path, add: list[EmptyWindow] = (), drop: list[tuple[str, str, date, date]] = ()
) -> list[EmptyWindow]:
    """Record ``add`` (replacing records of the same gap) and forget the records that
    overlap a gap of ``drop`` (ticker, interval, start, end) where bars were found."""
    windows = load(root)
    keys = {(w.ticker, w.interval, w.start, w.end) for w in add}
    kept = [
        w
        for w in windows
        if (w.ticker, w.interval, w.start, w.end) not in keys
        and not any(
            w.ticker == t and w.interval == iv and w.start <= end and start <= w.end
            for t, iv, start, end in drop
        )
    ]
    result = kept + list(add)
    if result != windows:
        save(root, result)
    return result


@dataclass(frozen=True)
class ConfirmedGap:
    """A gap of an availability report that a recorded window says Yahoo has no bars for."""

    interval: str
    ticker: str
    gap_start: date
    gap_end: date
    window: EmptyWindow

    def as_dict(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "ticker": self.ticker,
            "gap": {"start": self.gap_start.isoformat(), "end": self.gap_end.isoformat()},
            **{k: v for k, v in self.window.as_dict().items() if k not in ("ticker", "interval")},
        }


def in_report(windows: list[EmptyWindow], report: Any) -> list[ConfirmedGap]:
    """The gaps of ``report`` (core.availability.gaps.AvailabilityReport) with a recorded window inside."""
    if not windows:
        return []
    by_key: dict[tuple[str, str], list[EmptyWindow]] = {}
    for w in windows:
        by_key.setdefault((w.ticker, w.interval), []).append(w)
    found = []
    for interval, iv in report.intervals.items():
        for ticker in iv.tickers:
            for w in by_key.get((ticker.ticker, interval), ()):
                for gap in ticker.gaps:
                    if gap.start <= w.start and w.end <= gap.end:
                        found.append(ConfirmedGap(interval, ticker.ticker, gap.start, gap.end, w))
    return found


def lines(confirmed: list[ConfirmedGap]) -> list[str]:
    """One line per confirmed-empty window, as ``parqctl availability`` prints them."""
    out = []
    for c in confirmed:
        w = c.window
        span = f"{w.start}..{w.end}" if w.end != w.start else str(w.start)
        out.append(
            f"confirmed  {c.interval} {c.ticker} {span}: {w.sessions:,} "
            f"session{'s' if w.sessions != 1 else ''} Yahoo has no bars for "
            f"(asked {w.asked}; `parqctl backfill --recheck` asks again)"
        )
    return out
