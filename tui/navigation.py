"""The keys operators bring from k9s, lazygit and htop, for every screen at once.

The App binds them (not priority: a text field keeps its letters, and a screen or widget
with its own meaning for a key keeps it) and they act on the focused list: ``j``/``k``
down and up, ``h``/``l`` left and right where there are columns, ``g``/``G`` top and
bottom. On a screen of panels (run lock, disk) ``j``/``k`` move between them as tab does;
a focused scrolling pane (the help) scrolls.

A popup (a modal screen) is out of the App bindings' reach: one with a list to move in is
a ``Popup``, which binds ``j``/``k``/``g``/``G`` itself.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import ScrollableContainer
from textual.screen import ModalScreen, ScreenResultType
from textual.widget import Widget
from textual.widgets import DataTable, ListView, OptionList, Tree

from tui.widgets.panel import Panel

MOVES = ("down", "up", "left", "right", "top", "bottom")

BINDINGS = [
    Binding("j", "move('down')", "Down", show=False),
    Binding("k", "move('up')", "Up", show=False),
    Binding("h", "move('left')", "Left", show=False),
    Binding("l", "move('right')", "Right", show=False),
    Binding("g", "move('top')", "Top of the list", show=False),
    Binding("G", "move('bottom')", "Bottom of the list", show=False),
]


def move(widget: Widget | None, where: str) -> bool:
    """Move ``widget``'s cursor (``where`` one of MOVES); False when it has none to move."""
    if isinstance(widget, DataTable):
        action = {"top": "scroll_top", "bottom": "scroll_bottom"}.get(where, f"cursor_{where}")
        getattr(widget, f"action_{action}")()
    elif isinstance(widget, OptionList):
        action = {"top": "first", "bottom": "last"}.get(where, f"cursor_{where}")
        if not hasattr(widget, f"action_{action}"):
            return False
        getattr(widget, f"action_{action}")()
    elif isinstance(widget, ListView):
        if where in ("down", "up"):
            getattr(widget, f"action_cursor_{where}")()
        elif where in ("top", "bottom") and widget.children:
            widget.index = 0 if where == "top" else len(widget.children) - 1
        else:
            return False
    elif isinstance(widget, Tree):
        if where in ("down", "up"):
            getattr(widget, f"action_cursor_{where}")()
        elif where in ("top", "bottom"):
            widget.cursor_line = 0 if where == "top" else widget.last_line
        else:
            return False
    elif isinstance(widget, Panel) and where in ("down", "up"):
        (widget.screen.focus_next if where == "down" else widget.screen.focus_previous)()
    elif isinstance(widget, ScrollableContainer) and where not in ("left", "right"):
        action = {"top": "scroll_home", "bottom": "scroll_end"}.get(where, f"scroll_{where}")
        getattr(widget, action)()
    else:
        return False
    return True


class Popup(ModalScreen[ScreenResultType]):
    """A modal screen with ``j``/``k`` down and up and ``g``/``G`` top and bottom on its
    focused list or pane, as on the screens (a text field keeps its letters)."""

    BINDINGS = [b for b in BINDINGS if b.key in ("j", "k", "g", "G")]

    def action_move(self, where: str) -> None:
        move(self.focused, where)
