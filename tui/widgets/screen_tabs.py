"""Where the operator is: one line under the header naming every screen with its key, the
current one highlighted; a click on a name switches to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from rich.cells import cell_len
from rich.text import Text
from textual.events import Click
from textual.widget import Widget


class Tab(NamedTuple):
    key: str
    mode: str
    title: str
    short: str


class ScreenTabs(Widget):
    """Styled in themes/parqctl.tcss: the current tab, and each key."""

    COMPONENT_CLASSES = {"screen-tabs--current", "screen-tabs--key"}
    DEFAULT_CSS = """
    ScreenTabs { dock: top; margin-top: 1; height: 1; width: 100%; }
    """

    def __init__(self, tabs: Sequence[Tab], current: str) -> None:
        super().__init__()
        self.tabs, self.current = list(tabs), current
        self._spans: list[tuple[int, int, str]] = []

    def labels(self, width: int) -> list[str]:
        """Each tab's label: full titles if they fit in ``width``, else short ones, else
        the keys alone."""
        for name in ("title", "short"):
            labels = [f" {tab.key} {getattr(tab, name)} " for tab in self.tabs]
            if sum(map(cell_len, labels)) <= width:
                return labels
        return [f" {tab.key} " for tab in self.tabs]

    def render(self) -> Text:
        text, self._spans = Text(no_wrap=True, overflow="crop"), []
        current_style = self.get_component_rich_style("screen-tabs--current")
        key_style = self.get_component_rich_style("screen-tabs--key")
        for tab, label in zip(self.tabs, self.labels(self.size.width), strict=True):
            start = text.cell_len
            if tab.mode == self.current:
                text.append(label, style=current_style)
            else:
                text.append(label)
                text.stylize(key_style, start + 1, start + 1 + len(tab.key))
            self._spans.append((start, text.cell_len, tab.mode))
        return text

    def on_click(self, event: Click) -> None:
        for start, end, mode in self._spans:
            if start <= event.x < end and mode != self.current:
                self.app.switch_mode(mode)
