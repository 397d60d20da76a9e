"""Audit log: who did what to the workspace and when, newest first; filter by command
and outcome; Enter shows a whole record in a pane under the list."""

from __future__ import annotations

import json

from rich.console import Group
from rich.text import Text
from textual import work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from core.safety import audit
from core.safety.audit import AuditPage, AuditRecord
from tui.text import human_age, human_bytes, printable
from tui.widgets.fitted_table import FitColumn, FittedTable, labelled

# The newest records the screen reads; the CLI's --since/--limit reach further back.
RECORDS_READ = 5000
GOOD = {"ok", "passed", "done"}
BAD = {"failed", "refused", "error", "lost"}
COLUMNS = [
    FitColumn(""),
    FitColumn("age"),
    FitColumn("who", max_width=24, hide_below=100),
    FitColumn("command", max_width=28),
    FitColumn("outcome", max_width=12),
    FitColumn("details", share=1, min_width=12),
]


def outcome_glyph(record: AuditRecord) -> tuple[str, str]:
    """(glyph, theme colour) of a record's outcome; a malformed line is ``?``."""
    if record.raw is None:
        return "?", "warning"
    if record.result in GOOD:
        return "✓", "success"
    if record.result in BAD:
        return "✗", "error"
    return "!", "warning"


def who(record: AuditRecord) -> str:
    return "@".join(part for part in (record.field("user"), record.field("host")) if part)


def details_line(record: AuditRecord) -> str:
    if record.raw is None:
        return f"{record.problem}: {record.text}"
    return " ".join(f"{key}={value}" for key, value in record.details.items())


def describe_record(record: AuditRecord, now: float) -> Group:
    """A whole record: who, what, when, the result and every detail."""
    glyph, _ = outcome_glyph(record)
    if record.raw is None:
        return labelled(
            f"? byte {record.offset:,}: not a record",
            [("problem", record.problem or ""), ("line", printable(record.text))],
        )
    moment = record.when
    when = record.field("ts") + (
        f" ({human_age(now - moment.timestamp())} ago)" if moment is not None else ""
    )
    pid = record.field("pid")
    rows = [
        ("who", printable(who(record) + (f" (pid {pid})" if pid else ""))),
        ("what", printable(record.action)),
        ("when", printable(when)),
        ("result", printable(record.result)),
    ]
    for key, value in record.details.items():
        shown = value if isinstance(value, str) else json.dumps(value, default=str, indent=1)
        rows.append((printable(str(key)), printable(shown, lines=True)))
    return labelled(f"{glyph} {printable(record.action)} · {printable(record.result)}", rows)


class PageLoaded(Message):
    def __init__(self, page: AuditPage | None, error: str | None = None) -> None:
        super().__init__()
        self.page, self.error = page, error


class AuditScreen(Screen):
    AUTO_FOCUS = "#audit-table"
    HELP = """# Audit log

Every change parqctl made to the workspace, from `.parqctl/audit.jsonl`, newest first:
who (user@host), the command, its outcome (✓ ok, ✗ failed or refused, ! anything
else) and its details. A line that is not a record is shown as `?` with what is wrong.

- `Enter` shows the whole record under the list (it follows the cursor); `Enter` or
  `escape` hides it.
- `/` filters by command (a part of its name or of what ran it: `quarantine`, `lock`,
  `migrate`); `escape` clears the filter (then goes back).
- `o` shows one outcome at a time (each outcome in the log in turn, then all).
- `r` reads the log again.

The newest 5000 records are read; `parqctl audit --since 30d` reaches further back.
"""
    BINDINGS = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("o", "cycle_outcome", "Outcome"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.records: list[AuditRecord] = []
        self.page: AuditPage | None = None
        self.text_filter = ""
        self.outcome: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading the audit log…", id="audit-summary", markup=False)
        yield Input(
            placeholder="command contains… (Enter applies, escape clears)", id="audit-filter"
        )
        yield FittedTable(COLUMNS, id="audit-table")
        yield Static("", id="audit-record", classes="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#audit-filter", Input).display = False
        record = self.query_one("#audit-record", Static)
        record.display = False
        record.styles.max_height = "60%"  # a whole record, not the usual few lines
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="audit-read")
    def load(self) -> None:
        try:
            page = audit.read_newest(self.app.workspace.root, limit=RECORDS_READ)
        except OSError as exc:  # UnsafeLinkError included: a link or FIFO in its place
            text = exc.one_line() if hasattr(exc, "one_line") else str(exc)
            self.post_message(PageLoaded(None, f"the audit log cannot be read: {text}"))
            return
        self.post_message(PageLoaded(page))

    def on_page_loaded(self, message: PageLoaded) -> None:
        if message.page is None:
            self.query_one("#audit-summary", Static).update(f"! {message.error}")
            return
        self.page = message.page
        self.render_rows()

    def outcomes(self) -> list[str]:
        if self.page is None:
            return []
        return sorted({r.result for r in self.page.records if r.raw is not None})

    def matches(self, record: AuditRecord) -> bool:
        if self.outcome is not None and (record.raw is None or record.result != self.outcome):
            return False
        if not self.text_filter:
            return True
        haystack = " ".join((record.action, record.field("command"), record.text)).lower()
        return self.text_filter.lower() in haystack

    def render_rows(self) -> None:
        page = self.page
        if page is None:
            return
        self.records = [r for r in page.records if self.matches(r)]
        now = self.app.now()
        rows = []
        for record in self.records:
            glyph, colour = outcome_glyph(record)
            moment = record.when
            rows.append(
                (
                    str(record.offset),
                    [
                        Text(glyph, style=f"bold {getattr(self.app.current_theme, colour) or ''}"),
                        human_age(now - moment.timestamp()) if moment else "?",
                        Text(printable(who(record))),
                        Text(printable(record.action or "?")),
                        Text(printable(record.result)),
                        Text(printable(details_line(record))),
                    ],
                )
            )
        self.query_one(FittedTable).set_rows(rows)
        self.show_record()
        malformed = sum(r.raw is None for r in page.records)
        parts = [
            f"{len(page.records):,} record(s), newest first, of a {human_bytes(page.size)} log"
            if page.records
            else "no audit records yet: parqctl writes one for every change it makes"
        ]
        if not page.complete:
            parts.append(f"the newest {RECORDS_READ:,} read")
        if malformed:
            parts.append(f"? {malformed} line(s) not records")
        if self.text_filter or self.outcome:
            shown = [f"command ~ {self.text_filter!r}"] if self.text_filter else []
            shown += [f"outcome {self.outcome}"] if self.outcome else []
            parts.append(f"showing {len(self.records):,}: {', '.join(shown)}")
        self.query_one("#audit-summary", Static).update(printable(" · ".join(parts)))

    def selected(self) -> AuditRecord | None:
        table = self.query_one(FittedTable)
        key = table.selected_key()
        if key is None:
            return None
        return next((r for r in self.records if str(r.offset) == key), None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        pane = self.query_one("#audit-record", Static)
        pane.display = not pane.display and self.selected() is not None
        self.show_record()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_record()

    def show_record(self) -> None:
        """The whole selected record in the pane under the list, while it is open."""
        pane = self.query_one("#audit-record", Static)
        record = self.selected()
        if record is None:
            pane.display = False
        elif pane.display:
            pane.update(describe_record(record, self.app.now()))

    def action_filter(self) -> None:
        prompt = self.query_one("#audit-filter", Input)
        prompt.display = True
        prompt.value = self.text_filter
        # Now, not after this key: keys typed right after `/` must reach the prompt.
        self.set_focus(prompt)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.text_filter = event.value.strip()
        event.input.display = False
        self.set_focus(self.query_one(FittedTable))
        self.render_rows()

    def action_clear_filter(self) -> None:
        """Escape: closes the prompt, else hides the record, else clears the filters,
        else is left to the app (back to the previous screen)."""
        prompt = self.query_one("#audit-filter", Input)
        if prompt.display:
            prompt.display = False
            self.set_focus(self.query_one(FittedTable))
            return
        pane = self.query_one("#audit-record", Static)
        if pane.display:
            pane.display = False
            return
        if self.text_filter or self.outcome:
            self.text_filter, self.outcome = "", None
            self.render_rows()
        else:
            raise SkipAction()

    def action_cycle_outcome(self) -> None:
        steps: list[str | None] = [None, *self.outcomes()]
        at = steps.index(self.outcome) if self.outcome in steps else 0
        self.outcome = steps[(at + 1) % len(steps)]
        self.render_rows()
