"""Disk: each filesystem against its watermarks, usage by dataset, growth and projection."""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header

from core.disk import history as disk_history
from core.disk.usage import DiskUsage, disk_usage
from core.disk.watermarks import Level
from core.errors import ParqctlError
from core.store.workspace import Workspace
from screens.dashboard import gauge
from tui.commands.disk import projection_text
from tui.text import human_bytes
from tui.widgets.panel import Panel

LEVEL_STATE = {
    Level.OK: "ok",
    Level.WARN: "warning",
    Level.CRITICAL: "critical",
    Level.BLOCK: "critical",
}
LEVEL_GLYPH = {Level.OK: "✓", Level.WARN: "!", Level.CRITICAL: "✗", Level.BLOCK: "✗"}


@dataclass(frozen=True)
class DiskView:
    usage: DiskUsage
    projections: dict[str, disk_history.Projection]


class DiskLoaded(Message):
    def __init__(self, view: DiskView | None, error: str | None = None) -> None:
        super().__init__()
        self.view, self.error = view, error


def describe_breakdown(usage: DiskUsage) -> str:
    total = usage.total_bytes or 1
    width = max((len(b.label) for b in usage.buckets), default=10)
    lines = [
        f"{human_bytes(usage.total_bytes)} on disk ({human_bytes(usage.total_apparent_bytes)} apparent)"
    ]
    for bucket in sorted(usage.buckets, key=lambda b: -b.bytes):
        share = bucket.bytes / total
        lines.append(
            f"{bucket.label:<{width}}  {human_bytes(bucket.bytes):>10}  {bucket.files:>9,} files  "
            f"{gauge(100 * share, 20)} {100 * share:5.1f}%"
        )
    return "\n".join(lines)


class DiskScreen(Screen):
    HELP = """# Disk

Each filesystem the workspace lives on, against the watermarks (warn, critical, block;
set in `.parqctl/config.toml`); writes refuse to start when they would cross critical.
Below: bytes by dataset as `du` counts them (legacy, each venue and interval, quarantine,
staging, index), and the growth per day with the projected date of reaching critical,
from the samples `parqctl health` and `parqctl disk` record.
"""
    BINDINGS = [Binding("r", "refresh", "Refresh")]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="disk-panels"):
            yield Panel("Breakdown", id="disk-breakdown")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    def action_refresh(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="disk")
    def load(self) -> None:
        workspace = Workspace(self.app.workspace.root)
        try:
            usage = disk_usage(workspace)
            history = disk_history.load(workspace.root)
        except ParqctlError as exc:
            self.post_message(DiskLoaded(None, exc.one_line()))
            return
        now = self.app.now()
        projections = {
            str(fs.mount): disk_history.project(history, fs, now) for fs in usage.filesystems
        }
        self.post_message(DiskLoaded(DiskView(usage, projections)))

    async def on_disk_loaded(self, message: DiskLoaded) -> None:
        if message.view is None:
            self.notify(message.error or "cannot read the disk", severity="error")
            return
        usage, projections = message.view.usage, message.view.projections
        container = self.query_one("#disk-panels", VerticalScroll)
        await container.query(".filesystem").remove()
        panels = []
        for fs in usage.filesystems:
            status, marks = fs.status, fs.status.watermarks
            panel = Panel(f"{fs.mount}", classes="filesystem")
            panel.update(
                f"{LEVEL_GLYPH[status.level]} {gauge(status.percent_used)} "
                f"{status.percent_used:.1f}% used  {status.level.name}\n"
                f"{human_bytes(status.free)} free of {human_bytes(status.total)}; "
                f"warn {marks.warn:g}% · critical {marks.critical:g}% · block {marks.block:g}%\n"
                f"holds {', '.join(fs.labels)}\n"
                + projection_text(projections[str(fs.mount)], marks.critical).replace(
                    "growth     ", "growth "
                )
            )
            panel.set_state(LEVEL_STATE[status.level])
            panels.append(panel)
        await container.mount_all(panels, before=0)
        self.query_one("#disk-breakdown", Panel).update(describe_breakdown(usage))
