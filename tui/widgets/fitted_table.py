"""A row table whose columns fit the terminal's width, for lists with long paths and text.

Narrow columns (a glyph, an age, a size, a ticker) keep the width of their content; the
wide ones (a path, a message) share what is left, so the last column is never pushed off
screen at 80 columns. A value too long for its column is shortened with an ellipsis (a
path in the middle, keeping its file name); the screen shows the whole row in a detail
pane below the table.

``/`` (the App's filter) keeps the rows whose text matches (core.patterns: a substring or
a glob); the filter and the rows it leaves are shown above the table, and ``escape``
clears it before it does anything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.events import Resize
from textual.widgets import DataTable

from core.patterns import matcher
from tui.advice import console_wording

ELLIPSIS = "…"


def shorten_end(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, with an ellipsis at the end if anything was cut."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    return set_cell_size(text, width - 1) + ELLIPSIS


def _tail(text: str, width: int) -> str:
    """The longest end of ``text`` that fits in ``width`` cells."""
    taken, used = len(text), 0
    while taken > 0 and used + cell_len(text[taken - 1]) <= width:
        taken -= 1
        used += cell_len(text[taken])
    return text[taken:]


def shorten_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells in the middle, keeping more of its end."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    tail = (width - 1) * 3 // 5
    head = width - 1 - tail
    return set_cell_size(text, head).rstrip() + ELLIPSIS + _tail(text, width - 1 - head)


def shorten_path(path: str, width: int) -> str:
    """A /-separated path in ``width`` cells: its first part, an ellipsis and as many of
    its last parts as fit (``legacy/…/AAPL.parquet``); a file name too long even for that
    is cut in the middle."""
    if cell_len(path) <= width:
        return path
    parts = path.split("/")
    if len(parts) > 2:
        head = f"{parts[0]}/{ELLIPSIS}"
        tail = ""
        for part in reversed(parts[1:]):
            candidate = f"/{part}{tail}"
            if cell_len(head + candidate) > width:
                break
            tail = candidate
        if tail:
            return head + tail
    return shorten_middle(parts[-1], width)


def labelled(head: str, rows: Sequence[tuple[str, str]]) -> Group:
    """A detail pane's content: a heading line, then label / value rows whose values wrap
    under themselves."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, Text(console_wording(value)))  # keys, not CLI commands
    return Group(Text(head), grid)


SHORTEN = {"end": shorten_end, "middle": shorten_middle, "path": shorten_path}


@dataclass(frozen=True)
class FitColumn:
    """``share`` 0: as wide as its content, at most ``max_width``; else a share of the
    width the narrow columns leave (no more than its content needs), at least
    ``min_width``. A column is left out when the table is narrower than ``hide_below``."""

    label: str
    share: int = 0
    min_width: int = 4
    max_width: int = 40
    shorten: str = "end"  # "end", "middle" or "path"
    hide_below: int = 0


Cell = str | Text


class FittedTable(DataTable):
    """A row-cursor DataTable laid out again whenever its width, its rows or its filter
    change."""

    DEFAULT_CSS = """
    FittedTable { height: 1fr; width: 1fr; overflow-x: hidden; }
    FittedTable.-filtered { border-top: solid $accent; border-title-color: $accent; }
    """
    BINDINGS = [Binding("escape", "clear_filter", "Clear the filter", show=False)]

    def __init__(self, columns: Sequence[FitColumn], **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.fit_columns = list(columns)
        self.fit_rows: list[tuple[str, Sequence[Cell]]] = []
        self.shown_rows: list[tuple[str, Sequence[Cell]]] = []
        self.filter_pattern = ""
        self._laid_out_width = -1

    def set_rows(self, rows: Sequence[tuple[str, Sequence[Cell]]]) -> None:
        """Replace the rows (key, cells); the cursor stays on the same key if it is still
        there."""
        keep = self.selected_key()
        self.fit_rows = list(rows)
        self._lay_out(keep)

    def set_filter(self, pattern: str) -> None:
        """Show only the rows whose cells match ``pattern`` ("" shows them all)."""
        keep = self.selected_key()
        self.filter_pattern = pattern.strip()
        self._lay_out(keep)

    def selected_key(self) -> str | None:
        if not self.row_count or self.cursor_row >= len(self.shown_rows):
            return None
        return self.shown_rows[self.cursor_row][0]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Without a filter, escape goes on to the screen (stop a job) and the App (back).
        return bool(self.filter_pattern) if action == "clear_filter" else True

    def action_clear_filter(self) -> None:
        self.set_filter("")

    def on_resize(self, event: Resize) -> None:
        if event.size.width != self._laid_out_width:
            self._lay_out(self.selected_key())

    def column_widths(self, width: int) -> list[int | None]:
        """The width of each column at a table ``width`` cells wide; None: left out."""
        shown = [c.hide_below <= width for c in self.fit_columns]
        natural = [
            min(
                max([cell_len(c.label), *(_cell_len(row[i]) for _, row in self.fit_rows)]),
                c.max_width if c.share == 0 else width,
            )
            for i, c in enumerate(self.fit_columns)
        ]
        # The vertical scrollbar's room is kept, so the layout does not change with it.
        padding = 2 * self.cell_padding * sum(shown)
        room = width - self.styles.scrollbar_size_vertical - padding
        widths: list[int | None] = [
            (natural[i] if c.share == 0 else 0) if shown[i] else None
            for i, c in enumerate(self.fit_columns)
        ]
        room -= sum(w for w in widths if w)
        flexible = [i for i, c in enumerate(self.fit_columns) if c.share and shown[i]]
        # A wide column whose content needs less than its share gets only what it needs.
        while flexible:
            shares = sum(self.fit_columns[i].share for i in flexible)
            small = [
                i for i in flexible if natural[i] <= room * self.fit_columns[i].share // shares
            ]
            if not small:
                for i in flexible:
                    column = self.fit_columns[i]
                    widths[i] = max(room * column.share // shares, column.min_width)
                widths[flexible[-1]] += max(room - sum(widths[i] for i in flexible), 0)
                break
            for i in small:
                widths[i] = max(natural[i], self.fit_columns[i].min_width)
                room -= widths[i]
                flexible.remove(i)
        return widths

    def _lay_out(self, keep: str | None) -> None:
        wanted = matcher(self.filter_pattern)
        self.shown_rows = [
            row for row in self.fit_rows if wanted(" ".join(_plain(c) for c in row[1]))
        ]
        self.set_class(bool(self.filter_pattern), "-filtered")
        self.border_title = (
            f"/{self.filter_pattern} · {len(self.shown_rows):,} of {len(self.fit_rows):,} "
            "rows · escape clears"
            if self.filter_pattern
            else None
        )
        width = self.size.width
        if width <= 0:
            return
        self._laid_out_width = width
        widths = self.column_widths(width)
        self.clear(columns=True)
        for column, column_width in zip(self.fit_columns, widths, strict=True):
            if column_width is not None:
                self.add_column(column.label, width=column_width)
        keys = []
        for row_key, cells in self.shown_rows:
            shown = [
                _fit(cell, column_width, column.shorten)
                for cell, column, column_width in zip(cells, self.fit_columns, widths, strict=True)
                if column_width is not None
            ]
            self.add_row(*shown, key=row_key)
            keys.append(row_key)
        if keep in keys:
            self.move_cursor(row=keys.index(keep), animate=False)


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _cell_len(cell: Cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(cell)


def _fit(cell: Cell, width: int, how: str) -> Text:
    """A cell as Text (a str is not read as markup: paths and messages hold brackets)."""
    if isinstance(cell, Text):
        if cell.cell_len > width:
            cell = cell.copy()
            cell.truncate(width, overflow="ellipsis")
        return cell
    return Text(SHORTEN[how](cell, width), no_wrap=True, end="")
