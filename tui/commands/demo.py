"""``parqctl demo DIR``: build a demo workspace and open the console on it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.jobs import ProgressTracker
from tui.arguments import iso_date, positive_int
from tui.progress import stderr_progress


def register(commands) -> None:
    p = commands.add_parser("demo", help="build a demo workspace with realistic data and problems")
    p.add_argument("dir", metavar="DIR", help="where to build it (must not exist or be empty)")
    p.add_argument(
        "--tickers", type=positive_int, default=300, help="how many tickers (default 300)"
    )
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument(
        "--end", type=iso_date, help="last session (default: the last session before today)"
    )
    p.add_argument(
        "--years-1d", type=positive_int, default=5, help="years of daily bars (default 5)"
    )
    p.add_argument(
        "--years-1h", type=positive_int, default=2, help="years of hourly bars (default 2)"
    )
    p.add_argument("--stale-lock", action="store_true", help="leave a stale run lock behind")
    p.add_argument(
        "--layout",
        choices=["collector", "data-legacy"],
        default="collector",
        help="where the legacy files go: stocks_<iv>/ at the root, where the collector keeps "
        "them (default), or data/legacy/, where its migration tool wants them moved",
    )
    p.add_argument(
        "--no-open",
        action="store_true",
        help="do not open the console afterwards (never opened without a terminal)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from core.store.demo import build_demo

    root = Path(args.dir).expanduser().absolute()
    with stderr_progress() as draw:
        tracker = ProgressTracker("building demo", args.tickers, "tickers", draw)
        report = build_demo(
            root,
            tickers=args.tickers,
            seed=args.seed,
            end=args.end,
            years_1d=args.years_1d,
            years_1h=args.years_1h,
            stale_lock=args.stale_lock,
            layout=args.layout,
            progress=lambda done, total: tracker.advance(),
        )
    print("\n".join(report.lines()))
    from tui.commands import console

    if args.no_open or not console.has_terminal():
        print(f"open it with: parqctl --workspace {root}", file=sys.stderr)
        return 0

    args.workspace, args.theme = str(root), None
    return console.run(args)
