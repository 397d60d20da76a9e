"""Confirmation for destructive CLI actions."""

from __future__ import annotations

import sys

from core.errors import ParqctlError


def confirm(question: str, what: str) -> bool:
    """Ask on the terminal; without one, refuse and point at ``--yes``."""
    if not sys.stdin.isatty():
        raise ParqctlError(f"refusing to {what} without confirmation", "pass --yes to confirm")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
