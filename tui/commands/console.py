"""``parqctl console`` (and plain ``parqctl``): open the Textual console."""

from __future__ import annotations

import argparse

from core.store.workspace import Workspace


def register(commands) -> None:
    p = commands.add_parser("console", help="open the console (the default)")
    p.add_argument("--theme", choices=["dark", "light"], help="colour theme")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    workspace = Workspace.open(args.workspace)
    workspace.load_all_metadata()
    from tui.app import ParqctlApp

    ParqctlApp(workspace, theme=args.theme).run()
    return 0
