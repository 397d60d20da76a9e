"""Integrity: the last check's findings grouped by (code, ticker, interval), expanded on
Enter, filtered by severity; run a check; quarantine a file, a group or every error."""

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
from core.integrity import saved_findings
from core.integrity.check import IntegrityReport, check, save_report
from core.integrity.findings import Finding, Severity, last_summary
from core.integrity.saved_findings import FindingGroup, SavedFindings, group_findings
from core.jobs import CancelToken, JobCancelled, Progress
from core.safety import run_lock
from core.store.workspace import Workspace
from tui.text import brief_path, human_age
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.fitted_table import FitColumn, FittedTable, labelled

SEVERITY = {
    Severity.ERROR: ("✗", "error"),
    Severity.WARNING: ("!", "warning"),
    Severity.INFO: ("·", "primary"),
}
QUARANTINED_GLYPH = "⊘"
# The severity filter's steps, in the order `f` goes through them.
FILTERS: tuple[Severity | None, ...] = (None, Severity.ERROR, Severity.WARNING, Severity.INFO)
# An expanded group lists this many files; the CLI's --json lists every one.
EXPANDED_ROWS = 500
SHOWN_IN_DETAIL = 5
COLUMNS = [
    FitColumn(""),
    FitColumn("ticker", max_width=16),
    FitColumn("code", hide_below=110),
    FitColumn("file", share=1, min_width=16, shorten="middle"),
    FitColumn("message", share=2, min_width=16),
]


def describe_finding(finding: Finding, quarantined: bool = False) -> Group:
    """The whole finding, for the pane under the table."""
    glyph = QUARANTINED_GLYPH if quarantined else SEVERITY[finding.severity][0]
    about = " ".join(part for part in (finding.ticker, finding.interval) if part)
    head = f"{glyph} {finding.severity.label} · {finding.code}" + (f" · {about}" if about else "")
    if quarantined:
        head += " · quarantined"
    rows = [("file", finding.path)] if finding.path else []
    return labelled(head, [*rows, ("problem", finding.message), ("to do", finding.advice)])


def describe_group(group: FindingGroup, quarantined: int) -> Group:
    """A group of findings: what they share, how many, and the first few files."""
    glyph = SEVERITY[group.severity][0]
    about = " ".join(part for part in (group.ticker, group.interval) if part)
    head = (
        f"{glyph} {group.severity.label} · {group.code} · {about} · {len(group.findings)} findings"
    )
    paths = [f.path for f in group.findings if f.path]
    listed = ", ".join(brief_path(p) for p in paths[:SHOWN_IN_DETAIL])
    if len(paths) > SHOWN_IN_DETAIL:
        listed += f" and {len(paths) - SHOWN_IN_DETAIL:,} more (Enter lists them)"
    rows = [("files", listed)] if paths else []
    if quarantined:
        rows.append(("moved", f"{quarantined} of them quarantined"))
    return labelled(head, [*rows, ("problem", group.first.message), ("to do", group.first.advice)])


def common_dir(paths: list[str]) -> str:
    """The deepest folder holding every one of ``paths`` (the ticker's partition folder)."""
    return os.path.dirname(paths[0]) if len(paths) == 1 else os.path.commonpath(paths)


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


class SavedLoaded(Message):
    """The last check's findings read at open (or the summary only, from older versions)."""

    def __init__(self, saved: SavedFindings | None, summary_line: str | None) -> None:
        super().__init__()
        self.saved, self.summary_line = saved, summary_line


class Quarantined(Message):
    def __init__(self, saved: SavedFindings, outcomes: list[dict]) -> None:
        super().__init__()
        self.saved, self.outcomes = saved, outcomes


class IntegrityScreen(Screen):
    AUTO_FOCUS = "#integrity-table"
    HELP = """# Integrity

Every bar file checked against the format: readable (footer, truncation, zero bytes),
schema, duplicate timestamps, rows outside their partition's month, `stock` not matching
the file, time zones, price sanity; stray temp and partial files; and the metadata
(tickers without data, data without tickers, storage blocks pointing nowhere).

The screen opens on the last check's findings (`c` checks again: unchanged files come
from the index and cache, so a second run is fast; `escape` cancels it). Findings with
the same code about the same ticker and interval are one row with a count (one per
partition file, say): `Enter` lists its files, `Enter` again folds them. `f` shows
errors only, then warnings, then info, then all. Files are shown as
`stocks_1d/AAPL/2024-01` (interval, ticker, partition's month); the pane below has the
whole path.

- `Q` moves the selected file (or every file of the selected group) into quarantine,
  after a confirmation: only errors about one file can be quarantined.
- `A` quarantines the files of every error, after a confirmation listing them.
- `y` copies the selected file's path (a group's folder) to the clipboard.
- `S` opens the Query screen (8) on the selected finding's file.

Quarantined files stay listed, marked ⊘, until the next check.
"""
    BINDINGS = [
        Binding("c", "run_check", "Check"),
        Binding("escape", "cancel_check", "Cancel"),
        Binding("f", "cycle_filter", "Severity"),
        Binding("Q", "quarantine", "Quarantine", key_display="Q"),
        Binding("A", "quarantine_all", "Quarantine all errors", key_display="A", show=False),
        Binding("y", "copy_path", "Copy path", show=False),  # in ? and the palette
        Binding("S", "query", "Query this file (SQL)", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.saved: SavedFindings | None = None
        self.about = ""  # which check the findings came from
        self.groups: list[FindingGroup] = []
        self.expanded: set[str] = set()
        self.severity: Severity | None = None
        self.cancel_token: CancelToken | None = None
        self.verdict = "no check run yet: press c"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.verdict, id="integrity-summary", markup=False)
        yield ProgressBar(id="integrity-progress", show_eta=True)
        yield FittedTable(COLUMNS, id="integrity-table")
        yield Static("", id="integrity-detail", classes="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ProgressBar).display = False
        self.load_saved()

    @property
    def findings(self) -> list[Finding]:
        return self.saved.findings if self.saved else []

    # --- loading and checking -----------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="integrity-saved")
    def load_saved(self) -> None:
        root = self.app.workspace.root
        saved = saved_findings.load(root)
        line = None
        if saved is None:
            summary = last_summary(root)
            if summary is not None:
                glyph = "✗" if summary.open_errors else "✓"
                line = (
                    f"{glyph} last check {human_age(self.app.now() - summary.checked_at)} ago: "
                    f"{summary.open_errors} open error(s), {summary.warnings} warning(s) · "
                    "c: check and list"
                )
        self.post_message(SavedLoaded(saved, line))

    def on_saved_loaded(self, message: SavedLoaded) -> None:
        if self.saved is not None or self.cancel_token is not None:
            return  # a check run here has (or will have) newer findings
        if message.saved is None:
            if message.summary_line:
                self.verdict = message.summary_line
                self.query_one("#integrity-summary", Static).update(self.verdict)
            return
        age = human_age(self.app.now() - message.saved.checked_at)
        self.show(message.saved, f"last check {age} ago")

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
        except (ParqctlError, OSError) as exc:
            text = exc.one_line() if isinstance(exc, ParqctlError) else f"check failed: {exc}"
            self.post_message(CheckFinished(None, text))
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
        report = message.report
        saved = SavedFindings(
            report.checked_at,
            report.findings,
            report.checked_stats,
            frozenset(q["path"] for q in report.quarantined),
        )
        self.show(
            saved,
            f"checked {report.files:,} files in {report.elapsed_s:.1f} s",
        )
        self.app.refresh_health()

    # --- the list -----------------------------------------------------------------------

    def show(self, saved: SavedFindings, about: str) -> None:
        """List ``saved``; ``about`` says which check it came from."""
        self.saved, self.about = saved, about
        self.groups = group_findings(saved.findings)
        counts = {s: 0 for s in Severity}
        for finding in saved.findings:
            counts[finding.severity] += 1
        moved = len(saved.quarantined)
        glyph = "✗" if saved.open_errors else "✓"
        self.verdict = (
            f"{glyph} {saved.open_errors} open error(s), {counts[Severity.WARNING]} warning(s), "
            f"{counts[Severity.INFO]} info in {len(self.groups)} group(s)"
            + (f", {moved} file(s) quarantined" if moved else "")
            + f" · {about}"
        )
        movable = len(saved.quarantinable())
        if movable:  # `A` is left out of the footer at 80 columns: said here instead
            self.verdict += f" · A quarantines {movable} file(s)"
        self.render_rows()

    def render_rows(self) -> None:
        summary = self.verdict
        if self.severity is not None:
            summary += f" · showing {self.severity.label} only (f)"
        self.query_one("#integrity-summary", Static).update(summary)
        rows: list[tuple[str, list[str | Text]]] = []
        for index, group in enumerate(self.groups):
            if self.severity is not None and group.severity is not self.severity:
                continue
            rows.append((f"g{index}", self.group_row(group)))
            if group.key in self.expanded:
                for position, finding in enumerate(group.findings[:EXPANDED_ROWS]):
                    rows.append((f"f{index}:{position}", self.finding_row(finding)))
                hidden = len(group.findings) - EXPANDED_ROWS
                if hidden > 0:
                    more = f"… {hidden:,} more: `parqctl integrity --json` lists every one"
                    rows.append((f"m{index}", ["", "", "", "", more]))
        self.query_one(FittedTable).set_rows(rows)
        if not rows:
            nothing = "✓ nothing to report" if self.severity is None else "nothing of this severity"
            self.query_one("#integrity-detail", Static).update(nothing if self.saved else "")

    def glyph(self, severity: Severity, quarantined: bool) -> Text:
        if quarantined:
            return Text(QUARANTINED_GLYPH, style="dim")
        glyph, colour = SEVERITY[severity]
        return Text(glyph, style=f"bold {getattr(self.app.current_theme, colour) or ''}")

    def group_row(self, group: FindingGroup) -> list[str | Text]:
        moved = all(self.saved.is_quarantined(f) for f in group.findings) if self.saved else False
        where = " ".join(part for part in (group.ticker, group.interval) if part)
        count = len(group.findings)
        if count == 1:
            file = brief_path(group.first.path) if group.first.path else "-"
        else:
            file = ("▾ " if group.key in self.expanded else "▸ ") + f"{count:,} files"
        message = group.first.message
        if any(f.message != message for f in group.findings):
            message = f"{message} (and others)"
        return [self.glyph(group.severity, moved), where, group.code, file, message]

    def finding_row(self, finding: Finding) -> list[str | Text]:
        moved = self.saved.is_quarantined(finding) if self.saved else False
        glyph = self.glyph(finding.severity, moved)
        return [glyph, "", "", brief_path(finding.path) if finding.path else "-", finding.message]

    def selected_row(self) -> tuple[FindingGroup | None, Finding | None]:
        """The selected group, and the finding when a file row (or a group of one) is."""
        key = self.query_one(FittedTable).selected_key()
        if key is None or key.startswith("m"):
            return None, None
        if key.startswith("g"):
            group = self.groups[int(key[1:])]
            return group, group.first if len(group.findings) == 1 else None
        index, position = key[1:].split(":")
        group = self.groups[int(index)]
        return group, group.findings[int(position)]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        group, finding = self.selected_row()
        detail = self.query_one("#integrity-detail", Static)
        if finding is not None and self.saved is not None:
            detail.update(describe_finding(finding, self.saved.is_quarantined(finding)))
        elif group is not None and self.saved is not None:
            moved = sum(self.saved.is_quarantined(f) for f in group.findings)
            detail.update(describe_group(group, moved))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a group of several findings lists its files, or folds them."""
        key = self.query_one(FittedTable).selected_key()
        if key is None or not key.startswith("g"):
            return
        group = self.groups[int(key[1:])]
        if len(group.findings) > 1:
            self.expanded ^= {group.key}
            self.render_rows()

    def action_cycle_filter(self) -> None:
        self.severity = FILTERS[(FILTERS.index(self.severity) + 1) % len(FILTERS)]
        self.render_rows()

    # --- acting on the selection --------------------------------------------------------

    def action_copy_path(self) -> None:
        group, finding = self.selected_row()
        if finding is not None and finding.path:
            relative = finding.path
        elif group is not None and any(f.path for f in group.findings):
            relative = common_dir([f.path for f in group.findings if f.path])
        else:
            self.notify("this finding is about no file", severity="warning")
            return
        path = str(self.app.workspace.root / relative)
        self.app.copy_to_clipboard(path)
        self.notify(f"copied {path}", title="Clipboard")

    def action_query(self) -> None:
        """The Query screen on the selected finding's file: its findings and index record."""
        _, finding = self.selected_row()
        if finding is None or not finding.path:
            return
        from core.sql import prefill
        from screens.query import open_query

        open_query(self.app, prefill.finding_file(finding.path))

    def action_quarantine(self) -> None:
        group, finding = self.selected_row()
        if group is None or self.saved is None:
            return
        chosen = [finding] if finding is not None else list(group.findings)
        movable = self.saved.quarantinable()
        paths = sorted({f.path for f in chosen if f.path in movable})
        if not paths:
            self.notify(
                "only an error about one file can be quarantined (or it is already)",
                severity="warning",
            )
            return
        if len(paths) == 1:
            [path] = paths
            reasons = "; ".join(f"{f.code}: {f.message}" for f in movable[path])
            body = (
                f"Move {path}\ninto .parqctl/quarantine/ with a manifest (path, size, "
                f"sha256, reason, who, when).\n\nReason: {reasons}\n\n"
                "The collector stops seeing the file; 4 then u (Quarantine, Restore) puts it back."
            )
            title = "Quarantine this file?"
        else:
            body = self.moves_body(paths)
            title = f"Quarantine {len(paths)} files?"
        self.app.push_screen(
            ConfirmScreen(title, body, "Quarantine"),
            lambda ok: ok and self.quarantine_files(paths),
        )

    def action_quarantine_all(self) -> None:
        if self.saved is None:
            self.notify("no findings yet: press c to check", severity="warning")
            return
        paths = sorted(self.saved.quarantinable())
        if not paths:
            self.notify("no open error about a file: nothing to quarantine")
            return
        self.app.push_screen(
            ConfirmScreen(
                f"Quarantine the files of every error ({len(paths)})?",
                self.moves_body(paths),
                "Quarantine all",
            ),
            lambda ok: ok and self.quarantine_files(paths),
        )

    def moves_body(self, paths: list[str]) -> str:
        listed = "\n".join(f"  {brief_path(p)}" for p in paths[:SHOWN_IN_DETAIL])
        if len(paths) > SHOWN_IN_DETAIL:
            listed += f"\n  and {len(paths) - SHOWN_IN_DETAIL:,} more"
        return (
            f"Move these {len(paths)} files into .parqctl/quarantine/, each with a manifest "
            f"(path, size, sha256, reason, who, when):\n{listed}\n\n"
            "A file that changed since the check stays where it is. The collector stops "
            "seeing them; 4 then u (Quarantine, Restore) puts one back."
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="integrity-quarantine")
    def quarantine_files(self, paths: list[str]) -> None:
        root = self.app.workspace.root
        saved = self.saved
        if saved is None:
            return
        try:
            with run_lock.hold(root, "parqctl console: quarantine add") as lock:
                saved, outcomes = saved_findings.quarantine_errors(
                    root, saved, lock=lock, paths=paths
                )
        except (ParqctlError, OSError) as exc:
            text = exc.one_line() if isinstance(exc, ParqctlError) else str(exc)
            self.app.call_from_thread(self.notify, text, severity="error", timeout=10)
            return
        self.post_message(Quarantined(saved, outcomes))

    def on_quarantined(self, message: Quarantined) -> None:
        moved = [o for o in message.outcomes if "id" in o]
        skipped = [o for o in message.outcomes if "skipped" in o]
        self.show(message.saved, self.about)
        if len(moved) == 1:
            self.notify(f"quarantined {moved[0]['path']} as {moved[0]['id']}")
        elif moved:
            self.notify(f"quarantined {len(moved)} files")
        for item in skipped:
            self.notify(
                f"not quarantined {item['path']}: {item['skipped']}; check again (c)",
                severity="warning",
                timeout=10,
            )
        self.app.refresh_health()
