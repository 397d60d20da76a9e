"""Argument types and the parser class shared by every CLI command."""

from __future__ import annotations

import argparse
from datetime import date
from typing import NoReturn

from core.errors import ParqctlError

WORKSPACE_HELP = (
    "the workspace (default: $PARQCTL_WORKSPACE, else the workspace the current directory "
    "is in); accepted before or after the command"
)


class UsageError(ParqctlError):
    """A bad argument on the command line: one line with the rest of the errors, exit 2."""


class StrictSubcommands(argparse._SubParsersAction):
    """A subcommand refuses the arguments it does not know itself, so the error points at
    its own ``--help`` (``parqctl migrate plan --help``), not at ``parqctl --help``."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        super().__call__(parser, namespace, values, option_string)
        unknown = getattr(namespace, argparse._UNRECOGNIZED_ARGS_ATTR, None)
        if unknown:
            chosen = self._name_parser_map[values[0]]
            chosen.error(f"unrecognized arguments: {' '.join(unknown)}")


class OneLineArgumentParser(argparse.ArgumentParser):
    """Argument errors as one line that says where to look, exit 2 (raised as UsageError, so
    they are printed and, with ``--json``, reported like every other error)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", StrictSubcommands)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"see `{self.prog} --help`")


def accept_workspace_option(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand below ``parser`` the global ``--workspace`` / ``-w`` too
    (``parqctl health -w DIR`` as well as ``parqctl -w DIR health``); given in neither
    place it stays the top-level default."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for sub in dict.fromkeys(action.choices.values()):  # aliases map to one parser
            sub.add_argument(
                "--workspace", "-w", metavar="DIR", default=argparse.SUPPRESS, help=WORKSPACE_HELP
            )
            accept_workspace_option(sub)


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-12-31") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help='print one JSON object (an error too: {"error": ...})'
    )
