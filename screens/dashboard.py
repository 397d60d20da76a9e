"""The dashboard: workspace health at a glance; each panel leads to its screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header

from core.health import HealthReport, Verdict
from core.run_lock import LockState
from tui.text import human_age, human_bytes
from tui.widgets.panel import Panel

VERDICT_STATE = {
    Verdict.OK: "ok",
    Verdict.WARNING: "warning",
    Verdict.CRITICAL: "critical",
    Verdict.UNKNOWN: "critical",
}
VERDICT_GLYPH = {Verdict.OK: "✓", Verdict.WARNING: "!", Verdict.CRITICAL: "✗", Verdict.UNKNOWN: "?"}
LOCK_STATE = {
    LockState.FREE: ("ok", "✓"),
    LockState.LIVE: ("ok", "●"),
    LockState.STALE: ("warning", "!"),
    LockState.FOREIGN: ("warning", "?"),
    LockState.UNKNOWN: ("warning", "?"),
}


def describe_verdict(report: HealthReport) -> str:
    lines = [f"{VERDICT_GLYPH[report.verdict]} {report.verdict.name}"]
    lines += [f"  {VERDICT_GLYPH[p.verdict]} {p.text}" for p in report.problems]
    return "\n".join(lines)


def describe_lock(report: HealthReport) -> str:
    lock = report.lock
    glyph = LOCK_STATE[lock.state][1]
    lines = [f"{glyph} {lock.state.name}: {lock.reason}"]
    if lock.pid is not None:
        lines.append(f"pid {lock.pid} on {lock.host}, age {human_age(lock.age_seconds)}")
    return "\n".join(lines)


def gauge(percent: float, width: int = 30) -> str:
    filled = round(width * min(max(percent, 0), 100) / 100)
    return "█" * filled + "░" * (width - filled)


def describe_disk(report: HealthReport) -> str:
    disk, marks = report.disk, report.disk.watermarks
    return (
        f"{gauge(disk.percent_used)} {disk.percent_used:.1f}%  {disk.level.name}\n"
        f"{human_bytes(disk.free)} free of {human_bytes(disk.total)}; "
        f"warn {marks.warn:g}% · critical {marks.critical:g}% · block {marks.block:g}%"
    )


def describe_datasets(report: HealthReport) -> str:
    if not report.datasets:
        return "no datasets under data/"
    width = max(len(inv.dataset.label) for inv in report.datasets)
    lines = []
    for inv in report.datasets:
        stray = f"  ! {len(inv.stray_files)} stray" if inv.stray_files else ""
        lines.append(
            f"{inv.dataset.label:<{width}}  {len(inv.groups):>6,} tickers {inv.files:>8,} files "
            f"{human_bytes(inv.bytes):>10}{stray}"
        )
    return "\n".join(lines)


class DashboardScreen(Screen):
    HELP = """# Dashboard

The workspace at a glance: the overall verdict and its reasons, the collector's run lock,
the disk against its watermarks, and the datasets on disk. Panels refresh every 30 s and
on `r`. Move between panels with `tab`; `enter` opens the screen a panel leads to.
"""
    BINDINGS = [Binding("r", "refresh", "Refresh")]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="panels"):
            yield Panel("Health", id="verdict")
            yield Panel("Run lock", target_mode="locks", id="lock")
            yield Panel("Disk", id="disk")
            yield Panel("Datasets", id="datasets")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "health", self.show_health)

    def action_refresh(self) -> None:
        self.notify("refreshing…", timeout=1)
        self.app.refresh_health()

    def show_health(self, state) -> None:
        if state is None:
            return
        verdict = self.query_one("#verdict", Panel)
        if state.report is None:
            verdict.update(f"? UNKNOWN\n  {state.error}")
            verdict.set_state("critical")
            return
        report = state.report
        verdict.update(describe_verdict(report))
        verdict.set_state(VERDICT_STATE[report.verdict])
        lock = self.query_one("#lock", Panel)
        lock.update(describe_lock(report))
        lock.set_state(LOCK_STATE[report.lock.state][0])
        disk = self.query_one("#disk", Panel)
        disk.update(describe_disk(report))
        disk.set_state({0: "ok", 1: "warning"}.get(int(report.disk.level), "critical"))
        self.query_one("#datasets", Panel).update(describe_datasets(report))
