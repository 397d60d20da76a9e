"""``parqctl console`` (and plain ``parqctl``): open the Textual console."""

from __future__ import annotations

import argparse
import sys

from core.store.workspace import Workspace
from tui.arguments import UsageError


def register(commands) -> None:
    p = commands.add_parser("console", help="open the console (the default)")
    p.add_argument("--theme", choices=["dark", "light"], help="colour theme")
    p.set_defaults(run=run)


def has_terminal() -> bool:
    """Both ends are a terminal: without one, Textual's input thread spins at full CPU
    (a console started from cron or a script) and nobody sees what it draws."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def run(args: argparse.Namespace) -> int:
    if not has_terminal():
        raise UsageError(
            "the console needs a terminal, and standard input or output is not one",
            "run it in a terminal (ssh -t for a remote one), or a command: parqctl --help",
        )
    workspace = Workspace.open(args.workspace)
    workspace.load_all_metadata()
    from tui.app import ParqctlApp

    ParqctlApp(workspace, theme=args.theme).run()
    return 0
