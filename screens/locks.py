"""The run lock: who holds it, is it stale, and breaking it with a confirmation."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header

from core.errors import ParqctlError
from core.safety import run_lock
from core.safety.run_lock import LockState, LockStatus
from tui.text import human_age, lock_lines
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.panel import Panel

PANEL_STATE = {
    LockState.FREE: "ok",
    LockState.LIVE: "ok",
    LockState.STALE: "warning",
    LockState.FOREIGN: "warning",
    LockState.UNKNOWN: "warning",
}
ADVICE = {
    LockState.FREE: "✓ Nobody holds the lock: the collector and parqctl can write.",
    LockState.LIVE: "● The holder is running. A live lock is never broken: wait for it to finish.",
    LockState.STALE: "! The holder is gone. Press b to break the lock so writers can run again.",
    LockState.FOREIGN: (
        "? Held from another host, whose processes cannot be checked from here. Check that "
        "host first; b breaks it only after a second, explicit confirmation."
    ),
    LockState.UNKNOWN: (
        "? The lock directory has no readable owner.json (a crash between its two steps, or a "
        "collector still starting). b breaks it only after an explicit confirmation."
    ),
}


class LockInspected(Message):
    def __init__(self, status: LockStatus | None, error: str | None = None) -> None:
        super().__init__()
        self.status, self.error = status, error


def break_description(status: LockStatus) -> str:
    holder = f"pid {status.pid} on {status.host}" if status.pid is not None else "an unknown holder"
    writer = status.writer or "collector"
    lines = [
        f"Lock:    {status.lock_dir}",
        f"Holder:  {holder} ({writer}{': ' + status.command if status.command else ''})",
        f"Age:     {human_age(status.age_seconds)}",
        f"Verdict: {status.state.name}: {status.reason}",
        "",
        f"This removes {status.lock_dir.name}/owner.json and the {status.lock_dir.name} directory, "
        "and records the break in .parqctl/audit.jsonl. The collector or parqctl can then "
        "take the lock. No data file is touched.",
    ]
    if status.state in (LockState.FOREIGN, LockState.UNKNOWN):
        lines += ["", "If that holder is in fact still running, two writers will run at once."]
    return "\n".join(lines)


def lock_grid(lines: list[str]) -> Table:
    """The CLI's ``label   value`` lines as a grid, so a long value wraps under itself."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for line in lines:
        label, _, value = line.partition(" ")
        grid.add_row(label, Text(value.lstrip()))
    return grid


class LocksScreen(Screen):
    HELP = """# Run lock

The collector's global lock, `.run_lock/owner.json`. Every writer holds it, so parqctl
never runs beside the collector's updater. The verdict:

- **FREE**: nobody holds it.
- **LIVE**: the holder is running on this host (never broken).
- **STALE**: same host, and the pid is gone or now belongs to another process.
- **FOREIGN**: held from another host; cannot be judged from here.
- **UNKNOWN**: the directory exists without a readable owner.json.
"""
    BINDINGS = [Binding("r", "refresh", "Refresh"), Binding("b", "break_lock", "Break lock")]

    def __init__(self) -> None:
        super().__init__()
        self.status: LockStatus | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield Panel("Run lock", id="lock-details")
            yield Panel("What to do", id="lock-advice")
        yield Footer()

    def on_mount(self) -> None:
        self.inspect_lock()

    def on_screen_resume(self) -> None:
        self.inspect_lock()

    def action_refresh(self) -> None:
        self.inspect_lock()

    @work(thread=True, exclusive=True, exit_on_error=False, group="lock-inspect")
    def inspect_lock(self) -> None:
        self.post_message(
            LockInspected(run_lock.inspect(self.app.workspace.root, now=self.app.now()))
        )

    def on_lock_inspected(self, message: LockInspected) -> None:
        if message.error:
            self.notify(message.error, severity="error", timeout=8)
        if message.status is None:
            return
        self.status = status = message.status
        details = self.query_one("#lock-details", Panel)
        details.update(lock_grid(lock_lines(status)))
        details.set_state(PANEL_STATE[status.state])
        self.query_one("#lock-advice", Panel).update(ADVICE[status.state])

    def action_break_lock(self) -> None:
        status = self.status
        if status is None:
            return
        refusal = run_lock.break_refusal(status, force=True)
        if refusal is not None:
            self.notify(refusal.one_line(), title="Not broken", severity="error", timeout=8)
            return
        force = status.state in (LockState.FOREIGN, LockState.UNKNOWN)
        title = f"Break the {status.state.name.lower()} run lock?"
        label = "Force break" if force else "Break lock"

        def decided(confirmed: bool | None) -> None:
            if confirmed:
                self.break_confirmed(force)

        self.app.push_screen(ConfirmScreen(title, break_description(status), label), decided)

    # Its own group: an exclusive inspection (started when the dialog closes) must not cancel it.
    @work(thread=True, exclusive=True, exit_on_error=False, group="lock-break")
    def break_confirmed(self, force: bool) -> None:
        root = self.app.workspace.root
        try:
            broken = run_lock.break_lock(root, force=force)
        except ParqctlError as exc:
            self.post_message(
                LockInspected(run_lock.inspect(root, now=self.app.now()), exc.one_line())
            )
            return
        self.app.call_from_thread(
            self.notify, f"Broke the {broken.state.name.lower()} lock of pid {broken.pid}."
        )
        self.post_message(LockInspected(run_lock.inspect(root, now=self.app.now())))
        self.app.call_from_thread(self.app.refresh_health)
