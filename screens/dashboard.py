"""The dashboard: workspace health at a glance; each panel leads to its screen."""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList
from textual.widgets.option_list import Option

from core.availability.gap_watch import WorstTicker
from core.health import HealthReport, Verdict
from core.safety.run_lock import LockState
from tui.advice import console_wording
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


def describe_verdict(report: HealthReport) -> Group:
    """The verdict, then each problem behind its glyph, wrapped lines under its text."""
    problems = Table.grid(padding=(0, 1))
    problems.add_column(no_wrap=True)
    problems.add_column()
    for problem in report.problems:
        problems.add_row(f"  {VERDICT_GLYPH[problem.verdict]}", Text(console_wording(problem.text)))
    return Group(Text(f"{VERDICT_GLYPH[report.verdict]} {report.verdict.name}"), problems)


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
    lines = [
        f"{gauge(disk.percent_used)} {disk.percent_used:.1f}%  {disk.level.name}",
        f"{human_bytes(disk.free)} free of {human_bytes(disk.total)}",
        f"watermarks: warn {marks.warn:g}% · critical {marks.critical:g}% · block {marks.block:g}%",
    ]
    for mount, projection in report.projections.items():
        where = f"{mount}: " if len(report.projections) > 1 else ""
        if projection.critical_on is not None:
            lines.append(f"{where}critical {marks.critical:g}% around {projection.critical_on}")
        else:
            lines.append(f"{where}{projection.note}")
    return "\n".join(lines)


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


def describe_coverage(report: HealthReport, pending: bool = False) -> tuple[str, str]:
    if pending:
        return "… computing coverage from the file index", "ok"
    if report.gaps is None:
        reason = report.gaps_error or "no file index yet: open the heatmap (2) to build it"
        return f"? {reason}", "warning"
    lines, state = [], "ok"
    for iv in report.gaps.intervals:
        glyph = "✓" if not iv.tickers_with_gaps else "!"
        expiring = f", ⏳ {iv.expiring_sessions:,} expiring" if iv.expiring_sessions else ""
        lost = f", ✗ {iv.lost_sessions:,} lost" if iv.lost_sessions else ""
        lines.append(
            f"{glyph} {iv.interval:<4} {iv.tickers - iv.tickers_with_gaps:,}/{iv.tickers:,} complete, "
            f"{iv.missing_sessions:,} sessions missing{lost}{expiring}"
        )
        if iv.expiring_sessions:
            state = "warning"
    return "\n".join(lines) or "no intervals", state


def describe_integrity(report: HealthReport, now: float) -> tuple[str, str]:
    summary = report.integrity
    if summary is None:
        return "? never checked: press c on the integrity screen (6)", "warning"
    glyph, state = ("✗", "critical") if summary.open_errors else ("✓", "ok")
    return (
        f"{glyph} {summary.open_errors} open error(s), {summary.warnings} warning(s)\n"
        f"last full check {human_age(now - summary.checked_at)} ago",
        state,
    )


def describe_quarantine(report: HealthReport) -> tuple[str, str]:
    totals = report.quarantine
    if totals is None or not totals.entries:
        return "✓ empty", "ok"
    pending = f"\n! {totals.pending} interrupted move(s)" if totals.pending else ""
    return f"{totals.entries} file(s), {human_bytes(totals.bytes)}{pending}", (
        "warning" if totals.pending else "ok"
    )


def describe_migration(report: HealthReport) -> tuple[str, str]:
    if not report.migration:
        return "no migration planned (press 7 then p)", "ok"
    lines = [
        f"{m.venue} {m.interval:<4} {m.status:<10} {gauge(100 * m.ratio, 20)} "
        f"{m.completed:,}/{m.total:,}"
        for m in report.migration
    ]
    return "\n".join(lines), "ok"


def describe_worst(worst: WorstTicker) -> tuple[str, str, str]:
    """A worst ticker's glyph, its severity (``critical`` about to expire, ``warning``
    missing) and what is left to do about it."""
    until = worst.recoverable_until
    lost = worst.missing_sessions - worst.recoverable_sessions
    if worst.expiring_sessions:
        glyph, severity, fate = "⏳", "critical", f"{worst.expiring_sessions:,} expire by {until}"
    elif until is not None:
        glyph, severity, fate = "⏳", "warning", f"fetchable until {until}"
    elif worst.recoverable_sessions:
        glyph, severity, fate = "!", "warning", "fetchable any time"
    else:
        glyph, severity, fate = "✗", "lost", "lost for good"
    if lost and worst.recoverable_sessions:
        fate += f", {lost:,} lost"
    return glyph, severity, fate


class WorstTickers(OptionList):
    """The tickers with the most urgent gaps, one a line; enter or a click opens the
    heatmap on the highlighted one; ``b`` backfills its recoverable gaps, ``B`` those of
    every ticker listed in its interval."""

    BINDINGS = [
        Binding("b", "backfill(False)", "Backfill", show=False),
        Binding("B", "backfill(True)", "Backfill all listed", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(classes="panel", **kwargs)
        self.border_title = "Worst tickers"
        self.worst: list[WorstTicker] = []

    def show_note(self, note: str, state: str) -> None:
        """A line in place of the list: why there is none."""
        self.worst = []
        self.set_options([Option(Text(note), disabled=True)])
        self.set_state(state)

    def show_worst(self, worst: list[WorstTicker]) -> None:
        if not worst:
            self.show_note("✓ no ticker has gaps", "ok")
            return
        self.worst = list(worst)
        theme = self.app.current_theme
        colours = {"critical": theme.error, "warning": theme.warning, "lost": theme.foreground}
        width = max(len(w.ticker) for w in worst)
        options = []
        for w in worst:
            glyph, severity, fate = describe_worst(w)
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(glyph + " " * (2 - cell_len(glyph)), style=f"bold {colours[severity]}")
            line.append(f" {w.ticker:<{width}} {w.interval:<4}{w.missing_sessions:>6,} missing · ")
            line.append(fate, style=colours[severity] if severity == "critical" else "")
            options.append(Option(line))
        highlighted = self.highlighted
        self.set_options(options)
        self.highlighted = min(highlighted or 0, len(options) - 1)
        self.set_state("warning" if any(w.expiring_sessions for w in worst) else "ok")

    def action_backfill(self, listed: bool) -> None:
        if not self.worst or self.highlighted is None:
            return
        from screens.backfill import BackfillScreen

        chosen = self.worst[self.highlighted]
        tickers = (
            sorted({w.ticker for w in self.worst if w.interval == chosen.interval})
            if listed
            else [chosen.ticker]
        )
        what = f"the {len(tickers)} worst tickers" if listed else chosen.ticker
        screen = BackfillScreen(
            self.app.workspace.root, chosen.interval, tickers, self.app.today(), what
        )
        self.app.push_screen(screen, self._backfilled)

    def _backfilled(self, changed: bool | None) -> None:
        if changed:
            self.screen.action_refresh()

    def on_focus(self) -> None:
        self.border_subtitle = "enter ▸ heatmap · b backfill" if self.worst else ""

    def on_blur(self) -> None:
        self.border_subtitle = ""

    def set_state(self, state: str) -> None:
        for name in ("ok", "warning", "critical"):
            self.set_class(name == state, f"-{name}")


class DashboardScreen(Screen):
    HELP = """# Dashboard

The workspace at a glance: the overall verdict and its reasons, the collector's run lock,
the disk against its watermarks, coverage per interval (tickers complete, sessions
missing, lost for good, and about to expire), the last integrity check, the quarantine,
migration progress, and the datasets on disk. Panels refresh every 30 s and
on `r`. Move between panels with `tab`; `enter` (or a click) opens the screen a panel
leads to.

**Worst tickers** lists the tickers with gaps, most urgent first: sessions that leave
Yahoo's retention window within two days (`⏳ … expire by`), then the most sessions still
fetchable (`⏳ fetchable until` the first deadline, `!` any time), then the most missing
(`✗` lost for good). `up` / `down` choose one; `enter` opens the heatmap on it, with its
gap list in the panel; `b` backfills its recoverable gaps from Yahoo (`B`: every ticker
listed in that interval), after showing what will be fetched.
"""
    BINDINGS = [Binding("r", "refresh", "Refresh")]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="panels"):
            yield Panel("Health", id="verdict")
            # Two columns on a wide terminal, one on a narrow one.
            with Container(id="panel-grid"):
                yield Panel("Run lock", target_mode="locks", id="lock")
                yield Panel("Disk", target_mode="disk", id="disk")
                yield Panel("Coverage", target_mode="heatmap", id="coverage")
                yield WorstTickers(id="worst")
                yield Panel("Integrity", target_mode="integrity", id="integrity")
                yield Panel("Quarantine", target_mode="quarantine", id="quarantine")
                yield Panel("Migration", target_mode="migration", id="migration")
            yield Panel("Datasets", target_mode="disk", id="datasets")
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
            verdict.update(Text(f"? UNKNOWN\n  {state.error}"))
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
        self.show_worst(report, state.gaps_pending)
        for panel_id, (text, panel_state) in (
            ("coverage", describe_coverage(report, state.gaps_pending)),
            ("integrity", describe_integrity(report, self.app.now())),
            ("quarantine", describe_quarantine(report)),
            ("migration", describe_migration(report)),
        ):
            panel = self.query_one(f"#{panel_id}", Panel)
            panel.update(text)
            panel.set_state(panel_state)

    def show_worst(self, report: HealthReport, pending: bool) -> None:
        worst = self.query_one(WorstTickers)
        if pending:
            worst.show_note("… computing from the file index", "ok")
        elif report.gaps is None:
            reason = report.gaps_error or "no file index yet: open the heatmap (2) to build it"
            worst.show_note(f"? {reason}", "warning")
        else:
            worst.show_worst(report.gaps.worst)

    async def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        worst = self.query_one(WorstTickers).worst
        if event.option_index >= len(worst):
            return
        chosen = worst[event.option_index]
        await self.app.switch_mode("heatmap")
        self.app.screen.show_ticker(chosen.ticker, chosen.interval)
