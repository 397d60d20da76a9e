"""``parqctl import-csv FILE``: bars from a CSV file, checked in full, merged in where the
collector reads them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.store.workspace import Workspace
from tui.arguments import add_json_flag
from tui.text import print_json

if TYPE_CHECKING:
    from core.ingest.csv_import import ImportResult

PROBLEMS_SHOWN = 20
CONFLICTS_SHOWN = 5


def register(commands) -> None:
    p = commands.add_parser(
        "import-csv",
        help="import bars from a CSV file (Yahoo's download or date,open,high,low,close,volume)",
    )
    p.add_argument("file", metavar="FILE", help="the CSV file")
    p.add_argument("--ticker", "-t", required=True, metavar="T", help="whose bars they are")
    p.add_argument("--interval", "-i", required=True, metavar="IV", help="1d, 1h, 1m, ...")
    p.add_argument(
        "--on-conflict",
        choices=["refuse", "skip", "merge", "overwrite"],
        default="refuse",
        help="rows already stored: refuse (default: write nothing, say how many overlap and "
        "differ), skip (keep the stored rows, add the rest), merge (add new rows; refuse if "
        "any differ), overwrite (replace differing rows; the old file is quarantined first)",
    )
    p.add_argument(
        "--tz",
        metavar="ZONE",
        help="the zone of times without an offset (default: the exchange's, e.g. America/New_York)",
    )
    p.add_argument(
        "--no-adjust",
        action="store_true",
        help="store Yahoo's Close as it is (default: adjust by Adj Close as yfinance does)",
    )
    p.add_argument("--dry-run", action="store_true", help="check and say what would change")
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from core.ingest.csv_import import import_csv

    ws = Workspace.open(args.workspace)
    ws.load_all_metadata()
    result = import_csv(
        ws,
        Path(args.file),
        args.ticker,
        args.interval,
        on_conflict=args.on_conflict,
        tz=args.tz,
        adjust=not args.no_adjust,
        dry_run=args.dry_run,
    )
    if args.json:
        print_json(result.as_dict())
    else:
        out = sys.stdout if result.ok else sys.stderr
        print("\n".join(lines(result)), file=out)
    return 0 if result.ok else 2


def lines(result: ImportResult) -> list[str]:
    parsed = result.parsed
    file = result.file
    if parsed.problems:
        shown = [p.text(file) for p in parsed.problems[:PROBLEMS_SHOWN]]
        more = parsed.problem_count - len(shown)
        if more > 0:
            shown.append(f"{file}: ... and {more:,} more problems")
        return [
            *shown,
            f"parqctl: error: {file}: {parsed.problem_count:,} problems in {parsed.rows:,} rows; "
            "nothing was written: fix the file and import it again",
        ]
    merge = result.merge
    out = [
        f"{file}: {parsed.rows:,} rows ({parsed.shape} CSV) for {result.ticker} {result.interval}"
        + (", prices adjusted by Adj Close as yfinance does" if parsed.adjusted else "")
    ]
    if parsed.ignored_columns:
        out.append(f"ignored columns: {', '.join(parsed.ignored_columns)}")
    if merge is not None:
        out.append(
            f"{merge.mode}: {merge.added:,} new, {merge.identical:,} identical, "
            f"{merge.differing:,} differing"
            + (f", {merge.overwritten:,} replaced" if merge.overwritten else "")
        )
        for conflict in merge.conflicts[:CONFLICTS_SHOWN]:
            out.append(
                f"  differs  {conflict.date:%Y-%m-%d %H:%M} {conflict.column}: "
                f"stored {conflict.stored}, file {conflict.incoming}"
            )
    if result.refused:
        out.append(f"parqctl: error: refused: {result.refused}")
        return out
    for entry in result.quarantined:
        out.append(f"old file quarantined as {entry} (`parqctl quarantine restore {entry}`)")
    if result.registered:
        out.append(f"registered {result.ticker} in tickers.json")
    if result.dry_run:
        out.append("dry run: nothing written")
    elif merge is not None and merge.changes:
        out.append("written: " + ", ".join(str(c.path) for c in merge.changes[:3]))
    else:
        out.append("nothing to write: every row is stored already")
    return out
