"""Quarantine: what was moved aside, why and when; restore it, or purge it for good."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Group
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from core.errors import ParqctlError
from core.integrity import quarantine
from core.integrity.quarantine import QuarantineEntry
from core.safety import run_lock
from tui.text import brief_path, human_age, human_bytes
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.fitted_table import FitColumn, FittedTable, labelled

CONDITION_GLYPH = {"ok": "✓", "missing": "✗"}
COLUMNS = [
    FitColumn(""),
    FitColumn("age"),
    FitColumn("size"),
    FitColumn("original path", share=2, min_width=12, shorten="middle"),
    FitColumn("reason", share=3, min_width=16),
    FitColumn("id", hide_below=150),
]


def describe_entry(entry: QuarantineEntry, now: float, root: Path) -> Group:
    """The whole record of one entry, for the pane under the table."""
    who = entry.who or {}
    by = " on ".join(str(part) for part in (who.get("user"), who.get("host")) if part)
    head = (
        f"{CONDITION_GLYPH.get(entry.condition, '!')} {entry.id} · {entry.condition} · "
        f"{human_bytes(entry.size)}"
    )
    return labelled(
        head,
        [
            (
                "when",
                f"{entry.when} ({human_age(now - entry.quarantined_at)} ago)"
                + (f" by {by}" if by else ""),
            ),
            ("from", entry.original_path),
            ("kept", os.path.relpath(entry.stored_path, root)),
            ("sha256", entry.sha256),
            ("why", entry.reason),
        ],
    )


class EntriesLoaded(Message):
    def __init__(self, entries: list[QuarantineEntry], note: str | None = None) -> None:
        super().__init__()
        self.entries, self.note = entries, note


class QuarantineScreen(Screen):
    HELP = """# Quarantine

Files moved aside by `parqctl quarantine add` or `parqctl integrity --quarantine`, each
with a manifest: where it came from, its size and sha256, why, who and when. Nothing
here is deleted unless you purge it, and purge asks first, naming the file.

- `u` restores the selected file to where it was (refused if that path is taken now).
- `p` purges it: the only way anything leaves the quarantine.
- `y` copies the path of the file as it is kept in quarantine to the clipboard.

Paths are shown as `stocks_1d/AAPL/2024-01` (interval, ticker, partition's month); the
pane below has the whole path.
"""
    BINDINGS = [
        Binding("r", "refresh", "Refresh"),
        Binding("u", "restore", "Restore"),
        Binding("p", "purge", "Purge"),
        Binding("y", "copy_path", "Copy path", show=False),  # in ? and the palette
    ]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[str, QuarantineEntry] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="quarantine-summary", markup=False)
        yield FittedTable(COLUMNS, id="quarantine-table")
        yield Static("", id="quarantine-detail", classes="detail")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    def action_refresh(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="quarantine-list")
    def load(self, note: str | None = None) -> None:
        self.post_message(EntriesLoaded(quarantine.entries(self.app.workspace.root), note))

    def on_entries_loaded(self, message: EntriesLoaded) -> None:
        if message.note:
            self.notify(message.note)
        self.entries = {entry.id: entry for entry in message.entries}
        now = self.app.now()
        self.query_one(FittedTable).set_rows(
            [
                (
                    entry.id,
                    [
                        CONDITION_GLYPH.get(entry.condition, "!"),
                        human_age(now - entry.quarantined_at),
                        human_bytes(entry.size),
                        brief_path(entry.original_path),
                        entry.reason,
                        entry.id,
                    ],
                )
                for entry in message.entries
            ]
        )
        if not message.entries:
            self.query_one("#quarantine-detail", Static).update("")
        total = sum(e.size for e in message.entries)
        pending = sum(e.pending for e in message.entries)
        self.query_one("#quarantine-summary", Static).update(
            f"{len(message.entries)} file(s), {human_bytes(total)}"
            + (
                f" · ! {pending} interrupted move(s): run `parqctl quarantine list` to finish them"
                if pending
                else ""
            )
            if message.entries
            else "✓ nothing in quarantine"
        )

    def selected(self) -> QuarantineEntry | None:
        key = self.query_one(FittedTable).selected_key()
        return None if key is None else self.entries.get(key)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        entry = self.selected()
        if entry is not None:
            self.query_one("#quarantine-detail", Static).update(
                describe_entry(entry, self.app.now(), self.app.workspace.root)
            )

    def action_copy_path(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        path = str(entry.stored_path)
        self.app.copy_to_clipboard(path)
        self.notify(f"copied {path}", title="Clipboard")

    def action_restore(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        body = (
            f"Move {entry.stored_path}\nback to {entry.original_path}\n\n"
            f"{human_bytes(entry.size)}, sha256 {entry.sha256[:16]}…, quarantined "
            f"{entry.when} because: {entry.reason}\n\n"
            "Refused if that path is taken now. The collector will read the file again."
        )
        self.app.push_screen(
            ConfirmScreen(f"Restore {entry.id}?", body, "Restore"),
            lambda ok: ok and self.change(entry.id, "restore"),
        )

    def action_purge(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        body = (
            f"Delete for good:\n  {entry.stored_path}\n  (was {entry.original_path}, "
            f"{human_bytes(entry.size)}, sha256 {entry.sha256[:16]}…)\n\n"
            "This cannot be undone. The manifest goes too; the audit log keeps the record."
        )
        self.app.push_screen(
            ConfirmScreen(f"Purge {entry.id}?", body, "Purge"),
            lambda ok: ok and self.change(entry.id, "purge"),
        )

    # Its own group: the listing started when the dialog closes must not cancel it.
    @work(thread=True, exclusive=True, exit_on_error=False, group="quarantine-change")
    def change(self, entry_id: str, what: str) -> None:
        root = self.app.workspace.root
        try:
            with run_lock.hold(root, f"parqctl console: quarantine {what}") as lock:
                if what == "restore":
                    quarantine.restore(root, entry_id, lock=lock)
                else:
                    quarantine.purge(root, [entry_id], lock=lock)
        except ParqctlError as exc:
            self.app.call_from_thread(self.notify, exc.one_line(), severity="error", timeout=10)
            self.load()
            return
        done = "restored" if what == "restore" else "purged"
        self.load(note=f"{entry_id} {done}")
