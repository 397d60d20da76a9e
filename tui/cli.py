"""The ``parqctl`` command: a thin skin over core, for people and for cron.

Heavy libraries (Textual, pyarrow, exchange_calendars) are imported inside the commands
that need them, so ``parqctl health`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from datetime import date
from typing import NoReturn

from core.errors import ParqctlError

EXIT_INTERRUPTED = 130


class OneLineArgumentParser(argparse.ArgumentParser):
    """Argument errors as one line that says where to look, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}: see `{self.prog} --help`\n")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-12-31") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _command(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """Import a command's module only when it runs, so each command pays for its own imports."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"tui.commands.{module}"), function)(args)

    return run


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

    p = commands.add_parser("console", help="open the console (the default)")
    p.add_argument("--theme", choices=["dark", "light"], help="colour theme")
    p.set_defaults(run=_command("console", "run"))

    p = commands.add_parser(
        "health", help="one-screen summary; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_command("health", "run"))

    p = commands.add_parser("show", help="where a ticker's bars live, and their rows and range")
    p.add_argument("ticker", metavar="TICKER", help="a Yahoo symbol, e.g. BRK-B")
    p.add_argument("--interval", "-i", default="1d", help="bar interval (default 1d)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=_command("show", "run"))

    p = commands.add_parser("demo", help="build a demo workspace with realistic data and problems")
    p.add_argument("dir", metavar="DIR", help="where to build it (must not exist or be empty)")
    p.add_argument(
        "--tickers", type=_positive_int, default=300, help="how many tickers (default 300)"
    )
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument(
        "--end", type=_date, help="last session (default: the last session before today)"
    )
    p.add_argument(
        "--years-1d", type=_positive_int, default=5, help="years of daily bars (default 5)"
    )
    p.add_argument(
        "--years-1h", type=_positive_int, default=2, help="years of hourly bars (default 2)"
    )
    p.add_argument("--stale-lock", action="store_true", help="leave a stale run lock behind")
    p.add_argument("--no-open", action="store_true", help="do not open the console afterwards")
    p.set_defaults(run=_command("demo", "run"))

    p = commands.add_parser("lock", help="inspect or break the workspace's run lock")
    lock_commands = p.add_subparsers(
        dest="lock_command", metavar="ACTION", required=True, parser_class=OneLineArgumentParser
    )
    q = lock_commands.add_parser(
        "status", help="who holds the lock, and is it stale; exit 0 free, 1 held, 2 stale/unknown"
    )
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(run=_command("lock", "status"))
    q = lock_commands.add_parser("break", help="remove a stale lock (never a live one)")
    q.add_argument(
        "--force",
        action="store_true",
        help="also break a lock held from another host or of unknown owner",
    )
    q.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    q.set_defaults(run=_command("lock", "break_"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args.theme = None
    run: Callable[[argparse.Namespace], int] = getattr(args, "run", None) or _command(
        "console", "run"
    )
    try:
        return run(args)
    except ParqctlError as exc:
        print(f"parqctl: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("parqctl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def entry_point() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
