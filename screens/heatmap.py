"""The availability heatmap: which ticker has which trading sessions, at a glance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from core.coverage import coverage_grid
from core.errors import ParqctlError
from core.gaps import TickerAvailability, Window, interval_availability
from core.heatmap import SORTS, ZOOMS, CellState, Heatmap, HeatmapSource
from core.index import refresh_index
from core.jobs import Progress
from core.workspace import Workspace
from screens.heatmap_grid import GLYPHS, HeatmapGrid

MAX_GAPS_SHOWN = 12
LEGEND = (
    (CellState.COMPLETE, "$success", "complete"),
    (CellState.PARTIAL, "$warning", "partial"),
    (CellState.MISSING, "$error", "missing"),
    (CellState.OUTSIDE, "dim", "outside listed range"),
    (CellState.NOT_EXPECTED, "dim", "no session"),
)


@dataclass(frozen=True)
class IntervalData:
    """One interval's heatmap source and per-ticker availability, built once per load."""

    interval: str
    source: HeatmapSource
    tickers: dict[str, TickerAvailability]


class IntervalLoaded(Message):
    def __init__(self, data: IntervalData | None, intervals: list[str], error: str | None) -> None:
        super().__init__()
        self.data, self.intervals, self.error = data, intervals, error


class MatrixReady(Message):
    def __init__(self, heatmap: Heatmap, keep_ticker: str | None, keep_day: date | None) -> None:
        super().__init__()
        self.heatmap, self.keep_ticker, self.keep_day = heatmap, keep_ticker, keep_day


class IndexProgress(Message):
    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, IndexProgress)


def describe_ticker(
    info: TickerAvailability | None, ticker: str, bucket: date | None, state: int | None
) -> str:
    lines = [ticker]
    if state is not None and bucket is not None:
        lines.append(
            f"{GLYPHS[CellState(state)]} {bucket}: {CellState(state).name.lower().replace('_', ' ')}"
        )
    if info is None:
        return "\n".join([*lines, "no bars"])
    lines += [
        f"bars     {info.first} .. {info.last}",
        f"sessions {info.present_sessions:,}/{info.expected_sessions:,}",
        f"partial  {len(info.partial):,}",
    ]
    if info.unreadable:
        lines.append(f"✗ {len(info.unreadable)} unreadable file(s)")
    if not info.gaps:
        lines.append("✓ no gaps")
        return "\n".join(lines)
    lines.append(f"gaps     {len(info.gaps)} ({info.missing_sessions:,} sessions)")
    for gap in sorted(info.gaps, key=lambda g: g.end, reverse=True)[:MAX_GAPS_SHOWN]:
        span = f"{gap.start}" if gap.start == gap.end else f"{gap.start}..{gap.end:%m-%d}"
        if gap.recoverable_until is not None:
            fate = f"⏳ by {gap.recoverable_until}"
        elif gap.lost_sessions:
            fate = "✗ lost" if gap.status == "lost" else f"✗ {gap.lost_sessions} lost"
        else:
            fate = "✓ fetchable"
        lines.append(f" {span} {gap.sessions:>3} {fate}")
    if len(info.gaps) > MAX_GAPS_SHOWN:
        lines.append(f" … {len(info.gaps) - MAX_GAPS_SHOWN} older")
    return "\n".join(lines)


class HeatmapScreen(Screen):
    HELP = """# Availability heatmap

Tickers down, time across; one cell is a day, a week or a month. A cell is

- `█` **complete**: every expected bar of its sessions is there,
- `▒` **partial**: some bars are missing (intraday), or some sessions of the bucket,
- `×` **missing**: sessions expected and no bar at all (a gap),
- `·` **outside** the ticker's listed range (before its first bar or after its last),
- blank: **no session** (weekends, holidays).

The panel shows the ticker under the cursor with its gaps, newest first, and whether
each can still be fetched from Yahoo (and until when) or is lost for good.
"""
    BINDINGS = [
        Binding("z", "zoom(-1)", "Zoom in"),
        Binding("x", "zoom(1)", "Zoom out"),
        Binding("i", "next_interval", "Interval"),
        Binding("s", "next_sort", "Sort"),
        Binding("g", "toggle_gaps", "Only gaps"),
        Binding("slash", "ask('filter')", "Filter", key_display="/"),
        Binding("t", "ask('ticker')", "Ticker"),
        Binding("d", "ask('date')", "Date"),
        Binding("r", "reload", "Re-index"),
        Binding("escape", "close_prompt", "Close", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.interval: str | None = None
        self.intervals: list[str] = []
        self.zoom = "week"
        self.sort = "name"
        self.pattern: str | None = None
        self.only_gaps = False
        self.data: IntervalData | None = None
        self.prompt_kind: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("indexing…", id="heatmap-status")
        with Horizontal(id="heatmap-body"):
            yield HeatmapGrid(id="heatmap-grid")
            yield Static("", id="heatmap-detail")
        yield Input(id="heatmap-prompt")
        yield Static(self._legend(), id="heatmap-legend")
        yield Footer()

    @staticmethod
    def _legend() -> str:
        return "  ".join(
            f"[{colour}]{GLYPHS[state] if GLYPHS[state] != ' ' else '␣'}[/] {name}"
            for state, colour, name in LEGEND
        )

    def on_mount(self) -> None:
        self.query_one("#heatmap-prompt", Input).display = False
        self.load_interval(None, full=False)

    # --- loading ---------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="heatmap-load")
    def load_interval(self, interval: str | None, full: bool) -> None:
        workspace = Workspace(self.app.workspace.root)
        try:
            index = refresh_index(
                workspace.root, full=full, progress=lambda p: self.post_message(IndexProgress(p))
            )
            intervals = index.intervals()
            if not intervals:
                self.post_message(IntervalLoaded(None, [], "no bar files in this workspace"))
                return
            chosen = (
                interval if interval in intervals else ("1d" if "1d" in intervals else intervals[0])
            )
            grid = coverage_grid(workspace, index, chosen)
            availability = interval_availability(
                grid, Window(), self.app.today(), workspace.config.retention_days.get(chosen)
            )
            data = IntervalData(
                chosen, HeatmapSource(grid), {t.ticker: t for t in availability.tickers}
            )
        except ParqctlError as exc:
            self.post_message(IntervalLoaded(None, [], exc.one_line()))
            return
        self.post_message(IntervalLoaded(data, intervals, None))

    def on_index_progress(self, message: IndexProgress) -> None:
        p = message.progress
        self.query_one("#heatmap-status", Static).update(f"indexing {p.done:,}/{p.total:,} files…")

    def on_interval_loaded(self, message: IntervalLoaded) -> None:
        if message.data is None:
            self.query_one("#heatmap-status", Static).update(f"✗ {message.error}")
            return
        self.data, self.intervals, self.interval = (
            message.data,
            message.intervals,
            message.data.interval,
        )
        self.rebuild()

    def rebuild(self) -> None:
        if self.data is None:
            return
        grid = self.query_one(HeatmapGrid)
        ticker, day, _ = grid.current()
        self.compute_matrix(self.data.source, ticker, day)

    @work(thread=True, exclusive=True, exit_on_error=False, group="heatmap-matrix")
    def compute_matrix(
        self, source: HeatmapSource, keep_ticker: str | None, keep_day: date | None
    ) -> None:
        try:
            heatmap = source.matrix(
                self.zoom, sort=self.sort, pattern=self.pattern, only_gaps=self.only_gaps
            )
        except ParqctlError as exc:
            self.app.call_from_thread(self.notify, exc.one_line(), severity="error")
            return
        self.post_message(MatrixReady(heatmap, keep_ticker, keep_day))

    def on_matrix_ready(self, message: MatrixReady) -> None:
        heatmap = message.heatmap
        grid = self.query_one(HeatmapGrid)
        grid.show(heatmap, message.keep_ticker, message.keep_day)
        shown = f"{len(heatmap.tickers):,} of {heatmap.total_tickers:,} tickers"
        filters = []
        if self.pattern:
            filters.append(f"filter {self.pattern}")
        if self.only_gaps:
            filters.append("only with gaps")
        self.query_one("#heatmap-status", Static).update(
            f"{heatmap.interval} · {heatmap.zoom} · sort {heatmap_sort_name(self.sort)} · {shown}"
            + (f" · {', '.join(filters)}" if filters else "")
            + f" · {heatmap.start}..{heatmap.end}"
        )
        if not heatmap.tickers:
            self.query_one("#heatmap-detail", Static).update("no ticker matches")

    def on_heatmap_grid_cursor_moved(self, message: HeatmapGrid.CursorMoved) -> None:
        if message.ticker is None or self.data is None:
            return
        info = self.data.tickers.get(message.ticker)
        self.query_one("#heatmap-detail", Static).update(
            describe_ticker(info, message.ticker, message.bucket, message.state)
        )

    # --- actions ---------------------------------------------------------------------

    def action_zoom(self, step: int) -> None:
        position = ZOOMS.index(self.zoom) + step
        if 0 <= position < len(ZOOMS):
            self.zoom = ZOOMS[position]
            self.rebuild()

    def action_next_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.rebuild()

    def action_toggle_gaps(self) -> None:
        self.only_gaps = not self.only_gaps
        self.rebuild()

    def action_next_interval(self) -> None:
        if len(self.intervals) < 2 or self.interval is None:
            return
        following = self.intervals[(self.intervals.index(self.interval) + 1) % len(self.intervals)]
        self.query_one("#heatmap-status", Static).update(f"loading {following}…")
        self.load_interval(following, full=False)

    def action_reload(self) -> None:
        self.load_interval(self.interval, full=False)

    def action_ask(self, kind: str) -> None:
        prompt = self.query_one("#heatmap-prompt", Input)
        self.prompt_kind = kind
        prompt.placeholder = {
            "filter": "ticker pattern, e.g. A* or *.DE (empty: all)",
            "ticker": "jump to ticker",
            "date": "jump to date, YYYY-MM-DD",
        }[kind]
        prompt.value = (self.pattern or "") if kind == "filter" else ""
        prompt.display = True
        prompt.focus()

    def action_close_prompt(self) -> None:
        prompt = self.query_one("#heatmap-prompt", Input)
        prompt.display = False
        self.query_one(HeatmapGrid).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.action_close_prompt()
        grid = self.query_one(HeatmapGrid)
        if self.prompt_kind == "filter":
            self.pattern = value or None
            self.rebuild()
        elif self.prompt_kind == "ticker" and value and grid.heatmap:
            names = [t.upper() for t in grid.heatmap.tickers]
            if value.upper() in names:
                grid.set_cursor(names.index(value.upper()), grid.cursor_col)
            else:
                self.notify(f"{value} is not in the heatmap (check the filter)", severity="warning")
        elif self.prompt_kind == "date" and value:
            try:
                day = date.fromisoformat(value)
            except ValueError:
                self.notify(f"{value!r} is not a date like 2025-12-31", severity="error")
                return
            grid.set_cursor(grid.cursor_row, grid.column_of(day))


def heatmap_sort_name(sort: str) -> str:
    return {"name": "name", "coverage": "worst coverage", "recent_gap": "latest gap"}[sort]
