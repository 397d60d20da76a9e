"""Backfill from the console: what will be fetched, asked first; then a worker with a
progress bar, an ETA and a cancel that stops after the request in progress."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, ProgressBar, Static

from core.errors import ParqctlError
from core.ingest import yahoo
from core.ingest.backfill import BackfillPlan, BackfillResult, backfill, plan_backfill
from core.ingest.pacing import Pacer, SystemClock
from core.ingest.settings import load_settings
from core.jobs import CancelToken, Progress
from core.store.workspace import Workspace
from tui.commands.backfill import plan_lines, result_lines
from tui.commands.fetch import stop_lines

PLAN_LINES_SHOWN = 14


class PlanReady(Message):
    def __init__(self, plan: BackfillPlan | None, error: str | None) -> None:
        super().__init__()
        self.plan, self.error = plan, error


class BackfillProgress(Message):
    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, BackfillProgress)


class BackfillNote(Message):
    """A line to show while the run goes on (a rate-limit wait)."""

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line


class BackfillDone(Message):
    def __init__(self, result: BackfillResult | None, error: str | None) -> None:
        super().__init__()
        self.result, self.error = result, error


class BackfillScreen(ModalScreen[bool]):
    """Dismisses with True when something may have been written (the heatmap reloads)."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel / stop"),
        Binding("y", "start", "Backfill", show=False),
        Binding("n", "decline", "No", show=False),
    ]
    DEFAULT_CSS = """
    BackfillScreen { align: center middle; }
    BackfillScreen > Vertical {
        width: 100; max-width: 98%; height: auto; max-height: 95%; padding: 1 2;
        border: thick $accent; background: $surface;
    }
    BackfillScreen #backfill-title { text-style: bold; margin-bottom: 1; }
    BackfillScreen ProgressBar { margin-top: 1; }
    BackfillScreen Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    BackfillScreen Button { margin-left: 2; }
    """

    def __init__(
        self, root: Path, interval: str, tickers: list[str] | None, today: date, what: str
    ) -> None:
        super().__init__()
        self.root, self.interval, self.tickers, self.today = root, interval, tickers, today
        self.what = what
        self.plan: BackfillPlan | None = None
        self.token = CancelToken()
        self.running = False
        self.finished = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Backfill {self.what} ({self.interval})", id="backfill-title")
            yield Static("looking for recoverable gaps…", id="backfill-body", markup=False)
            yield ProgressBar(id="backfill-progress", show_eta=True)
            yield Static("", id="backfill-status", markup=False)
            with Horizontal():
                yield Button("Cancel", id="backfill-cancel", variant="primary")
                yield Button("Backfill", id="backfill-start", variant="warning", disabled=True)

    def on_mount(self) -> None:
        self.query_one(ProgressBar).display = False
        self.query_one("#backfill-cancel", Button).focus()
        self.make_plan()

    def on_unmount(self) -> None:
        self.token.cancel()  # the console is closing: stop after the request in progress

    @work(thread=True, exclusive=True, exit_on_error=False, group="backfill-plan")
    def make_plan(self) -> None:
        try:
            plan = plan_backfill(
                Workspace(self.root), intervals=[self.interval], tickers=self.tickers,
                today=self.today,
            )  # fmt: skip
        except ParqctlError as exc:
            self.post_message(PlanReady(None, exc.one_line()))
            return
        self.post_message(PlanReady(plan, None))

    def on_plan_ready(self, message: PlanReady) -> None:
        body = self.query_one("#backfill-body", Static)
        if message.plan is None:
            body.update(f"✗ {message.error}")
            return
        self.plan = message.plan
        lines = plan_lines(message.plan)
        if len(lines) > PLAN_LINES_SHOWN:
            lines = [*lines[: PLAN_LINES_SHOWN - 1], f"… {len(lines) - PLAN_LINES_SHOWN + 1} more"]
        if message.plan.requests:
            lines.append("")
            lines.append("Fetched bars are merged in where the collector reads them; nothing "
                         "stored is replaced. Backfill now? (y)")  # fmt: skip
            self.query_one("#backfill-start", Button).disabled = False
        body.update("\n".join(lines))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "backfill-start":
            self.action_start()
        else:
            self.action_cancel()

    def action_start(self) -> None:
        if self.plan is None or not self.plan.requests or self.running or self.finished:
            return
        self.running = True
        self.query_one("#backfill-start", Button).disabled = True
        self.query_one("#backfill-cancel", Button).label = "Stop"
        bar = self.query_one(ProgressBar)
        bar.display = True
        bar.update(total=len(self.plan.requests), progress=0)
        self.run_backfill(self.plan)

    def action_decline(self) -> None:
        if not self.running:  # n answers the question; a run is stopped with escape
            self.dismiss(self.finished)

    def action_cancel(self) -> None:
        if self.running:
            self.token.cancel()
            self.query_one("#backfill-status", Static).update(
                "stopping after the request in progress…"
            )
            return
        self.dismiss(self.finished)

    @work(thread=True, exclusive=True, exit_on_error=False, group="backfill-run")
    def run_backfill(self, plan: BackfillPlan) -> None:
        ws = Workspace(self.root)
        try:
            pacer = Pacer(
                load_settings(self.root),
                SystemClock(self.token),
                token=self.token,
                on_wait=lambda line: self.post_message(BackfillNote(line)),
            )
            result = backfill(
                ws, plan, yahoo.default_source(), pacer,
                progress=lambda p: self.post_message(BackfillProgress(p)),
            )  # fmt: skip
        except ParqctlError as exc:
            self.post_message(BackfillDone(None, exc.one_line()))
            return
        self.post_message(BackfillDone(result, None))

    def on_backfill_progress(self, message: BackfillProgress) -> None:
        p = message.progress
        self.query_one(ProgressBar).update(total=p.total, progress=p.done)
        self.query_one("#backfill-status", Static).update(
            f"{p.done:,}/{p.total:,} requests, {p.rows:,} rows added · {p.message}"
        )

    def on_backfill_note(self, message: BackfillNote) -> None:
        self.query_one("#backfill-status", Static).update(message.line)

    def on_backfill_done(self, message: BackfillDone) -> None:
        self.running, self.finished = False, True
        self.query_one("#backfill-cancel", Button).label = "Close"
        if message.result is None:
            self.query_one("#backfill-status", Static).update(f"✗ {message.error}")
            return
        lines = [line for line in result_lines(message.result) if line]
        lines += [line for line in stop_lines(message.result.run) if line not in lines]
        self.query_one("#backfill-body", Static).update("\n".join(lines))
        self.query_one("#backfill-status", Static).update("done: the heatmap reloads on close")
