"""The heatmap grid: tickers down, time buckets across, drawn line by line.

Only the visible rows are ever turned into segments (``render_line`` returns a ``Strip``
per screen line), so 5,000 tickers x 10 years scroll as fast as 50. The label column and
the date header stay in place while the cells scroll under them. A partial cell is shaded
by how much of it is there, so a one-session gap and a fifteen-session one differ at
every zoom. The colours of the states are in themes/parqctl.tcss.
"""

from __future__ import annotations

from datetime import date

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.events import MouseScrollDown, MouseScrollUp, Resize
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from core.availability.heatmap import NO_ISSUE, CellState, Heatmap

# A glyph per state, so colour is never the only signal.
GLYPHS = {
    CellState.COMPLETE: "█",
    CellState.PARTIAL: "▒",
    CellState.MISSING: "×",
    CellState.OUTSIDE: "·",
    CellState.NOT_EXPECTED: " ",
    CellState.CONFIRMED_EMPTY: "∅",
    CellState.UNREADABLE: "!",
    CellState.QUARANTINED: "⊘",
    CellState.NO_BARS: "○",
}
# Partial cells by the share of their bars present: at least 90%, at least 50%, less.
PARTIAL_SHADES = ((0.9, "▓"), (0.5, "▒"), (0.0, "░"))
STATE_CLASS = {
    CellState.COMPLETE: "heatmap--complete",
    CellState.PARTIAL: "heatmap--partial",
    CellState.MISSING: "heatmap--missing",
    CellState.OUTSIDE: "heatmap--outside",
    CellState.NOT_EXPECTED: "heatmap--not-expected",
    CellState.CONFIRMED_EMPTY: "heatmap--confirmed-empty",
    CellState.UNREADABLE: "heatmap--unreadable",
    CellState.QUARANTINED: "heatmap--quarantined",
    CellState.NO_BARS: "heatmap--no-bars",
}
HEADER_ROWS = 1
# Partial cells drawn with their shade: a state code of its own per shade, past CellState.
_SHADE_CODE = max(CellState) + 1
_SHADE_FLOORS = np.array([floor for floor, _ in PARTIAL_SHADES])  # the first one reached


def partial_glyph(coverage: float) -> str:
    """The shade of a partial cell with this share of its bars present."""
    return next(glyph for floor, glyph in PARTIAL_SHADES if coverage >= floor)


def bucket_label(day: date, zoom: str) -> str:
    if zoom == "month":
        return f"{day:%Y-%m}"
    return f"{day:%Y-%m-%d}"


def label_width(tickers: list[str]) -> int:
    """The ticker column: the longest name, 6 to 12 cells, and a space."""
    return min(max(max((len(t) for t in tickers), default=6), 6), 12) + 1


class HeatmapGrid(Widget, can_focus=True):
    COMPONENT_CLASSES = {
        *STATE_CLASS.values(),
        "heatmap--label",
        "heatmap--header",
        "heatmap--cursor",
    }
    DEFAULT_CSS = """
    HeatmapGrid { height: 1fr; width: 1fr; }
    """
    BINDINGS = [
        Binding("up,k", "move(-1, 0)", "Up", show=False),
        Binding("down,j", "move(1, 0)", "Down", show=False),
        Binding("left,h", "move(0, -1)", "Left", show=False),
        Binding("right,l", "move(0, 1)", "Right", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "edge(-1)", "First ticker", show=False),
        Binding("end,G", "edge(1)", "Last ticker", show=False),
        Binding("ctrl+left", "move(0, -10)", "Left 10", show=False),
        Binding("ctrl+right", "move(0, 10)", "Right 10", show=False),
    ]

    cursor_row: reactive[int] = reactive(0)
    cursor_col: reactive[int] = reactive(0)

    class CursorMoved(Message):
        """The cell under the cursor changed; carries what the side panel needs."""

        def __init__(
            self,
            ticker: str | None,
            bucket: date | None,
            state: int | None,
            coverage: float | None = None,
        ) -> None:
            super().__init__()
            self.ticker, self.bucket, self.state = ticker, bucket, state
            self.coverage = coverage  # the share of the cell's bars present

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, HeatmapGrid.CursorMoved)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.heatmap: Heatmap | None = None
        self.top_row = 0
        self.left_col = 0
        self.label_width = label_width([])

    # --- data ------------------------------------------------------------------------

    def show(
        self,
        heatmap: Heatmap,
        keep_ticker: str | None = None,
        keep_day: date | None = None,
        center: bool = False,
    ) -> None:
        """Display a new matrix, keeping the cursor on the same ticker and date if present;
        ``center`` scrolls that cell to the middle of the view (a jump, not a move)."""
        self.heatmap = heatmap
        self.label_width = label_width(heatmap.tickers)
        row = heatmap.tickers.index(keep_ticker) if keep_ticker in heatmap.tickers else 0
        col = self.column_of(keep_day) if keep_day is not None else len(heatmap.bucket_starts) - 1
        if center:
            self.top_row = max(row - self.visible_rows // 2, 0)
            self.left_col = max(col - self.visible_columns // 2, 0)
        self.set_cursor(row, col)
        self.refresh()

    def column_of(self, day: date) -> int:
        """The bucket holding ``day`` (clamped to the window)."""
        if self.heatmap is None or not len(self.heatmap.bucket_starts):
            return 0
        index = (
            int(np.searchsorted(self.heatmap.bucket_starts, np.datetime64(day, "D"), "right")) - 1
        )
        return min(max(index, 0), len(self.heatmap.bucket_starts) - 1)

    @property
    def rows(self) -> int:
        return len(self.heatmap.tickers) if self.heatmap else 0

    @property
    def columns(self) -> int:
        return len(self.heatmap.bucket_starts) if self.heatmap else 0

    @property
    def visible_rows(self) -> int:
        return max(self.size.height - HEADER_ROWS, 1)

    @property
    def visible_columns(self) -> int:
        return max(self.size.width - self.label_width, 1)

    def current(self) -> tuple[str | None, date | None, int | None]:
        if not self.rows or not self.columns:
            return None, None, None
        heatmap = self.heatmap
        return (
            heatmap.tickers[self.cursor_row],
            heatmap.bucket_starts[self.cursor_col].astype(date),
            int(heatmap.states[self.cursor_row, self.cursor_col]),
        )

    # --- movement --------------------------------------------------------------------

    def set_cursor(self, row: int, col: int) -> None:
        row = min(max(row, 0), max(self.rows - 1, 0))
        col = min(max(col, 0), max(self.columns - 1, 0))
        # A view that grew (the side panel hidden on a narrow terminal) is filled again.
        self.top_row = min(self.top_row, max(self.rows - self.visible_rows, 0))
        self.left_col = min(self.left_col, max(self.columns - self.visible_columns, 0))
        if row < self.top_row:
            self.top_row = row
        elif row >= self.top_row + self.visible_rows:
            self.top_row = row - self.visible_rows + 1
        if col < self.left_col:
            self.left_col = col
        elif col >= self.left_col + self.visible_columns:
            self.left_col = col - self.visible_columns + 1
        self.cursor_row, self.cursor_col = row, col
        coverage = float(self.heatmap.coverage[row, col]) if self.rows and self.columns else None
        self.post_message(self.CursorMoved(*self.current(), coverage))
        self.refresh()

    def action_move(self, rows: int, cols: int) -> None:
        self.set_cursor(self.cursor_row + rows, self.cursor_col + cols)

    def action_page(self, direction: int) -> None:
        step = self.visible_rows * direction
        self.top_row = min(max(self.top_row + step, 0), max(self.rows - self.visible_rows, 0))
        self.set_cursor(self.cursor_row + step, self.cursor_col)

    def action_edge(self, direction: int) -> None:
        self.set_cursor(0 if direction < 0 else self.rows - 1, self.cursor_col)

    def on_mouse_scroll_down(self, event: MouseScrollDown) -> None:
        self.action_move(3, 0)

    def on_mouse_scroll_up(self, event: MouseScrollUp) -> None:
        self.action_move(-3, 0)

    def on_resize(self, event: Resize) -> None:
        self.set_cursor(self.cursor_row, self.cursor_col)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return self.rows + HEADER_ROWS

    # --- drawing ---------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if self.heatmap is None:
            return Strip.blank(width, self.rich_style)
        if y < HEADER_ROWS:
            return self._header_line(width)
        row = self.top_row + y - HEADER_ROWS
        if row >= self.rows:
            return Strip.blank(width, self.rich_style)
        return self._row_line(row, width)

    def _header_line(self, width: int) -> Strip:
        """Bucket dates every few columns, aligned to the cells below."""
        style = self.get_component_rich_style("heatmap--header")
        text = [" "] * self.visible_columns
        starts = self.heatmap.bucket_starts
        label_len = len(bucket_label(date(2000, 1, 1), self.heatmap.zoom)) + 1
        col = self.left_col
        while col < min(self.left_col + self.visible_columns, len(starts)):
            label = bucket_label(starts[col].astype(date), self.heatmap.zoom)
            offset = col - self.left_col
            if offset + len(label) <= self.visible_columns:
                text[offset : offset + len(label)] = label
            col += label_len
        line = " " * self.label_width + "".join(text)
        return Strip([Segment(line[:width].ljust(width), style)], width)

    def _row_line(self, row: int, width: int) -> Strip:
        heatmap = self.heatmap
        cursor_style = self.get_component_rich_style("heatmap--cursor")
        styles = {state: self.get_component_rich_style(name) for state, name in STATE_CLASS.items()}
        on_cursor_row = row == self.cursor_row
        label = heatmap.tickers[row][: self.label_width - 1].ljust(self.label_width)
        issue = int(heatmap.issues[row])
        if on_cursor_row:
            label_style = cursor_style
        elif issue != NO_ISSUE:  # the name says it too, wherever the cells scrolled to
            label_style = styles[CellState(issue)]
        else:
            label_style = self.get_component_rich_style("heatmap--label")
        segments = [Segment(label, label_style)]
        window = slice(self.left_col, self.left_col + self.visible_columns)
        codes = heatmap.states[row, window].astype(np.int64)
        partial = codes == CellState.PARTIAL
        if partial.any():  # one code per shade, so that runs split where the shade does
            share = heatmap.coverage[row, window][partial]
            codes[partial] = _SHADE_CODE + np.argmax(share[:, None] >= _SHADE_FLOORS, axis=1)
        cursor = self.cursor_col - self.left_col if on_cursor_row else -1
        # Runs of equal state become one segment: a row is a handful of segments, not width.
        start = 0
        for i in range(1, len(codes) + 1):
            if i < len(codes) and codes[i] == codes[start] and i != cursor and i - 1 != cursor:
                continue
            code = int(codes[start])
            if code >= _SHADE_CODE:
                state, glyph = CellState.PARTIAL, PARTIAL_SHADES[code - _SHADE_CODE][1]
            else:
                state = CellState(code)
                glyph = GLYPHS[state]
            style = styles[state]
            if start == cursor:
                style += cursor_style
                if state is CellState.COMPLETE:  # a full block shows its colour only
                    style += Style(color=cursor_style.bgcolor)
            segments.append(Segment(glyph * (i - start), style))
            start = i
        return Strip(segments).extend_cell_length(width, self.rich_style).crop(0, width)
