"""``parqctl backfill``: fetch the recoverable gaps from Yahoo Finance, most urgent first."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from core.store.workspace import Workspace
from tui.arguments import add_json_flag, iso_date, positive_int
from tui.cancellation import cancellable
from tui.commands.fetch import (
    exit_code,
    ingest_progress,
    make_pacer,
    stop_lines,
)
from tui.text import print_json

if TYPE_CHECKING:
    from core.ingest.backfill import BackfillPlan, BackfillResult

PLAN_SHOWN = 20


def register(commands) -> None:
    p = commands.add_parser(
        "backfill",
        help="fetch the gaps Yahoo can still serve, most urgent first; exit 0 all asked for closed",
    )
    p.add_argument(
        "--interval", "-i", action="extend", nargs="+", metavar="IV", help="only these intervals"
    )
    p.add_argument(
        "--ticker", "-t", action="extend", nargs="+", metavar="T", help="only these tickers"
    )
    p.add_argument(
        "--max-requests",
        type=positive_int,
        metavar="N",
        help="make at most N requests (the most urgent ones)",
    )
    p.add_argument(
        "--recheck",
        action="store_true",
        help="ask again for gaps Yahoo answered empty before",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="download and say what would change; write nothing"
    )
    p.add_argument(
        "--today",
        type=iso_date,
        metavar="DATE",
        help="judge recoverability as of DATE (default: today)",
    )
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from core.ingest.backfill import backfill, plan_backfill
    from core.ingest.yahoo import default_source

    ws = Workspace.open(args.workspace)
    ws.load_all_metadata()
    for interval in args.interval or ():
        ws.require_interval(interval)
    plan = plan_backfill(
        ws,
        intervals=args.interval,
        tickers=args.ticker,
        today=args.today,
        recheck=args.recheck,
        max_requests=args.max_requests,
    )
    if not plan.requests:
        if args.json:
            print_json({"plan": plan.as_dict(), "requests": 0, "units": []})
        else:
            print("\n".join(plan_lines(plan)))
        return 0
    if not args.json:
        print("\n".join(plan_lines(plan)), flush=True)
    with cancellable("after the request in progress") as token, ingest_progress(args.json) as draw:
        result = backfill(
            ws, plan, default_source(), make_pacer(ws, token), dry_run=args.dry_run, progress=draw
        )
    if args.json:
        print_json(result.as_dict())
    else:
        print("\n".join(result_lines(result)))
    code = exit_code(result.run)
    if code == 0 and any(_unfilled(s) for s in result.summaries):
        code = 1
    return code


def _unfilled(summary) -> bool:
    """Sessions asked for that are still missing, and that Yahoo did not answer empty
    (lost sessions, never asked for, do not count)."""
    if summary.missing_after is None:
        return False
    expected = summary.missing_before - summary.asked_sessions + summary.confirmed_empty_sessions
    return summary.missing_after > expected


def plan_lines(plan: BackfillPlan) -> list[str]:
    if not plan.requests:
        lines = ["nothing to backfill: no recoverable gap left to ask for"]
    else:
        tickers = {(r.ticker, r.interval) for r in plan.requests}
        n = len(plan.requests)
        lines = [
            f"backfill: {n} request{'s' if n != 1 else ''} for {plan.sessions:,} missing "
            f"sessions of {len(tickers)} ticker/intervals, most urgent first"
        ]
    for request in plan.requests[:PLAN_SHOWN]:
        for target in request.targets or ():
            span = f"{target.start}..{target.end}" if target.end != target.start else target.start
            until = (
                f"recoverable until {target.recoverable_until}"
                if target.recoverable_until
                else "never expires"
            )
            lines.append(
                f"  {request.ticker:<10} {request.interval:<4} {span!s:<22} "
                f"{_sessions(target.sessions)}  {until}"
            )
    if len(plan.requests) > PLAN_SHOWN:
        lines.append(f"  ... and {len(plan.requests) - PLAN_SHOWN:,} more requests (--json)")
    if plan.left_out:
        lines.append(f"left for a later run (--max-requests): {len(plan.left_out):,} requests")
    for skipped in plan.skipped:
        span = f"{skipped.start}..{skipped.end}" if skipped.end != skipped.start else skipped.start
        lines.append(
            f"  skipped  {skipped.ticker:<10} {skipped.interval:<4} {span!s:<22} "
            f"{_sessions(skipped.sessions)}  {skipped.why}"
        )
    return lines


def _sessions(count: int) -> str:
    return f"{count:>5,} session{'s' if count != 1 else ' '}"


_HEADER = ("ticker", "interval", "requests", "asked", "rows added", "empty", "missing", "now")


def result_lines(result: BackfillResult) -> list[str]:
    run = result.run
    rows = [
        (
            s.ticker,
            s.interval,
            f"{s.requests:,}",
            f"{s.asked_sessions:,}",
            f"{s.rows_added:,}",
            f"{s.confirmed_empty_sessions:,}",
            f"{s.missing_before:,}",
            "-" if s.missing_after is None else f"{s.missing_after:,}",
        )
        for s in result.summaries
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(_HEADER)]
    left = {0, 1}

    def line(cells) -> str:
        return "  ".join(
            f"{c:<{w}}" if i in left else f"{c:>{w}}"
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    lines = ["", line(_HEADER), *(line(r) for r in rows)]
    for unit in run.units:
        for target in unit.empty:
            span = f"{target.start}..{target.end}" if target.end != target.start else target.start
            lines.append(
                f"confirmed empty  {unit.ticker} {unit.interval} {span}: "
                "Yahoo has no bars there (recorded; --recheck asks again)"
            )
        if unit.error:
            lines.append(f"not written      {unit.ticker} {unit.interval}: {unit.error}")
        for refusal in unit.refused:
            lines.append(f"refused          {unit.ticker} {unit.interval} {refusal}")
    verb = "would add" if run.dry_run else "added"
    lines.append(
        f"{run.requests} of {run.requests_planned} requests answered in {run.elapsed_s:.0f}s; "
        f"{verb} {run.added:,} rows" + (" (dry run: nothing written)" if run.dry_run else "")
    )
    lines += stop_lines(run)
    return lines
