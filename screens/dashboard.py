"""The dashboard: workspace health at a glance."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from core.errors import ParqctlError
from core.health import HealthReport, Verdict, health_report
from core.workspace import Workspace
from tui.text import human_age, human_bytes

VERDICT_CLASS = {
    Verdict.OK: "-ok",
    Verdict.WARNING: "-warning",
    Verdict.CRITICAL: "-critical",
    Verdict.UNKNOWN: "-critical",
}
VERDICT_GLYPH = {Verdict.OK: "✓", Verdict.WARNING: "!", Verdict.CRITICAL: "✗", Verdict.UNKNOWN: "?"}


class HealthLoaded(Message):
    def __init__(self, report: HealthReport | None, error: str | None) -> None:
        super().__init__()
        self.report = report
        self.error = error


def describe_verdict(report: HealthReport) -> str:
    glyph = VERDICT_GLYPH[report.verdict]
    lines = [f"{glyph} {report.verdict.name}"]
    lines += [f"  {VERDICT_GLYPH[p.verdict]} {p.text}" for p in report.problems]
    return "\n".join(lines)


def describe_lock(report: HealthReport) -> str:
    lock = report.lock
    lines = [f"{lock.state.name}: {lock.reason}"]
    if lock.pid is not None:
        lines.append(f"pid {lock.pid} on {lock.host}, age {human_age(lock.age_seconds)}")
    return "\n".join(lines)


def describe_disk(report: HealthReport) -> str:
    disk, marks = report.disk, report.disk.watermarks
    width = 30
    filled = round(width * min(disk.percent_used, 100) / 100)
    bar = "█" * filled + "░" * (width - filled)
    return (
        f"{bar} {disk.percent_used:.1f}%  {disk.level.name}\n"
        f"{human_bytes(disk.free)} free of {human_bytes(disk.total)}; "
        f"warn {marks.warn:g}% · critical {marks.critical:g}% · block {marks.block:g}%"
    )


def describe_datasets(report: HealthReport) -> str:
    if not report.datasets:
        return "no datasets under data/"
    width = max(len(inv.dataset.label) for inv in report.datasets)
    return "\n".join(
        f"{inv.dataset.label:<{width}}  {len(inv.groups):>6,} tickers {inv.files:>8,} files "
        f"{human_bytes(inv.bytes):>10}"
        + (f"  ! {len(inv.stray_files)} stray" if inv.stray_files else "")
        for inv in report.datasets
    )


class DashboardScreen(Screen):
    BINDINGS = [Binding("r", "refresh", "Refresh")]

    def __init__(self, workspace: Workspace) -> None:
        super().__init__()
        self.workspace = workspace

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="panels"):
            for panel_id, title in (
                ("verdict", "Health"),
                ("lock", "Run lock"),
                ("disk", "Disk"),
                ("datasets", "Datasets"),
            ):
                panel = Static("loading…", id=panel_id, classes="panel")
                panel.border_title = title
                yield panel
        yield Static("", id="status-line")
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        self.query_one("#status-line", Static).update("refreshing…")
        self.load_health()

    @work(thread=True, exclusive=True, exit_on_error=False, group="health", description="health")
    def load_health(self) -> None:
        try:
            # A fresh Workspace each time: metadata is cached per instance and may have changed.
            report = health_report(Workspace(self.workspace.root))
        except ParqctlError as exc:
            self.post_message(HealthLoaded(None, exc.one_line()))
            return
        self.post_message(HealthLoaded(report, None))

    def on_health_loaded(self, message: HealthLoaded) -> None:
        status = self.query_one("#status-line", Static)
        if message.report is None:
            self.query_one("#verdict", Static).update(f"? UNKNOWN\n  {message.error}")
            status.update("press r to retry")
            return
        report = message.report
        for panel_id, text in (
            ("verdict", describe_verdict(report)),
            ("lock", describe_lock(report)),
            ("disk", describe_disk(report)),
            ("datasets", describe_datasets(report)),
        ):
            self.query_one(f"#{panel_id}", Static).update(text)
        verdict_panel = self.query_one("#verdict", Static)
        verdict_panel.set_classes(f"panel {VERDICT_CLASS[report.verdict]}")
        self.app.sub_title = f"{VERDICT_GLYPH[report.verdict]} {report.verdict.name}"
        status.update(f"{report.tickers:,} tickers · r refresh · q quit")
