"""F1 / ? help: what the current screen shows and the keys that work on it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Markdown

from tui.navigation import Popup


def help_markdown(screen: Screen, app_bindings: list[Binding]) -> str:
    about = getattr(screen, "HELP", "") or ""
    rows = [
        f"| `{b.key_display or b.key}` | {b.description or b.action} |"
        for b in [*screen.BINDINGS, *app_bindings]
        if isinstance(b, Binding) and (b.description or b.show)
    ]
    keys = "\n".join(["| key | action |", "|---|---|", *rows])
    return f"{about}\n\n## Keys\n\n{keys}\n\nPress `ctrl+p` for the command palette, `escape` to close this help."


class HelpScreen(Popup[None]):
    """The help of the current screen; j/k scroll, g/G to the top and bottom."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("f1", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 80; max-width: 95%; height: 80%; border: thick $primary; background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, markdown: str) -> None:
        super().__init__()
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(self.markdown)
