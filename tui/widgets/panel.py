"""A bordered, focusable summary panel that leads to a screen."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Static

from tui.advice import console_wording


class Panel(Static, can_focus=True):
    """Enter (or a click) opens ``target_mode``; ``None`` for a panel that leads nowhere."""

    BINDINGS = [Binding("enter", "open", "Open", show=False)]

    def __init__(
        self, title: str, target_mode: str | None = None, classes: str = "", **kwargs
    ) -> None:
        # Not markup: the text holds paths, commands and messages that may have brackets.
        super().__init__("loading…", classes=f"panel {classes}".strip(), markup=False, **kwargs)
        self.base_classes = classes
        self.border_title = title
        self.target_mode = target_mode

    def update(self, content="", *, layout: bool = True) -> None:
        """Text is shown in the console's words (tui.advice): keys, not CLI commands."""
        worded = console_wording(content) if isinstance(content, str) else content
        super().update(worded, layout=layout)

    def set_state(self, state: str) -> None:
        """``ok``, ``warning`` or ``critical``: the border colour; the text carries a glyph too."""
        self.set_classes(f"panel {self.base_classes} -{state}".replace("  ", " "))

    def on_focus(self) -> None:
        if self.target_mode:
            self.border_subtitle = f"enter ▸ {self.target_mode}"

    def on_blur(self) -> None:
        self.border_subtitle = ""

    def action_open(self) -> None:
        if self.target_mode:
            self.app.switch_mode(self.target_mode)

    def on_click(self) -> None:
        self.action_open()
