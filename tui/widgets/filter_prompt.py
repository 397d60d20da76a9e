"""The ``/`` prompt: filters a list as the operator types; enter keeps the filter, escape
puts back the one there was."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Input

from tui.widgets.fitted_table import FittedTable


class FilterPrompt(ModalScreen[None]):
    BINDINGS = [Binding("escape", "undo", "Cancel")]
    DEFAULT_CSS = """
    FilterPrompt { align: left bottom; background: $background 0%; }
    FilterPrompt > Input { width: 100%; margin-bottom: 1; border: tall $accent; }
    """

    def __init__(self, table: FittedTable) -> None:
        super().__init__()
        self.table = table
        self.before = table.filter_pattern

    def compose(self) -> ComposeResult:
        yield Input(
            self.before,
            placeholder="filter: part of a name (AAP), or a glob (A*, *.DE); enter keeps it",
            id="filter-input",
        )

    def on_input_changed(self, event: Input.Changed) -> None:
        self.table.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss()

    def action_undo(self) -> None:
        self.table.set_filter(self.before)
        self.dismiss()
