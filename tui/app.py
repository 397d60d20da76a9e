"""The parqctl console: a Textual app over the core engine."""

from __future__ import annotations

from textual.app import App
from textual.binding import Binding

from core.workspace import Workspace
from screens.dashboard import DashboardScreen
from themes import STYLESHEET, THEMES


class ParqctlApp(App):
    TITLE = "parqctl"
    CSS_PATH = STYLESHEET
    BINDINGS = [Binding("q", "quit", "Quit")]

    def __init__(self, workspace: Workspace, theme: str | None = None) -> None:
        super().__init__()
        self.workspace = workspace
        for registered in THEMES.values():
            self.register_theme(registered)
        self.theme = THEMES[theme or "dark"].name

    def on_mount(self) -> None:
        self.title = f"parqctl · {self.workspace.root}"
        self.push_screen(DashboardScreen(self.workspace))
