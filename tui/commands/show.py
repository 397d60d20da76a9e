"""``parqctl show TICKER``: where a ticker's bars live and what they hold."""

from __future__ import annotations

import argparse

from core.errors import ParqctlError
from core.store.workspace import Workspace
from tui.arguments import add_json_flag
from tui.text import print_json


def register(commands) -> None:
    p = commands.add_parser("show", help="where a ticker's bars live, and their rows and range")
    p.add_argument("ticker", metavar="TICKER", help="a Yahoo symbol, e.g. BRK-B")
    p.add_argument("--interval", "-i", default="1d", help="bar interval (default 1d)")
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from core.store.routing import locate, read_ticker_bars

    ws = Workspace.open(args.workspace)
    ws.load_all_metadata()
    ws.require_interval(args.interval)
    location = locate(ws, args.ticker, args.interval)
    bars = read_ticker_bars(ws, args.ticker, args.interval)
    if not bars.files and args.ticker not in ws.tickers:
        raise ParqctlError(
            f"no {args.interval} bar files and no tickers.json entry for {args.ticker}",
            "check the spelling; tickers are Yahoo symbols such as BRK-B",
        )
    dates = bars.table.column("date")
    first = dates[0].as_py() if bars.table.num_rows else None
    last = dates[-1].as_py() if bars.table.num_rows else None
    result = {
        "ticker": args.ticker,
        "interval": args.interval,
        "in_tickers_json": args.ticker in ws.tickers,
        "routed_to": location.mode,
        "decided_by": location.decided_by,
        "read_from": bars.source,
        "files": [str(p.relative_to(ws.root)) for p in bars.files],
        "rows": bars.table.num_rows,
        "first": first,
        "last": last,
        "columns": bars.table.column_names,
    }
    if args.json:
        print_json(result)
    else:
        files = result["files"]
        shown = (
            files[0]
            if len(files) == 1
            else f"{len(files)} files under {location.partition_dir.relative_to(ws.root)}"
        )
        print(f"{args.ticker} {args.interval}: routed to {location.mode} ({location.decided_by})")
        print(f"read from  {bars.source}: {shown if files else 'no files'}")
        print(f"rows       {bars.table.num_rows:,}" + (f" from {first} to {last}" if first else ""))
        print(f"columns    {', '.join(bars.table.column_names)}")
        if not result["in_tickers_json"]:
            print(f"note       {args.ticker} is not in tickers.json")
    return 0 if bars.table.num_rows else 1
