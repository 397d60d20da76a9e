"""The dashboard: what is wrong first, in one status block that fits 80x24; the details
of each line behind Enter; lock, disk and migration read live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from core.availability.gap_watch import IntervalGaps, WorstTicker
from core.errors import ParqctlError
from core.health import HealthReport, MigrationProgress, Verdict, build_index, with_live_parts
from core.jobs import CancelToken, JobCancelled, Progress
from core.safety.run_lock import LockState
from tui.advice import console_wording
from tui.messages import IndexProgress
from tui.text import human_age, human_bytes

if TYPE_CHECKING:  # numpy, which it loads, is not needed to paint the dashboard
    from core.availability.freshness import IntervalFreshness

# Lock, disk and migration progress are read again this often (a stat and a small JSON).
LIVE_REFRESH_S = 2.0
PROBLEM_LINES = 3  # problems shown under the verdict; the rest behind Enter
LABEL_WIDTH = 10

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
DISK_STATE = {0: "ok", 1: "warning"}  # by watermark level; above: critical
DATASETS_COUNT = (
    "Sizes here are the bar files' own sizes (as `ls -l` shows them), stray temp files "
    "left out. The disk screen (5) counts what the files take on disk (blocks allocated, "
    "as `du` does), directories, stray files, quarantine and parqctl's index included, so "
    "its figures are larger."
)


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
    if lock.command or lock.writer:
        lines.append(f"held by {lock.command or lock.writer}")
    return "\n".join(lines)


def gauge(percent: float, width: int = 30) -> str:
    """Rounded to the nearest cell, but full only at 100."""
    filled = round(width * min(max(percent, 0), 100) / 100)
    if percent < 100:
        filled = min(filled, width - 1)
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
    return "\n".join([*lines, "", DATASETS_COUNT])


def describe_coverage(iv: IntervalGaps) -> str:
    expiring = f", ⏳ {iv.expiring_sessions:,} expiring" if iv.expiring_sessions else ""
    lost = f", ✗ {iv.lost_sessions:,} lost" if iv.lost_sessions else ""
    return (
        f"{iv.tickers - iv.tickers_with_gaps:,}/{iv.tickers:,} complete, "
        f"{iv.missing_sessions:,} missing{lost}{expiring}"
    )


def describe_integrity(report: HealthReport, now: float) -> tuple[str, str]:
    summary = report.integrity
    if summary is None:
        return "? never checked: press 6 then c", "warning"
    glyph, state = ("✗", "critical") if summary.open_errors else ("✓", "ok")
    return (
        f"{glyph} {summary.open_errors} open error(s), {summary.warnings} warning(s); "
        f"checked {human_age(now - summary.checked_at)} ago",
        state,
    )


def describe_quarantine(report: HealthReport) -> tuple[str, str]:
    totals = report.quarantine
    if totals is None or not totals.entries:
        return "✓ empty", "ok"
    pending = f"; ! {totals.pending} interrupted move(s)" if totals.pending else ""
    return f"{totals.entries} file(s), {human_bytes(totals.bytes)}{pending}", (
        "warning" if totals.pending else "ok"
    )


def describe_migration(item: MigrationProgress) -> str:
    failed = f", {item.failed:,} failed" if item.failed else ""
    return (
        f"{item.venue} {item.interval} {item.stage or item.status}: "
        f"{item.completed:,}/{item.total:,} ({item.percent}%){failed}"
    )


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


def freshness_text(fresh: IntervalFreshness) -> str:
    """Short, for a status line: the newest bar, or how far behind and since when."""
    if fresh.newest_bar is None:
        return "no readable bars"
    if not fresh.sessions_behind:
        return f"up to date: {fresh.newest_text()}"
    plural = "s" if fresh.sessions_behind > 1 else ""
    return (
        f"{fresh.sessions_behind:,} session{plural} behind, "
        f"no write since {fresh.last_written_text()}"
    )


@dataclass(frozen=True)
class StatusLine:
    """One line of the status block; ``area`` is what Enter shows the details of."""

    area: str
    glyph: str
    label: str
    text: str
    state: str  # ok, warning, critical


@dataclass(frozen=True)
class Details:
    title: str
    body: object  # str or a Rich renderable
    target_mode: str | None  # the screen Enter opens from the details
    target_key: str = ""


@dataclass(frozen=True)
class IndexBuild:
    """The first file index, built by the dashboard: its progress, or why it failed."""

    progress: Progress | None = None
    error: str | None = None


def _interval_names(report: HealthReport) -> list[str]:
    names = [iv.interval for iv in report.gaps.intervals] if report.gaps else []
    if report.freshness is not None:
        names += [iv.interval for iv in report.freshness.intervals]
    return list(dict.fromkeys(names or report.intervals))


def _worst_freshness(report: HealthReport, interval: str) -> IntervalFreshness | None:
    """The interval's freshness on the calendar that is furthest behind."""
    found = [
        f
        for f in (report.freshness.intervals if report.freshness else [])
        if f.interval == interval
    ]
    return max(found, key=lambda f: f.sessions_behind, default=None)


def interval_lines(
    report: HealthReport, pending: bool, build: IndexBuild | None
) -> list[StatusLine]:
    """Per interval: freshness, then coverage; or why there are none yet."""
    if build is not None and build.error:
        return [
            StatusLine("interval", "?", "Intervals", f"no file index: {build.error}", "warning")
        ]
    if build is not None:
        p = build.progress
        done = f": {p.done:,} of {p.total:,} files ({100 * p.fraction:.0f}%)" if p else ""
        text = f"… building the file index, first time{done}"
        return [StatusLine("interval", "…", "Intervals", text, "ok")]
    if report.gaps is None and report.gaps_error:
        return [StatusLine("interval", "?", "Intervals", report.gaps_error, "warning")]
    lines = []
    coverage = {iv.interval: iv for iv in report.gaps.intervals} if report.gaps else {}
    for interval in _interval_names(report):
        fresh, gaps = _worst_freshness(report, interval), coverage.get(interval)
        parts, glyph, state = [], "✓", "ok"
        if fresh is not None:
            parts.append(freshness_text(fresh))
            if fresh.stalled:
                glyph, state = "!", "warning"
        elif report.freshness_error:
            parts.append("freshness unknown")
            glyph, state = "?", "warning"
        elif pending or report.gaps is not None:
            parts.append("… freshness")
        if gaps is not None:
            parts.append(describe_coverage(gaps))
            if gaps.tickers_with_gaps and glyph == "✓":
                glyph = "!"
            if gaps.expiring_sessions:
                state = "warning"
        elif pending:
            parts.append("… coverage from the file index")
        else:
            parts.append("no file index yet")
            glyph, state = "?", "warning"
        lines.append(StatusLine(f"interval:{interval}", glyph, interval, " · ".join(parts), state))
    return lines


def status_lines(
    report: HealthReport, now: float, pending: bool, build: IndexBuild | None = None
) -> list[StatusLine]:
    """The status block: verdict and problems, lock, disk, each interval, integrity,
    quarantine, migration, datasets."""
    verdict = report.verdict
    count = len(report.problems)
    summary = f"{count} problem{'s' if count != 1 else ''}" if count else "nothing to do"
    lines = [
        StatusLine(
            "health",
            VERDICT_GLYPH[verdict],
            "Health",
            f"{verdict.name}: {summary}",
            VERDICT_STATE[verdict],
        )
    ]
    worst_first = sorted(report.problems, key=lambda p: -p.verdict)
    for problem in worst_first[:PROBLEM_LINES]:
        lines.append(
            StatusLine(
                "health",
                VERDICT_GLYPH[problem.verdict],
                "",
                console_wording(problem.text),
                VERDICT_STATE[problem.verdict],
            )
        )
    if count > PROBLEM_LINES:
        lines.append(StatusLine("health", "", "", f"and {count - PROBLEM_LINES} more: enter", "ok"))
    lock = report.lock
    state, glyph = LOCK_STATE[lock.state]
    if lock.state is LockState.FREE:
        lock_text = "FREE"
    elif lock.state is LockState.LIVE:
        holder = lock.command or lock.writer or f"pid {lock.pid}"
        lock_text = f"LIVE: {holder}, pid {lock.pid} on {lock.host}, {human_age(lock.age_seconds)}"
    else:
        lock_text = f"{lock.state.name}: {lock.reason}"
    lines.append(StatusLine("lock", glyph, "Run lock", lock_text, state))
    disk = report.disk
    disk_state = DISK_STATE.get(int(disk.level), "critical")
    soon = [p.critical_on for p in report.projections.values() if p.critical_on is not None]
    projected = f" · critical ~{min(soon)}" if soon else ""
    lines.append(
        StatusLine(
            "disk",
            "✓" if disk_state == "ok" else "!",
            "Disk",
            f"{disk.percent_used:.1f}% used, {human_bytes(disk.free)} free, "
            f"{disk.level.name}{projected}",
            disk_state,
        )
    )
    lines += interval_lines(report, pending, build)
    text, state = describe_integrity(report, now)
    lines.append(StatusLine("integrity", text[0], "Integrity", text[2:], state))
    text, state = describe_quarantine(report)
    glyph = "✓" if text.startswith("✓") else ("!" if state != "ok" else "•")
    lines.append(StatusLine("quarantine", glyph, "Quarantine", text.removeprefix("✓ "), state))
    if not report.migration:
        lines.append(StatusLine("migration", "•", "Migration", "none planned", "ok"))
    for item in report.migration:
        glyph, state = ("!", "warning") if item.failed else ("•", "ok")
        lines.append(StatusLine("migration", glyph, "Migration", describe_migration(item), state))
    files = sum(inv.files for inv in report.datasets)
    size = sum(inv.bytes for inv in report.datasets)
    stray = sum(len(inv.stray_files) for inv in report.datasets)
    lines.append(
        StatusLine(
            "datasets",
            "!" if stray else "•",
            "Datasets",
            f"{files:,} bar files, {human_bytes(size)} (file sizes) in "
            f"{len(report.datasets)} dataset(s)" + (f", {stray} stray" if stray else ""),
            "warning" if stray else "ok",
        )
    )
    return lines


def details(report: HealthReport, area: str, now: float) -> Details:
    """What Enter on a status line shows."""
    if area == "health":
        return Details("Health", describe_verdict(report), None)
    if area == "lock":
        return Details("Run lock", describe_lock(report), "locks", "3")
    if area == "disk":
        return Details("Disk", describe_disk(report), "disk", "5")
    if area == "integrity":
        return Details("Integrity", describe_integrity(report, now)[0], "integrity", "6")
    if area == "quarantine":
        return Details("Quarantine", describe_quarantine(report)[0], "quarantine", "4")
    if area == "migration":
        body = "\n".join(describe_migration(m) for m in report.migration)
        return Details("Migration", body or "no migration planned", "migration", "7")
    if area == "datasets":
        return Details("Datasets", describe_datasets(report), "disk", "5")
    interval = area.removeprefix("interval:")
    lines = []
    for fresh in report.freshness.intervals if report.freshness else []:
        if fresh.interval == interval:
            lines.append(f"freshness ({fresh.calendar}): {fresh.summary()}")
    if report.freshness is not None:
        lines.append(
            f"a warning from {report.freshness.stalled_after_sessions} session(s) behind "
            "([freshness] stalled_after_sessions in .parqctl/config.toml)"
        )
    for iv in report.gaps.intervals if report.gaps else []:
        if iv.interval == interval:
            lines.append(f"coverage: {describe_coverage(iv)}")
    for w in report.gaps.worst if report.gaps else []:
        if w.interval == interval:
            glyph, _, fate = describe_worst(w)
            lines.append(f"  {glyph} {w.ticker}: {w.missing_sessions:,} missing · {fate}")
    title = interval if area.startswith("interval:") else "Intervals"
    return Details(title, "\n".join(lines) or "nothing computed yet", "heatmap", "2")


class DetailsScreen(ModalScreen[bool]):
    """The details of one status line; Enter opens the screen they lead to."""

    BINDINGS = [
        Binding("escape,q", "dismiss(False)", "Back"),
        Binding("enter", "open", "Open"),
    ]
    DEFAULT_CSS = """
    DetailsScreen { align: center middle; }
    DetailsScreen > Vertical {
        width: 90%; max-width: 110; height: auto; max-height: 90%;
        border: round $primary; background: $surface; padding: 0 1; overflow-y: auto;
    }
    DetailsScreen #details-body { height: auto; }
    DetailsScreen #details-hint { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, found: Details) -> None:
        super().__init__()
        self.found = found

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.found.title
            yield Static(self.found.body, id="details-body", markup=False)
            target = self.found.target_mode
            hint = f"enter ▸ {target} screen ({self.found.target_key}) · " if target else ""
            yield Static(f"{hint}escape ▸ back", id="details-hint", markup=False)

    def action_open(self) -> None:
        self.dismiss(self.found.target_mode is not None)


class StatusBlock(OptionList):
    """The summary that matters, one line per thing; Enter (or a click) shows a line's
    details."""

    DEFAULT_CSS = """
    StatusBlock { height: auto; max-height: 100%; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(classes="panel", **kwargs)
        self.border_title = "Status"
        self.lines: list[StatusLine] = []

    def show_lines(self, lines: list[StatusLine]) -> None:
        self.lines = lines
        theme = self.app.current_theme
        colours = {"ok": theme.success, "warning": theme.warning, "critical": theme.error}
        options = []
        for line in lines:
            text = Text(no_wrap=True, overflow="ellipsis")
            text.append(
                line.glyph + " " * (2 - cell_len(line.glyph)), style=f"bold {colours[line.state]}"
            )
            text.append(f"{line.label:<{LABEL_WIDTH}} ", style="bold" if line.label else "")
            text.append(line.text, style=colours[line.state] if line.state != "ok" else "")
            options.append(Option(text))
        highlighted = self.highlighted
        self.set_options(options)
        if options:
            self.highlighted = min(highlighted or 0, len(options) - 1)

    def line_text(self, area: str) -> str:
        """The plain text of the lines of ``area`` (for tests and the palette)."""
        return "\n".join(
            f"{line.glyph} {line.label} {line.text}".strip()
            for line in self.lines
            if line.area == area or line.area.startswith(f"{area}:")
        )

    def on_focus(self) -> None:
        self.border_subtitle = "enter ▸ details"

    def on_blur(self) -> None:
        self.border_subtitle = ""

    def set_state(self, state: str) -> None:
        for name in ("ok", "warning", "critical"):
            self.set_class(name == state, f"-{name}")


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


class LiveRead(Message):
    """The latest report with its lock, disk and migration read again (None: not read)."""

    def __init__(self, state, report: HealthReport | None) -> None:
        super().__init__()
        self.state = state  # the app's HealthState it was read over
        self.report = report


class IndexBuilt(Message):
    def __init__(self, error: str | None = None) -> None:
        super().__init__()
        self.error = error


class DashboardScreen(Screen):
    HELP = f"""# Dashboard

What is wrong first. The **Status** block has one line per thing: the verdict and its
problems; the collector's run lock; the disk against its watermarks; for each interval,
its **freshness** (the newest bar against the last closed session: "up to date", or how
many sessions behind and when the collector last wrote) and its coverage (tickers
complete, sessions missing, lost for good, about to expire); the last integrity check;
the quarantine; migration progress; the datasets on disk. `up` / `down` choose a line,
`enter` (or a click) shows its details, and `enter` there opens the screen they lead to.

The run lock, the disk and migration progress are read again every {LIVE_REFRESH_S:g} s
(a stat and a small JSON file); everything else every 30 s; `r` reads it all now. A
workspace without a file index gets one built in the background the first time the
dashboard opens (its progress shows in the interval lines).

An interval is **stalled** once its newest bar is `stalled_after_sessions` sessions
behind (`[freshness]` in `.parqctl/config.toml`, default 2): the verdict is then a
WARNING. Dataset sizes are the bar files' own sizes; the disk screen (5) counts blocks on
disk as `du` does.

**Worst tickers** lists the tickers with gaps, most urgent first: sessions that leave
Yahoo's retention window within two days (`⏳ … expire by`), then the most sessions still
fetchable (`⏳ fetchable until` the first deadline, `!` any time), then the most missing
(`✗` lost for good). `tab` moves to it; `enter` opens the heatmap on a ticker, with its
gap list in the panel; `b` backfills its recoverable gaps from Yahoo (`B`: every ticker
listed in that interval), after showing what will be fetched.
"""
    BINDINGS = [Binding("r", "refresh", "Refresh")]
    AUTO_FOCUS = "#status"

    def __init__(self) -> None:
        super().__init__()
        self._state = None  # the app's HealthState shown
        self._report: HealthReport | None = None  # its report, with the live parts
        self._live_timer: Timer | None = None
        self._index_build: IndexBuild | None = None
        self._index_started = False
        self._index_cancel: CancelToken | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="panels"):
            yield StatusBlock(id="status")
            yield WorstTickers(id="worst")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "health", self.show_health)

    def on_unmount(self) -> None:
        if self._index_cancel is not None:
            self._index_cancel.cancel()

    def on_screen_resume(self) -> None:
        self.read_live()

    def action_refresh(self) -> None:
        self.notify("refreshing…", timeout=1)
        self.read_live()
        self.app.refresh_health()

    def show_health(self, state) -> None:
        if state is None or self._superseded(state):
            return
        self._state = state
        self._report = state.report
        self.render_status()
        if state.report is None:
            return
        self.read_live()
        if (
            state.final
            and not self._index_started
            and state.report.gaps is None
            and state.report.gaps_error is None
        ):
            self._index_started = True
            self._index_build = IndexBuild()
            self.build_first_index()
            self.render_status()

    def _superseded(self, state) -> bool:
        """A partial report (its gaps saved or pending) never replaces a complete one of
        the same check or a later one, whatever order refreshes finish in."""
        shown = self._state
        if state.final or shown is None or not shown.final:
            return False
        if state.report is None or shown.report is None:
            return False
        return state.report.checked_at <= shown.report.checked_at

    def render_status(self) -> None:
        block = self.query_one(StatusBlock)
        state, report = self._state, self._report
        if state is None:
            return
        if report is None:
            block.show_lines(
                [StatusLine("health", "?", "Health", f"UNKNOWN: {state.error}", "critical")]
            )
            block.set_state("critical")
            self.query_one(WorstTickers).show_note(f"? {state.error}", "critical")
            return
        pending = state.gaps_pending or (state.gaps_saved and report.freshness is None)
        block.show_lines(status_lines(report, self.app.now(), pending, self._index_build))
        block.set_state(VERDICT_STATE[report.verdict])
        self.app.sub_title = report.verdict.name
        self.show_worst(report, state.gaps_pending)

    def show_worst(self, report: HealthReport, pending: bool) -> None:
        worst = self.query_one(WorstTickers)
        if pending:
            worst.show_note("… computing from the file index", "ok")
        elif report.gaps is None and self._index_build is not None and not self._index_build.error:
            worst.show_note("… once the file index is built", "ok")
        elif report.gaps is None:
            worst.show_note(f"? {report.gaps_error or 'no file index yet'}", "warning")
        else:
            worst.show_worst(report.gaps.worst)

    # --- live parts ----------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="dashboard-live")
    def read_live(self) -> None:
        state = self._state
        report = None
        if state is not None and state.report is not None:
            try:
                report = with_live_parts(state.report, now=self.app.now())
            except (ParqctlError, OSError):
                report = None  # the next full refresh says what is wrong
        self.post_message(LiveRead(state, report))

    def on_live_read(self, message: LiveRead) -> None:
        if message.report is not None and message.state is self._state:
            self._report = message.report
            self.render_status()
        if self._live_timer is not None:
            self._live_timer.stop()
        self._live_timer = self.set_timer(LIVE_REFRESH_S, self._live_tick)

    def _live_tick(self) -> None:
        if self.is_current:
            self.read_live()
        # else: on_screen_resume reads it when the dashboard is shown again

    # --- the first file index ------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="first-index")
    def build_first_index(self) -> None:
        token = self._index_cancel = CancelToken()
        try:
            self.app.in_engine_process(build_index)(
                self.app.workspace.root,
                progress=lambda p: self.post_message(IndexProgress(p)),
                cancel=token,
            )
        except JobCancelled:
            return
        except ParqctlError as exc:
            self.post_message(IndexBuilt(exc.one_line()))
            return
        self.post_message(IndexBuilt())

    def on_index_progress(self, message: IndexProgress) -> None:
        if self._index_build is not None and not self._index_build.error:
            self._index_build = IndexBuild(message.progress)
            self.render_status()

    def on_index_built(self, message: IndexBuilt) -> None:
        if message.error:
            self._index_build = IndexBuild(error=message.error)
            self.render_status()
            return
        self._index_build = None
        self.app.refresh_health()

    # --- where lines lead ----------------------------------------------------------------

    async def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if isinstance(event.option_list, StatusBlock):
            self.show_details(event.option_index)
            return
        worst = self.query_one(WorstTickers).worst
        if event.option_index >= len(worst):
            return
        chosen = worst[event.option_index]
        await self.app.switch_mode("heatmap")
        self.app.screen.show_ticker(chosen.ticker, chosen.interval)

    def show_details(self, index: int) -> None:
        block = self.query_one(StatusBlock)
        if self._report is None or index >= len(block.lines):
            return
        found = details(self._report, block.lines[index].area, self.app.now())

        def opened(go: bool | None) -> None:
            if go and found.target_mode:
                self.app.switch_mode(found.target_mode)

        self.app.push_screen(DetailsScreen(found), opened)
