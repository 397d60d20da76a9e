"""``parqctl demo DIR``: build a demo workspace and open the console on it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tui.progress import stderr_progress


def run(args: argparse.Namespace) -> int:
    from core.demo import build_demo

    root = Path(args.dir).expanduser().absolute()
    with stderr_progress("building demo", unit="tickers") as progress:
        report = build_demo(
            root,
            tickers=args.tickers,
            seed=args.seed,
            end=args.end,
            years_1d=args.years_1d,
            years_1h=args.years_1h,
            stale_lock=args.stale_lock,
            progress=progress,
        )
    print("\n".join(report.lines()))
    if args.no_open:
        print(f"open it with: parqctl --workspace {root}", file=sys.stderr)
        return 0
    from tui.commands import console

    args.workspace, args.theme = str(root), None
    return console.run(args)
