"""``parqctl console`` (and plain ``parqctl``): open the Textual console."""

from __future__ import annotations

import argparse

from core.workspace import Workspace


def run(args: argparse.Namespace) -> int:
    workspace = Workspace.open(args.workspace)
    workspace.load_all_metadata()
    from tui.app import ParqctlApp

    ParqctlApp(workspace, theme=args.theme).run()
    return 0
