"""The ``parqctl`` command: a thin skin over core, for people and for cron.

Each command lives in ``tui/commands/<name>.py`` with a ``register(commands)`` that adds
its subparser and sets ``run``. Command modules import heavy libraries (Textual, pyarrow,
polars, exchange_calendars) inside their functions, so every command starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from core.errors import ParqctlError
from tui.arguments import OneLineArgumentParser

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a reader gone away
COMMANDS = (
    "console", "health", "show", "lock", "demo", "integrity", "quarantine", "disk",
    "availability", "migrate", "fetch", "backfill", "import_csv",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="parqctl",
        description="Operations console for Parquet market-data stores (yf_parqed workspaces).",
    )
    parser.add_argument(
        "--workspace",
        "-w",
        metavar="DIR",
        help="the workspace (default: $PARQCTL_WORKSPACE, else the current directory)",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=OneLineArgumentParser
    )
    for name in COMMANDS:
        importlib.import_module(f"tui.commands.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # Inside the try: argument types (a venue, a ticker) may raise ParqctlError too.
        args = build_parser().parse_args(argv)
        if args.command is None:
            from tui.commands import console

            args.theme, args.run = None, console.run
        return args.run(args)
    except ParqctlError as exc:
        print(f"parqctl: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("parqctl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`parqctl show AAPL | head -1`): stop quietly. Point stdout at
        # /dev/null so that flushing it at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def entry_point() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
