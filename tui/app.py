"""The parqctl console: a Textual app over the core engine.

The app owns the periodic health refresh (a thread worker re-armed only after the last
refresh finished, so refreshes never pile up) and publishes the result in the reactive
``health``; screens watch it. Each top-level screen is a mode, reached by its number key,
from the command palette, or from the dashboard's panels.

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
from datetime import date
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
from tui import engine_process

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
    ScreenEntry("8", "query", "Query", "screens.query", "QueryScreen"),
)


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
        self._gc_frozen = False
        self._first_at = (0.0, date.min)
        self._first_job: engine_process.ForkedJob | None = None
        self._saved_gaps: GapWatch | None = None
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
