"""Reading what a console widget shows, for the Pilot tests."""

from __future__ import annotations

import io

from rich.console import Console
from textual.app import App
from textual.widgets import Static


def plain(content: object, width: int = 200) -> str:
    """A Static's content (str, Text, or any Rich renderable) as plain text."""
    if isinstance(content, str):
        return content
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    with console.capture() as captured:
        console.print(content)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


def shown(app: App, selector: str) -> str:
    """The text of the Static at ``selector`` on the current screen."""
    return plain(app.screen.query_one(selector, Static).content)
