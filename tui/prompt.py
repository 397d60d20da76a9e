"""Confirmation for destructive CLI actions."""

from __future__ import annotations

import sys

from core.errors import ParqctlError
from tui.text import printable


def confirm(question: str, what: str) -> bool:
    """Ask on the terminal; without one, refuse and point at ``--yes``."""
    if not sys.stdin.isatty():
        raise ParqctlError(f"refusing to {what} without confirmation", "pass --yes to confirm")
    # input() writes its prompt straight to the terminal, past sys.stdout's escaping.
    return input(printable(f"{question} [y/N] ", lines=True)).strip().lower() in ("y", "yes")
