"""A confirmation dialog for destructive actions that states exactly what will change."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tui.text import printable


def _plain(text: str | Text) -> Text:
    return Text(printable(text, lines=True)) if isinstance(text, str) else text


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True only when the operator chooses the action button, or says ``y``.

    The safe answer is focused first, so an Enter pressed by habit cancels; ``n`` and
    escape cancel too; tab moves between the buttons.

    A title or body given as a ``str`` is shown as plain text: it carries paths, tickers
    and finding messages that are not ours, so ``[x]`` in one is text, never markup, and a
    control character in one is shown as an escape (tui.text.printable). A caller that
    wants styling passes a ``rich.text.Text``, shown as it is.
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("n", "cancel", "No", show=False),
        Binding("y", "confirm", "Yes", show=False),
    ]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 72; max-width: 95%; height: auto; padding: 1 2;
        border: thick $error; background: $surface;
    }
    ConfirmScreen #confirm-title { text-style: bold; color: $error; margin-bottom: 1; }
    ConfirmScreen Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    ConfirmScreen Button { margin-left: 2; }
    """

    def __init__(self, title: str | Text, body: str | Text, action_label: str) -> None:
        super().__init__()
        self.title_text, self.body = _plain(title), _plain(body)
        self.action_label = action_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, id="confirm-title", markup=False)
            yield Static(self.body, id="confirm-body", markup=False)
            with Horizontal():
                yield Button("Cancel (n)", id="cancel", variant="primary")
                yield Button(f"{self.action_label} (y)", id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_confirm(self) -> None:
        self.dismiss(True)
