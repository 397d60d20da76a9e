"""``parqctl fetch``: download bars from Yahoo Finance and merge them in as the collector
would have written them. Also the pieces ``backfill`` shares: signals, pacing, progress."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

from core.jobs import CancelToken, Progress, ignore_progress
from core.store.workspace import Workspace
from tui.arguments import add_json_flag, iso_date
from tui.cancellation import cancellable
from tui.progress import stderr_progress
from tui.text import print_json

if TYPE_CHECKING:
    from core.ingest.pacing import Pacer
    from core.ingest.runner import RunResult, UnitResult

EXIT_INTERRUPTED = 130
CONFLICTS_SHOWN = 5


def register(commands) -> None:
    p = commands.add_parser(
        "fetch",
        help="download bars from Yahoo Finance and merge them in where the collector reads them",
    )
    p.add_argument(
        "--ticker",
        "-t",
        action="extend",
        nargs="+",
        metavar="T",
        required=True,
        help="Yahoo symbols (AAPL BRK-B ^GSPC)",
    )
    p.add_argument("--interval", "-i", required=True, metavar="IV", help="1d, 1h, 1m, ...")
    p.add_argument(
        "--start",
        type=iso_date,
        metavar="DATE",
        help="first day (default: the ticker's last_data_date, as the collector starts)",
    )
    p.add_argument("--end", type=iso_date, metavar="DATE", help="last day (default: today)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace stored values that differ (the old file is quarantined first)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="download and say what would change; write nothing"
    )
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from core.ingest.fetch import fetch, plan_fetch
    from core.ingest.yahoo import default_source

    ws = Workspace.open(args.workspace)
    ws.load_all_metadata()
    plan = plan_fetch(ws, args.ticker, args.interval, start=args.start, end=args.end)
    with cancellable("after the request in progress") as token, ingest_progress(args.json) as draw:
        pacer = make_pacer(ws, token)
        result = fetch(
            ws,
            plan,
            default_source(),
            pacer,
            dry_run=args.dry_run,
            overwrite=args.overwrite,
            progress=draw,
        )
    if args.json:
        print_json(result.as_dict())
    else:
        for note in plan.notes:
            print(f"note: {note}")
        print("\n".join(unit_lines(result.run, args.overwrite)))
    return exit_code(result.run)


def unit_lines(result: RunResult, overwrite: bool) -> list[str]:
    """What happened to each ticker, and the run's one-line outcome."""
    lines = []
    for unit in result.units:
        lines += _unit_lines(unit, result.dry_run, overwrite)
    verb = "would add" if result.dry_run else "added"
    lines.append(
        f"{result.requests} of {result.requests_planned} requests answered; {verb} "
        f"{result.added:,} rows" + (" (dry run: nothing written)" if result.dry_run else "")
    )
    lines += stop_lines(result)
    return lines


def _unit_lines(unit: UnitResult, dry_run: bool, overwrite: bool) -> list[str]:
    head = f"{unit.ticker:<10} {unit.interval:<4}"
    if unit.error:
        return [f"{head} not written: {unit.error}"]
    merge = unit.merge
    if merge is None:
        return [f"{head} not asked"]
    where = ", ".join(_short(c.path) for c in merge.changes[:3])
    more = len(merge.changes) - 3
    if more > 0:
        where += f" and {more} more"
    parts = [f"{merge.added:,} new", f"{merge.identical:,} identical"]
    if merge.differing:
        if overwrite:
            verb = "would be replaced" if dry_run else "replaced"
            parts.append(f"{merge.differing:,} differing ({verb}; old file quarantined)")
        else:
            parts.append(f"{merge.differing:,} differing (stored values kept; --overwrite)")
    line = f"{head} {merge.mode:<11} {', '.join(parts)}"
    if unit.fetched != unit.kept:
        line += f"; {unit.fetched - unit.kept:,} bars outside the gaps ignored"
    if where:
        line += f" -> {where}"
    lines = [line]
    for conflict in merge.conflicts[:CONFLICTS_SHOWN]:
        lines.append(
            f"  differs  {conflict.date:%Y-%m-%d %H:%M} {conflict.column}: "
            f"stored {conflict.stored}, Yahoo {conflict.incoming}"
        )
    if merge.differing > CONFLICTS_SHOWN:
        lines.append(f"  ... {merge.differing - CONFLICTS_SHOWN:,} more differing rows (--json)")
    for entry in unit.quarantined:
        lines.append(f"  old file quarantined as {entry} (`parqctl quarantine restore {entry}`)")
    for refusal in unit.refused:
        lines.append(f"  {refusal}")
    if unit.registered:
        lines.append(f"  registered {unit.ticker} in tickers.json")
    return lines


def _short(path) -> str:
    parts = path.parts
    for i, part in enumerate(parts):
        if part.startswith("stocks_") or part == "data":
            return "/".join(parts[i:])
    return str(path)


def stop_lines(result: RunResult) -> list[str]:
    if result.stopped:
        return [
            f"stopped: {result.stopped} after {result.requests} of {result.requests_planned} "
            "requests; everything fetched before is written; run the command again to go on"
        ]
    if result.cancelled:
        return [
            f"cancelled after {result.requests} of {result.requests_planned} requests; "
            "everything fetched before is written; run the command again to go on"
        ]
    return []


def exit_code(result: RunResult) -> int:
    from core.ingest.runner import EXIT_YAHOO

    if result.cancelled:
        return EXIT_INTERRUPTED
    if result.stopped:
        return EXIT_YAHOO
    problems = result.errors + sum(bool(u.refused) for u in result.units)
    return 1 if problems or (result.differing and not _overwrote(result)) else 0


def _overwrote(result: RunResult) -> bool:
    return all(u.merge.overwritten == u.merge.differing for u in result.units if u.merge)


def make_pacer(ws: Workspace, token: CancelToken) -> Pacer:
    """The token bucket and backoff of ``[ingest]``, on the real clock; each wait for a
    rate limit is said on stderr."""
    from core.ingest.pacing import Pacer, SystemClock
    from core.ingest.settings import load_settings

    def say(line: str) -> None:
        print(f"parqctl: {line}", file=sys.stderr, flush=True)

    return Pacer(load_settings(ws.root), SystemClock(token), token=token, on_wait=say)


def progress_text(progress: Progress, width: int = 24) -> str:
    eta = f"ETA {progress.eta_s:.0f}s" if progress.eta_s is not None else "ETA -"
    text = (
        f"{progress.done:,}/{progress.total:,} requests, {progress.rows:,} rows added, "
        f"{progress.elapsed_s:.0f}s elapsed, {eta}"
    )
    if width <= 0:
        return f"{progress.job} {text}"
    filled = round(width * progress.fraction)
    return f"{progress.job} [{'#' * filled}{'.' * (width - filled)}] {text}"


def ingest_progress(quiet: bool = False):
    """Requests done, rows added and an ETA on stderr: one line redrawn on a terminal,
    else a line per request answered (for logs)."""
    if quiet:
        return contextlib.nullcontext(ignore_progress)
    return stderr_progress(progress_text, log_when_piped=True)
