"""The parqctl console: a Textual app over the core engine.

The app owns the periodic health refresh (a thread worker re-armed only after the last
refresh finished, so refreshes never pile up) and publishes the result in the reactive
``health``; screens watch it. Each top-level screen is a mode, reached by its number key,
from the tabs under the header, from the command palette (tui.palette: every screen's
actions, from anywhere), or from the dashboard's panels. The keys every list shares
(tui.navigation: j/k/h/l, g/G, ``/`` to filter) and ``escape`` (clear the filter, else
back to the previous screen) are the App's, so each screen has them without a copy.

Engine jobs that hold the GIL for long (the health report, the integrity check) run in a
child process (tui.engine_process), so the event loop stays responsive while they run.
At start-up the dashboard waits for neither: the health report without its gap summary is
made in a fork of the console while Textual starts, and completed with the gap summary
saved at the last refresh (core.availability.saved_gaps); the full report from the child process
follows.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer

from core.availability import saved_gaps
from core.availability.gap_watch import GapWatch
from core.errors import ParqctlError
from core.health import HealthReport, health_report, with_gap_watch
from core.jobs import CancelToken, JobCancelled
from core.store.workspace import Workspace
from themes import STYLESHEET, THEMES
from tui import engine_process, navigation
from tui.advice import console_wording
from tui.palette import ConsoleCommands
from tui.widgets.fitted_table import FittedTable
from tui.widgets.screen_tabs import ScreenTabs, Tab

HEALTH_REFRESH_S = 30.0
T = TypeVar("T")


@dataclass(frozen=True)
class ScreenEntry:
    """A top-level screen; its module is imported when the screen is first shown, so the
    console starts without loading what the heatmap or integrity screens need."""

    key: str
    mode: str
    title: str
    module: str
    class_name: str
    short: str = ""  # the tab's name when the full titles do not fit

    def make(self) -> Screen:
        screen = getattr(importlib.import_module(self.module), self.class_name)()
        tabs = [Tab(e.key, e.mode, e.title, e.short or e.title) for e in SCREENS]
        screen.compose_add_child(ScreenTabs(tabs, current=self.mode))  # on every screen
        return screen


SCREENS = (
    ScreenEntry("1", "dashboard", "Dashboard", "screens.dashboard", "DashboardScreen", "Dash"),
    ScreenEntry("2", "heatmap", "Availability", "screens.heatmap", "HeatmapScreen", "Avail"),
    ScreenEntry("3", "locks", "Run lock", "screens.locks", "LocksScreen", "Lock"),
    ScreenEntry("4", "quarantine", "Quarantine", "screens.quarantine", "QuarantineScreen", "Quar"),
    ScreenEntry("5", "disk", "Disk", "screens.disk", "DiskScreen"),
    ScreenEntry("6", "integrity", "Integrity", "screens.integrity", "IntegrityScreen", "Integ"),
    ScreenEntry("7", "migration", "Migration", "screens.migration", "MigrationScreen", "Migr"),
    ScreenEntry("8", "query", "Query", "screens.query", "QueryScreen"),
    ScreenEntry("9", "audit", "Audit log", "screens.audit", "AuditScreen"),
)
HISTORY_LENGTH = 20  # screens escape can go back through


@dataclass(frozen=True)
class HealthState:
    """The latest health refresh: a report, or why there is none."""

    report: HealthReport | None
    error: str | None = None
    gaps_pending: bool = False  # the gap summary is still being computed
    gaps_saved: bool = False  # the gap summary is the last one saved; a fresh one is coming

    @property
    def final(self) -> bool:
        """The refresh is complete: nothing more comes until the next one."""
        return not (self.gaps_pending or self.gaps_saved)


class ParqctlApp(App):
    TITLE = "parqctl"
    CSS_PATH = STYLESHEET
    MODES = {entry.mode: entry.make for entry in SCREENS}
    # Side panels give way to the main view on narrow terminals (80x24 over SSH).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        *(
            Binding(entry.key, f"switch_mode('{entry.mode}')", entry.title, show=False)
            for entry in SCREENS
        ),
        *navigation.BINDINGS,
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "back", "Back", show=False),
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
        self._gc_frozen = False
        self._first_at = (0.0, date.min)
        self._first_job: engine_process.ForkedJob | None = None
        self._saved_gaps: GapWatch | None = None
        self._visited: list[str] = []  # the screens escape goes back to, last one last
        for registered in THEMES.values():
            self.register_theme(registered)
        self.theme = THEMES[theme or "dark"].name

    def on_load(self) -> None:
        # Textual has started no thread yet: the first report can be made in a fork, on
        # another core, while Textual starts. The gap summary saved at the last refresh
        # completes it, if it still holds; if not, the process that computes one is
        # started now, so that it is ready sooner.
        root = self.workspace.root
        now, today = self._first_at = (self.now(), self.today())
        self._first_job = engine_process.fork_job(
            health_report, Workspace(root), now=now, today=today, gaps=False
        )
        self._saved_gaps = saved_gaps.load(root, today)
        if self._saved_gaps is None:
            engine_process.start_server()

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
        engine_process.cancel_all()  # their workers end, and the process can exit
        if self._first_job is not None:
            self._first_job.abandon()
        gc.unfreeze()

    def now(self) -> float:
        return time.time() if self.clock is None else self.clock()

    def today(self) -> date:
        return date.fromtimestamp(self.now())

    def action_refresh_health(self) -> None:
        self.refresh_health()

    def in_engine_process(self, job: Callable[..., T]) -> Callable[..., T]:
        """``job``, called as usual from a worker thread, run in a child process."""
        return functools.partial(engine_process.run_in_child, job)

    @work(thread=True, exclusive=True, exit_on_error=False, group="health", description="health")
    def refresh_health(self) -> None:
        root, now, today = self.workspace.root, self.now(), self.today()
        try:
            fast_parts = None
            if self.health is None:
                now, today = self._first_at
                fast_parts = self._first_report()
                if self._saved_gaps is None:  # the child process computes it
                    first = HealthState(fast_parts, gaps_pending=True)
                else:
                    full = with_gap_watch(fast_parts, self._saved_gaps)
                    first = HealthState(full, gaps_saved=True)
                self.call_from_thread(self._publish_health, first)
            # A fresh Workspace each time: metadata is cached per instance and may have changed.
            report = engine_process.run_in_child(
                saved_gaps.health_report_saving_gaps,
                Workspace(root),
                now=now,
                today=today,
                fast_parts=fast_parts,
                cancel=CancelToken(),
            )
            state = HealthState(report)
        except JobCancelled:
            return  # the console is closing
        except ParqctlError as exc:
            state = HealthState(None, exc.one_line())
        self.call_from_thread(self._publish_health, state)

    def _first_report(self) -> HealthReport:
        """The report without its gap summary that the fork made at start-up, or the
        same made here if there is no fork."""
        job, self._first_job = self._first_job, None
        if job is not None:
            return job.result()
        now, today = self._first_at
        return health_report(Workspace(self.workspace.root), now=now, today=today, gaps=False)

    def _publish_health(self, state: HealthState) -> None:
        self.health = state
        verdict = state.report.verdict.name if state.report else "UNKNOWN"
        self.sub_title = verdict
        if not self._gc_frozen:
            # What start-up made lives as long as the app: leave it out of the collector's
            # full passes, each of which would otherwise stall the event loop for longer.
            self.call_after_refresh(gc.freeze)
            self._gc_frozen = True
        if not state.final:
            return
        if self._health_timer is not None:
            self._health_timer.stop()
        if self.health_refresh_s:
            self._health_timer = self.set_timer(self.health_refresh_s, self.refresh_health)

    def switch_mode(self, mode: str, *, back: bool = False):
        """Switch screens, remembering the one left for escape (unless going ``back``)."""
        left = self.current_mode
        if not back and mode != left and left in self.MODES:
            self._visited = [*self._visited, left][-HISTORY_LENGTH:]
        return super().switch_mode(mode)

    def action_back(self) -> None:
        """Escape with nothing else to cancel or clear: the previous screen."""
        if self._visited:
            self.switch_mode(self._visited.pop(), back=True)

    def action_move(self, where: str) -> None:
        navigation.move(self.focused, where)

    def _filter_target(self) -> FittedTable | None:
        """The list ``/`` filters: the focused one, else the screen's first."""
        if isinstance(self.focused, FittedTable):
            return self.focused
        return next(iter(self.screen.query(FittedTable)), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # `/ Filter` is in the footer, and works, only where there is a list to filter.
        return self._filter_target() is not None if action == "filter" else True

    def action_filter(self) -> None:
        from tui.widgets.filter_prompt import FilterPrompt

        table = self._filter_target()
        if table is not None:
            table.focus()
            self.push_screen(FilterPrompt(table))

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """Saved inside the workspace (``.parqctl/screenshots/``), and the path is said."""
        from core import screenshots

        try:
            saved = screenshots.save(
                self.workspace.root,
                self.current_mode,
                self.export_screenshot(),
                datetime.fromtimestamp(self.now()),
            )
        except (ParqctlError, OSError) as exc:
            reason = exc.one_line() if isinstance(exc, ParqctlError) else str(exc)
            self.notify(f"screenshot not saved: {reason}", severity="error", markup=False)
            return
        self.notify(f"saved {saved}", title="Screenshot", markup=False)

    def notify(self, message: str, *, title: str = "", **kwargs) -> None:
        """Every notification in the console's words (tui.advice): keys, not commands."""
        super().notify(console_wording(message), title=title, **kwargs)

    async def action_quit(self) -> None:
        """Quit; a screen whose worker writes to the workspace (a migration run) may ask
        first, through its ``guard_quit`` (True: it asked, and quits if told to)."""
        owners = {worker.node for worker in self.workers if worker.is_running}
        if any(getattr(owner, "guard_quit", lambda: False)() for owner in owners):
            return
        self.exit()

    def action_help(self) -> None:
        from tui.widgets.help import HelpScreen, help_markdown  # markdown: 0.1 s at start-up

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(help_markdown(self.screen, self.BINDINGS)))

    def get_system_commands(self, screen: Screen):
        # The screens and their actions come from tui.palette; the screenshot is ours.
        for command in super().get_system_commands(screen):
            if command.title != "Screenshot":
                yield command
        yield SystemCommand(
            "Screenshot",
            "Save an SVG of the screen in .parqctl/screenshots/ (the path is shown)",
            lambda: self.set_timer(0.1, self.action_screenshot),
        )
        yield SystemCommand("Refresh health", "Re-read the workspace now", self.refresh_health)
