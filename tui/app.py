"""The parqctl console: a Textual app over the core engine.

The app owns the periodic health refresh (a thread worker re-armed only after the last
refresh finished, so refreshes never pile up) and publishes the result in the reactive
``health``; screens watch it. Each top-level screen is a mode, reached by its number key,
from the command palette, or from the dashboard's panels.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer

from core.errors import ParqctlError
from core.health import HealthReport, health_report, with_gaps
from core.workspace import Workspace
from themes import STYLESHEET, THEMES
from tui.widgets.help import HelpScreen, help_markdown

HEALTH_REFRESH_S = 30.0


@dataclass(frozen=True)
class ScreenEntry:
    """A top-level screen; its module is imported when the screen is first shown, so the
    console starts without loading what the heatmap or integrity screens need."""

    key: str
    mode: str
    title: str
    module: str
    class_name: str

    def make(self) -> Screen:
        return getattr(importlib.import_module(self.module), self.class_name)()


SCREENS = (
    ScreenEntry("1", "dashboard", "Dashboard", "screens.dashboard", "DashboardScreen"),
    ScreenEntry("2", "heatmap", "Availability", "screens.heatmap", "HeatmapScreen"),
    ScreenEntry("3", "locks", "Run lock", "screens.locks", "LocksScreen"),
    ScreenEntry("4", "quarantine", "Quarantine", "screens.quarantine", "QuarantineScreen"),
    ScreenEntry("5", "disk", "Disk", "screens.disk", "DiskScreen"),
    ScreenEntry("6", "integrity", "Integrity", "screens.integrity", "IntegrityScreen"),
    ScreenEntry("7", "migration", "Migration", "screens.migration", "MigrationScreen"),
)


@dataclass(frozen=True)
class HealthState:
    """The latest health refresh: a report, or why there is none."""

    report: HealthReport | None
    error: str | None = None
    gaps_pending: bool = False  # the gap summary is still being computed


class ParqctlApp(App):
    TITLE = "parqctl"
    CSS_PATH = STYLESHEET
    MODES = {entry.mode: entry.make for entry in SCREENS}
    # Side panels give way to the main view on narrow terminals (80x24 over SSH).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        *(
            Binding(entry.key, f"switch_mode('{entry.mode}')", entry.title, show=False)
            for entry in SCREENS
        ),
    ]

    health: reactive[HealthState | None] = reactive(None, always_update=True)

    def __init__(
        self,
        workspace: Workspace,
        theme: str | None = None,
        health_refresh_s: float | None = HEALTH_REFRESH_S,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock`` (epoch seconds) fixes the time the screens count ages, expiry and
        projections from, and times a check with; tests inject one, None is the real clock."""
        super().__init__()
        self.workspace = workspace
        self.health_refresh_s = health_refresh_s
        self.clock = clock
        self._health_timer: Timer | None = None
        for registered in THEMES.values():
            self.register_theme(registered)
        self.theme = THEMES[theme or "dark"].name

    def on_mount(self) -> None:
        self.title = f"parqctl · {self.workspace.root}"
        loop = asyncio.get_running_loop()
        for hangup in (signal.SIGHUP, signal.SIGTERM):
            # An SSH drop or a kill: leave through the normal exit, restoring the terminal.
            loop.add_signal_handler(hangup, self.exit)
        self.switch_mode("dashboard")
        self.refresh_health()

    def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for hangup in (signal.SIGHUP, signal.SIGTERM):
            loop.remove_signal_handler(hangup)

    def now(self) -> float:
        return time.time() if self.clock is None else self.clock()

    def today(self) -> date:
        return date.fromtimestamp(self.now())

    def action_refresh_health(self) -> None:
        self.refresh_health()

    @work(thread=True, exclusive=True, exit_on_error=False, group="health", description="health")
    def refresh_health(self) -> None:
        # A fresh Workspace each time: metadata is cached per instance and may have changed.
        workspace = Workspace(self.workspace.root)
        try:
            # The fast parts first, then the gap summary, which loads the file index.
            report = health_report(workspace, now=self.now(), gaps=False)
            self.call_from_thread(self._publish_health, HealthState(report, gaps_pending=True))
            state = HealthState(with_gaps(report, workspace))
        except ParqctlError as exc:
            state = HealthState(None, exc.one_line())
        self.call_from_thread(self._publish_health, state)

    def _publish_health(self, state: HealthState) -> None:
        self.health = state
        verdict = state.report.verdict.name if state.report else "UNKNOWN"
        self.sub_title = verdict
        if state.gaps_pending:
            return
        if self._health_timer is not None:
            self._health_timer.stop()
        if self.health_refresh_s:
            self._health_timer = self.set_timer(self.health_refresh_s, self.refresh_health)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(help_markdown(self.screen, self.BINDINGS)))

    def get_system_commands(self, screen: Screen):
        yield from super().get_system_commands(screen)
        for entry in SCREENS:
            yield SystemCommand(
                f"Go to {entry.title}",
                f"Switch to the {entry.title} screen (key {entry.key})",
                lambda mode=entry.mode: self.switch_mode(mode),
            )
        yield SystemCommand("Refresh health", "Re-read the workspace now", self.refresh_health)
        for binding in getattr(screen, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.description:
                yield SystemCommand(
                    f"{binding.description} ({screen.__class__.__name__.removesuffix('Screen')})",
                    f"key {binding.key_display or binding.key}",
                    lambda action=binding.action, target=screen: target.run_action(action),
                )
