"""Integrity: findings by severity with file and advice; run a check; quarantine a file."""

from __future__ import annotations

import os

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

from core.errors import ParqctlError
from core.integrity import quarantine
from core.integrity.check import IntegrityReport, check, save_report
from core.integrity.findings import Finding, Scope, Severity
from core.jobs import CancelToken, JobCancelled, Progress
from core.safety import run_lock
from core.store.workspace import Workspace
from tui.text import human_age
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.fitted_table import FitColumn, FittedTable, labelled

SEVERITY = {
    Severity.ERROR: ("✗", "error"),
    Severity.WARNING: ("!", "warning"),
    Severity.INFO: ("·", "primary"),
}
COLUMNS = [
    FitColumn(""),
    FitColumn("ticker", max_width=16),
    FitColumn("code", hide_below=110),
    FitColumn("file", share=1, min_width=16, shorten="path"),
    FitColumn("message", share=2, min_width=16),
]


def short_path(path: str) -> str:
    """A bar file's path without the ``data/`` every one of them starts with."""
    return path.removeprefix("data/")


def describe_finding(finding: Finding) -> Group:
    """The whole finding, for the pane under the table."""
    glyph = SEVERITY[finding.severity][0]
    about = " ".join(part for part in (finding.ticker, finding.interval) if part)
    head = f"{glyph} {finding.severity.label} · {finding.code}" + (f" · {about}" if about else "")
    rows = [("file", finding.path)] if finding.path else []
    return labelled(head, [*rows, ("problem", finding.message), ("to do", finding.advice)])


class CheckProgress(Message):
    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CheckProgress)


class CheckFinished(Message):
    def __init__(self, report: IntegrityReport | None, error: str | None = None) -> None:
        super().__init__()
        self.report, self.error = report, error


class IntegrityScreen(Screen):
    HELP = """# Integrity

Every bar file checked against the format: readable (footer, truncation, zero bytes),
schema, duplicate timestamps, rows outside their partition's month, `stock` not matching
the file, time zones, price sanity; stray temp and partial files; and the metadata
(tickers without data, data without tickers, storage blocks pointing nowhere).

`c` runs a check (unchanged files come from the index and cache, so a second run is
fast); `escape` cancels it. `Q` moves the selected finding's file into quarantine, after
a confirmation: only errors about one file can be quarantined. `S` opens the Query
screen (8) on the selected finding's file: its findings and what the index knows of it.
"""
    BINDINGS = [
        Binding("c", "run_check", "Check"),
        Binding("escape", "cancel_check", "Cancel"),
        Binding("Q", "quarantine", "Quarantine file", key_display="Q"),
        Binding("S", "query", "Query this file (SQL)", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.findings: list[Finding] = []
        self.report: IntegrityReport | None = None
        self.cancel_token: CancelToken | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("no check run yet: press c", id="integrity-summary", markup=False)
        yield ProgressBar(id="integrity-progress", show_eta=True)
        yield FittedTable(COLUMNS, id="integrity-table")
        yield Static("", id="integrity-detail", classes="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ProgressBar).display = False
        self.watch(self.app, "health", self.show_last_check)

    def show_last_check(self, state) -> None:
        """Until a check runs here, the summary of the last one (the health refresh has it)."""
        if self.report is not None or self.cancel_token is not None:
            return
        summary = state.report.integrity if state and state.report else None
        if summary is None:
            return
        glyph = "✗" if summary.open_errors else "✓"
        self.query_one("#integrity-summary", Static).update(
            f"{glyph} last check {human_age(self.app.now() - summary.checked_at)} ago: "
            f"{summary.open_errors} open error(s), {summary.warnings} warning(s) · "
            "c: check and list"
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_check":
            return self.cancel_token is not None  # shown in the footer while a check runs
        return True

    def action_run_check(self) -> None:
        if self.cancel_token is not None:
            return
        self.cancel_token = CancelToken()
        bar = self.query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self.query_one("#integrity-summary", Static).update("checking…")
        self.refresh_bindings()
        self.run_check(self.cancel_token)

    def action_cancel_check(self) -> None:
        if self.cancel_token is not None:
            self.cancel_token.cancel()

    @work(thread=True, exclusive=True, exit_on_error=False, group="integrity-check")
    def run_check(self, token: CancelToken) -> None:
        workspace = Workspace(self.app.workspace.root)
        try:
            report = self.app.in_engine_process(check)(
                workspace,
                progress=lambda p: self.post_message(CheckProgress(p)),
                cancel=token,
                clock=self.app.clock,
            )
            save_report(workspace.root, report)
        except JobCancelled:
            self.post_message(CheckFinished(None, "check cancelled; files read so far are kept"))
            return
        except ParqctlError as exc:
            self.post_message(CheckFinished(None, exc.one_line()))
            return
        self.post_message(CheckFinished(report))

    def on_check_progress(self, message: CheckProgress) -> None:
        p = message.progress
        self.query_one(ProgressBar).update(total=p.total, progress=p.done)
        self.query_one("#integrity-summary", Static).update(
            f"{p.job}: {p.done:,}/{p.total:,} {p.unit}"
        )

    def on_check_finished(self, message: CheckFinished) -> None:
        self.cancel_token = None
        self.refresh_bindings()
        self.query_one(ProgressBar).display = False
        if message.report is None:
            self.query_one("#integrity-summary", Static).update(f"! {message.error}")
            return
        self.report = report = message.report
        self.findings = sorted(report.findings, key=lambda f: (-f.severity, f.code, f.path or ""))
        self.query_one(FittedTable).set_rows(
            [(str(i), self.row(finding)) for i, finding in enumerate(self.findings)]
        )
        if not self.findings:
            self.query_one("#integrity-detail", Static).update("✓ nothing to report")
        counts = report.counts()
        verdict = "✗" if report.errors else "✓"
        self.query_one("#integrity-summary", Static).update(
            f"{verdict} {counts.get('error', 0)} error(s), {counts.get('warning', 0)} warning(s), "
            f"{counts.get('info', 0)} info · {report.files:,} files, {report.rows_read:,} read, "
            f"{report.rows_cached:,} from cache · {report.elapsed_s:.1f} s"
        )
        self.app.refresh_health()

    def row(self, finding: Finding) -> list[str | Text]:
        glyph, colour = SEVERITY[finding.severity]
        where = " ".join(part for part in (finding.ticker, finding.interval) if part)
        return [
            Text(glyph, style=f"bold {getattr(self.app.current_theme, colour) or ''}"),
            where,
            finding.code,
            short_path(finding.path) if finding.path else "-",
            finding.message,
        ]

    def selected(self) -> Finding | None:
        key = self.query_one(FittedTable).selected_key()
        return None if key is None else self.findings[int(key)]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        finding = self.selected()
        if finding is not None:
            self.query_one("#integrity-detail", Static).update(describe_finding(finding))

    def action_query(self) -> None:
        """The Query screen on the selected finding's file: its findings and index record."""
        finding = self.selected()
        if finding is None or not finding.path:
            return
        from core.sql import prefill
        from screens.query import open_query

        open_query(self.app, prefill.finding_file(finding.path))

    def action_quarantine(self) -> None:
        finding = self.selected()
        if finding is None or self.report is None:
            return
        if (
            finding.scope is not Scope.FILE
            or finding.severity is not Severity.ERROR
            or not finding.path
        ):
            self.notify("only an error about one file can be quarantined", severity="warning")
            return
        body = (
            f"Move {finding.path}\ninto .parqctl/quarantine/ with a manifest (path, size, "
            f"sha256, reason, who, when).\n\nReason: {finding.code}: {finding.message}\n\n"
            "The collector stops seeing the file; 4 then u (Quarantine, Restore) puts it back."
        )
        self.app.push_screen(
            ConfirmScreen("Quarantine this file?", body, "Quarantine"),
            lambda ok: ok and self.quarantine_file(finding),
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="integrity-quarantine")
    def quarantine_file(self, finding: Finding) -> None:
        root = self.app.workspace.root
        checked = self.report.checked_stats.get(finding.path) if self.report else None
        try:
            st = os.stat(root / finding.path)
            if checked is not None and (st.st_size, st.st_mtime_ns) != checked:
                raise ParqctlError(
                    f"{finding.path} changed since it was checked", "run the check again"
                )
            with run_lock.hold(root, "parqctl console: quarantine add") as lock:
                entry = quarantine.add(
                    root,
                    root / finding.path,
                    f"integrity: {finding.code}: {finding.message}",
                    lock=lock,
                    finding=finding.as_dict(),
                )
        except (ParqctlError, FileNotFoundError) as exc:
            text = exc.one_line() if isinstance(exc, ParqctlError) else f"{finding.path} is gone"
            self.app.call_from_thread(self.notify, text, severity="error", timeout=10)
            return
        self.app.call_from_thread(self.notify, f"quarantined {finding.path} as {entry.id}")
