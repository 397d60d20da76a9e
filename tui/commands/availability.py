"""``parqctl availability``: what bars are stored, and which sessions are missing."""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from typing import TYPE_CHECKING, Any

from core.store.workspace import Workspace
from tui.arguments import add_json_flag, iso_date
from tui.text import human_age

if TYPE_CHECKING:  # core.availability.gaps imports numpy: not at start-up
    from core.availability.gaps import (
        AvailabilityReport,
        Gap,
        IntervalAvailability,
        TickerAvailability,
    )
    from core.availability.index_state import IndexState, RefreshStats

WORST_SHOWN = 10
FULL_SCAN_DAYS = 7  # core.availability.index.FULL_SCAN_DAYS (not imported: pyarrow at start-up)


def register(commands) -> None:
    p = commands.add_parser(
        "availability",
        help="sessions present, partial and missing per ticker; exit 0 complete, 1 gaps",
    )
    p.add_argument(
        "--interval",
        "-i",
        action="extend",
        nargs="+",
        metavar="IV",
        help="only these intervals (default: all with files or in intervals.json)",
    )
    p.add_argument(
        "--ticker",
        "-t",
        action="extend",
        nargs="+",
        metavar="T",
        help="only these tickers, and list their gaps",
    )
    p.add_argument("--since", type=iso_date, metavar="DATE", help="count sessions from DATE")
    p.add_argument("--until", type=iso_date, metavar="DATE", help="count sessions up to DATE")
    p.add_argument(
        "--before-first",
        action="store_true",
        help="count sessions before a ticker's first bar as missing (from --since, else "
        "from the interval's earliest bar)",
    )
    p.add_argument(
        "--today",
        type=iso_date,
        metavar="DATE",
        help="judge recoverability as of DATE (default: today)",
    )
    p.add_argument(
        "--refresh", action="store_true", help="re-read every bar file, not only changed ones"
    )
    p.add_argument(
        "--scan",
        action="store_true",
        help="look at every bar file's stat, old months too (by default: the hot months, "
        f"new tickers and parqctl's own writes; every file when the last full scan is over "
        f"{FULL_SCAN_DAYS} days old)",
    )
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from core.availability import saved_report
    from core.availability.index_state import RefreshStats, hot_unchanged

    ws = Workspace.open(args.workspace)
    _ = ws.config  # a malformed config.toml refuses before the index is written
    for interval in args.interval or ():
        ws.require_interval(interval)
    scan = "all" if args.scan else "due"
    question = {
        "json": args.json,
        "interval": args.interval,
        "ticker": args.ticker,
        "window": [args.since, args.until, args.before_first],
        "today": args.today or date.today(),
    }
    if not args.refresh and hot_unchanged(ws.root, scan=scan):
        saved = saved_report.load(ws.root, question)
        if saved is not None:  # the same question over the same files: the same answer
            body, code, files = saved
            stats = RefreshStats(scanned=files, reused=files, scope="hot")
            print(_with_index(body, stats, _state(ws.root), args.json))
            return code
    from core.availability.gaps import Window, availability
    from core.availability.index import refresh_index
    from tui.progress import stderr_progress

    window = Window(args.since, args.until, args.before_first)
    with stderr_progress() as draw:
        index = refresh_index(ws.root, full=args.refresh, scan=scan, progress=draw)
    report = availability(
        ws,
        index,
        intervals=args.interval,
        tickers=args.ticker,
        window=window,
        today=args.today,
    )
    from core.ingest import confirmed_empty  # windows `parqctl backfill` found empty

    empty = confirmed_empty.in_report(confirmed_empty.load(ws.root), report)
    if args.json:
        # Compact: the report of 5,000 tickers is megabytes, and indenting it (Python's
        # pure-Python encoder) took two seconds; the C encoder writes it in a tenth.
        body = json.dumps(
            {**report.as_dict(), "confirmed_empty": [e.as_dict() for e in empty]},
            separators=(",", ":"),
            default=str,
        )
    else:
        lines = render(report, named=bool(args.ticker)) + confirmed_empty.lines(empty)
        body = "\n".join(lines)
    code = 0 if report.clean else 1
    saved_report.save(ws.root, question, body, code, index.files.height)
    print(_with_index(body, report.index, index.state, args.json))
    return code


def _state(root):
    from core.availability.index_state import load_state

    return load_state(root)


def _with_index(body: str, stats: RefreshStats, state: IndexState, as_json: bool) -> str:
    """The report with what the index did this time (and how fresh it is) put in."""
    if as_json:
        return body[:-1] + ',"index":' + json.dumps(_index_dict(stats, state)) + "}"
    first, _, rest = body.partition("\n")
    return "\n".join([first, _index_line(stats, state), rest]).rstrip("\n")


def _index_dict(stats: RefreshStats, state: IndexState) -> dict[str, Any]:
    return {
        "files": stats.scanned,
        "read": stats.opened,
        "unchanged": stats.reused,
        "removed": stats.removed,
        "saved": stats.persisted,
        "save_error": stats.persist_error,
        "scope": stats.scope,
        "refreshed_at": state.refreshed_at,
        "full_scan_at": state.full_scan_at,
    }


_HEADER = (
    ("interval", "<"),
    ("calendar", "<"),
    ("tickers", ">"),
    ("complete", ">"),
    ("with gaps", ">"),
    ("missing", ">"),
    ("recoverable", ">"),
    ("lost", ">"),
    ("partial", ">"),
    ("unreadable", ">"),
    ("no bars", ">"),
)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, (h, _) in enumerate(_HEADER)]
    header = "  ".join(f"{h:{a}{w}}" for (h, a), w in zip(_HEADER, widths, strict=True))
    body = [
        "  ".join(f"{c:{a}{w}}" for c, (_, a), w in zip(row, _HEADER, widths, strict=True))
        for row in rows
    ]
    return [header, *body]


def _index_line(stats: RefreshStats, state: IndexState) -> str:
    scope = "every file" if stats.scope == "all" else "hot months"
    full = (
        f"; last full scan {human_age(time.time() - state.full_scan_at)} ago"
        if state.full_scan_at and stats.scope != "all"
        else ""
    )
    return (
        f"index      {stats.scanned:,} files: {stats.opened:,} read, {stats.reused:,} unchanged, "
        f"{stats.removed:,} gone ({scope} looked at{full})"
        + ("" if stats.persisted else f" (not saved: {stats.persist_error})")
    )


def render(report: AvailabilityReport, named: bool) -> list[str]:
    lines = [f"workspace  {report.root}"]  # then the index line (_with_index)
    window = [
        f"from {report.since}" if report.since else "",
        f"to {report.until}" if report.until else "",
    ]
    if any(window) or report.before_first:
        before = ", counting before each first bar" if report.before_first else ""
        lines.append(f"window     {' '.join(w for w in window if w) or 'all'}{before}")
    rows = []
    for iv in report.intervals.values():
        rows.append(
            (
                iv.interval,
                ",".join(iv.calendars) or "-",
                f"{len(iv.tickers):,}",
                f"{iv.complete:,}",
                f"{iv.with_gaps:,}",
                f"{iv.missing_sessions:,}",
                f"{iv.missing_sessions - iv.lost_sessions:,}",
                f"{iv.lost_sessions:,}",
                f"{iv.partial_sessions:,}",
                f"{iv.unreadable_files:,}",
                f"{len(iv.without_bars):,}",
            )
        )
    lines += ["", *_table(rows)]
    for iv in report.intervals.values():
        lines += _problems(iv, named)
    return lines


def _problems(iv: IntervalAvailability, named: bool) -> list[str]:
    lines = []
    for ticker in iv.tickers:
        for unreadable in ticker.unreadable:
            lines.append(f"unreadable {iv.interval} {unreadable.path}: {unreadable.error}")
    if iv.without_bars:
        shown = ", ".join(iv.without_bars[:WORST_SHOWN])
        more = len(iv.without_bars) - WORST_SHOWN
        lines.append(
            f"no bars    {iv.interval} {shown}" + (f" and {more:,} more" if more > 0 else "")
        )
    if named:
        for ticker in iv.tickers:
            lines += _ticker_lines(iv, ticker)
        return lines
    worst = sorted(
        (t for t in iv.tickers if t.gaps or t.partial),
        key=lambda t: (-(t.missing_sessions + len(t.partial)), t.ticker),
    )
    if worst:
        shown = ", ".join(
            f"{t.ticker} ({t.missing_sessions:,} missing"
            + (f", {len(t.partial):,} partial" if t.partial else "")
            + ")"
            for t in worst[:WORST_SHOWN]
        )
        more = len(worst) - WORST_SHOWN
        lines.append(
            f"worst      {iv.interval} {shown}" + (f" and {more:,} more" if more > 0 else "")
        )
    return lines


def _recoverability(gap: Gap, retention_days: int | None) -> str:
    if retention_days is None:
        return "recoverable (never expires)"
    if gap.status == "lost":
        return f"lost (older than {retention_days} days)"
    if gap.status == "partly lost":
        return (
            f"{gap.lost_sessions} session(s) lost, the rest recoverable until "
            f"{gap.recoverable_until}"
        )
    return f"recoverable until {gap.recoverable_until}"


def _ticker_lines(iv: IntervalAvailability, ticker: TickerAvailability) -> list[str]:
    if ticker.first is None:
        return [f"{ticker.ticker} {iv.interval}: no readable bars"]
    lines = [
        f"{ticker.ticker} {iv.interval} ({ticker.source}, {ticker.calendar}) "
        f"{ticker.first}..{ticker.last}: {ticker.expected_sessions:,} sessions expected, "
        f"{ticker.present_sessions:,} present, {len(ticker.partial):,} partial, "
        f"{ticker.missing_sessions:,} missing"
    ]
    for gap in ticker.gaps:
        span = f"{gap.start}..{gap.end}" if gap.end != gap.start else str(gap.start)
        plural = "s" if gap.sessions != 1 else ""
        lines.append(
            f"  gap      {span:<22} {gap.sessions:>5,} session{plural:<1}  "
            f"{_recoverability(gap, iv.retention_days)}"
        )
    for partial in ticker.partial:
        lines.append(f"  partial  {partial.session}  {partial.bars} of {partial.expected} bars")
    if ticker.off_session_days:
        days = ", ".join(str(d) for d in ticker.off_session_days[:WORST_SHOWN])
        more = len(ticker.off_session_days) - WORST_SHOWN
        lines.append(
            f"  bars on days that are not sessions: {days}"
            + (f" and {more:,} more" if more > 0 else "")
        )
    return lines
