"""The availability heatmap: which ticker has which trading sessions, at a glance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static
from textual.worker import get_current_worker

from core.availability.coverage import coverage_grid
from core.availability.gaps import Gap, TickerAvailability, Window, interval_availability
from core.availability.heatmap import SORTS, ZOOMS, CellState, Heatmap, HeatmapSource
from core.availability.index import refresh_index
from core.errors import ParqctlError
from core.ingest.confirmed_empty import days_by_ticker as confirmed_empty_days
from core.jobs import Progress
from core.store.workspace import Workspace
from screens.heatmap_grid import GLYPHS, HeatmapGrid

# Gap lines in the panel: beside the grid, as many as its height allows; under it (narrow
# terminals), a few.
SIDE_PANEL_LINES = 7  # the ticker's summary, a blank line and the gaps heading
NARROW_GAPS_SHOWN = 4
LEGEND = (
    (CellState.COMPLETE, "$success", "complete"),
    (CellState.PARTIAL, "$warning", "partial"),
    (CellState.MISSING, "$error", "missing"),
    (CellState.OUTSIDE, "dim", "outside listed range"),
    (CellState.NOT_EXPECTED, "dim", "no session"),
    (CellState.CONFIRMED_EMPTY, "dim", "Yahoo has no bars"),
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
    """The ticker under the cursor: the cell, its bars and sessions."""
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
        f"partial  {len(info.partial):,}"
        + (f"  ✗ {len(info.unreadable)} unreadable" if info.unreadable else ""),
    ]
    return "\n".join(lines)


def gap_fate(gap: Gap, asked_empty: date | None = None) -> str:
    if asked_empty is not None:  # `parqctl backfill` asked Yahoo, which had no bars there
        return f"∅ empty ({asked_empty})"
    if gap.recoverable_until is not None:
        return f"⏳ by {gap.recoverable_until}"
    if gap.lost_sessions:
        return "✗ lost" if gap.status == "lost" else f"✗ {gap.lost_sessions} lost"
    return "✓ fetchable"


def describe_gaps(
    info: TickerAvailability | None, limit: int, empty: dict[date, date] | None = None
) -> str:
    """The ticker's gaps, newest first, each with whether it can still be fetched and
    until when; the first deadline in the heading, as it may belong to an older gap."""
    if info is None or info.first is None:
        return ""
    if not info.gaps:
        return "✓ no gaps"
    deadlines = [g.recoverable_until for g in info.gaps if g.recoverable_until is not None]
    lines = [
        f"{len(info.gaps)} gap(s), {info.missing_sessions:,} sessions"
        + (f" · ⏳ {min(deadlines)}" if deadlines else "")
    ]
    shown = sorted(info.gaps, key=lambda g: g.end, reverse=True)
    if len(shown) > limit:
        shown, older = shown[: max(limit - 1, 1)], len(shown) - max(limit - 1, 1)
    else:
        older = 0
    for gap in shown:
        span = f"{gap.start}" if gap.start == gap.end else f"{gap.start}..{gap.end:%m-%d}"
        asked = (empty or {}).get(gap.start)
        lines.append(f"{span:<17} {gap.sessions:>3} {gap_fate(gap, asked)}")
    if older:
        lines.append(f"… {older} older")
    return "\n".join(lines)


def urgent_gap_day(info: TickerAvailability | None) -> date | None:
    """Where to put the cursor on a ticker: its soonest-expiring gap, else its newest."""
    if info is None or not info.gaps:
        return None
    expiring = [g for g in info.gaps if g.recoverable_until is not None]
    if expiring:
        return min(expiring, key=lambda g: g.recoverable_until).start
    return max(info.gaps, key=lambda g: g.end).start


ZOOM = Binding.Group("Zoom")


class HeatmapScreen(Screen):
    HELP = """# Availability heatmap

Tickers down, time across; one cell is a day, a week or a month. A cell is

- `█` **complete**: every expected bar of its sessions is there,
- `▒` **partial**: some bars are missing (intraday), or some sessions of the bucket,
- `×` **missing**: sessions expected and no bar at all (a gap),
- `·` **outside** the ticker's listed range (before its first bar or after its last),
- blank: **no session** (weekends, holidays).

The panel (beside the grid, or under it on a narrow terminal) shows the ticker under the
cursor with its gaps, newest first, and whether each can still be fetched from Yahoo
(`⏳` until when, `✓` any time) or is lost for good (`✗`); `∅` marks a gap Yahoo was
asked for and had no bars (a halt; `parqctl backfill --recheck` asks again).

`g` shows only the tickers with gaps (or all again); `/` filters by a part of a ticker
(`AAP`) or a glob (`A*`);
`s` sorts by name, worst coverage or latest gap; `t` jumps to a ticker, `d` to a date;
`r` re-indexes the files that changed. `b` backfills the recoverable gaps of the ticker
under the cursor from Yahoo Finance, `B` those of every ticker in view: both say what will
be fetched and ask first, then run with a progress bar (`escape` stops after the request
in progress); the grid reloads when done. `S` opens the Query screen (8) on the bars of
the ticker under the cursor around its date.

Arrows move the cursor, `ctrl+left` / `ctrl+right` by ten cells, `pageup` / `pagedown`
by a screen, `home` / `end` to the first and last ticker.
"""
    # The footer shows what is used most; every key is in the help and the palette.
    BINDINGS = [
        Binding("z", "zoom(-1)", "Zoom in", group=ZOOM),
        Binding("x", "zoom(1)", "Zoom out", group=ZOOM),
        Binding("i", "next_interval", "Interval"),
        Binding("s", "next_sort", "Sort"),
        Binding("g", "toggle_gaps", "Gaps"),
        Binding("slash", "ask('filter')", "Filter", key_display="/"),
        Binding("t", "ask('ticker')", "Ticker", show=False),
        Binding("d", "ask('date')", "Date", show=False),
        Binding("r", "reload", "Re-index", show=False),
        Binding("escape", "close_prompt", "Close", show=False),
        Binding("b", "backfill('ticker')", "Backfill ticker", show=False),
        Binding("B", "backfill('view')", "Backfill all in view", show=False),
        Binding("S", "query", "Query these bars (SQL)", show=False),
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
        # A ticker to show (from the dashboard): its interval, then the ticker, once loaded.
        self.target: tuple[str, str] | None = None
        self.jump_to: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("indexing…", id="heatmap-status", markup=False)
        with Horizontal(id="heatmap-body"):
            yield HeatmapGrid(id="heatmap-grid")
            with Container(id="heatmap-detail"):
                yield Static("", id="heatmap-ticker")
                yield Static("", id="heatmap-gaps")
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
                chosen,
                HeatmapSource(grid, confirmed_empty_days(workspace.root, chosen)),
                {t.ticker: t for t in availability.tickers},
            )
        except ParqctlError as exc:
            self.post_message(IntervalLoaded(None, [], exc.one_line()))
            return
        if not get_current_worker().is_cancelled:  # a newer load replaced this one
            self.post_message(IntervalLoaded(data, intervals, None))

    def on_index_progress(self, message: IndexProgress) -> None:
        p = message.progress
        self.query_one("#heatmap-status", Static).update(f"indexing {p.done:,}/{p.total:,} files…")

    def on_interval_loaded(self, message: IntervalLoaded) -> None:
        if message.data is None:
            self.query_one("#heatmap-status", Static).update(f"✗ {message.error}")
            return
        health = self.app.health
        if health and health.final and health.report and health.report.gaps is None:
            self.app.refresh_health()  # the dashboard's coverage was waiting for this index
        self.data, self.intervals, self.interval = (
            message.data,
            message.intervals,
            message.data.interval,
        )
        if self.target is not None and self.target[1] not in message.intervals:
            self.target = None
        if self.target is not None and self.target[1] == self.interval:
            self._go_to_target()
        else:
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
        if not get_current_worker().is_cancelled:
            self.post_message(MatrixReady(heatmap, keep_ticker, keep_day))

    def on_matrix_ready(self, message: MatrixReady) -> None:
        heatmap = message.heatmap
        grid = self.query_one(HeatmapGrid)
        jumped = self.jump_to is not None
        if jumped:
            ticker, self.jump_to = self.jump_to, None
            if ticker not in heatmap.tickers and (self.pattern or self.only_gaps):
                self.notify(f"filter cleared to show {ticker}")
                self.pattern, self.only_gaps = None, False
                self.jump_to = ticker
                self.compute_matrix(self.data.source, ticker, message.keep_day)
                return
            grid.focus()
        grid.show(heatmap, message.keep_ticker, message.keep_day, center=jumped)
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
            self.query_one("#heatmap-ticker", Static).update("no ticker matches")
            self.query_one("#heatmap-gaps", Static).update("")

    def on_heatmap_grid_cursor_moved(self, message: HeatmapGrid.CursorMoved) -> None:
        if message.ticker is None or self.data is None:
            return
        info = self.data.tickers.get(message.ticker)
        self.query_one("#heatmap-ticker", Static).update(
            Text(describe_ticker(info, message.ticker, message.bucket, message.state))
        )
        if self.has_class("-narrow"):
            limit = NARROW_GAPS_SHOWN
        else:
            limit = max(self.query_one("#heatmap-detail").size.height - SIDE_PANEL_LINES, 3)
        empty = self._confirmed_empty(message.ticker)
        gaps = Text(describe_gaps(info, limit, empty), no_wrap=True, overflow="ellipsis")
        self.query_one("#heatmap-gaps", Static).update(gaps)

    def _confirmed_empty(self, ticker: str) -> dict[date, date]:
        """Gap start -> the day Yahoo was asked and had no bars (`parqctl backfill`)."""
        from core.ingest import confirmed_empty

        info = self.data.tickers.get(ticker) if self.data else None
        if info is None or not info.gaps:
            return {}
        windows = confirmed_empty.load(self.app.workspace.root)
        return {
            gap.start: w.asked
            for w in windows
            if w.ticker == ticker and w.interval == self.interval
            for gap in info.gaps
            if gap.start <= w.start and w.end <= gap.end
        }

    def show_ticker(self, ticker: str, interval: str) -> None:
        """Put the cursor on ``ticker`` in ``interval`` at its most urgent gap, loading the
        interval first if another is shown; a filter that hides the ticker is cleared."""
        self.target = (ticker, interval)
        if self.data is not None and self.data.interval == interval:
            self._go_to_target()
            return
        self.query_one("#heatmap-status", Static).update(f"loading {interval} for {ticker}…")
        self.load_interval(interval, full=False)

    def _go_to_target(self) -> None:
        ticker, _ = self.target
        self.target = None
        self.jump_to = ticker
        self.compute_matrix(self.data.source, ticker, urgent_gap_day(self.data.tickers.get(ticker)))

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

    def action_backfill(self, scope: str) -> None:
        grid = self.query_one(HeatmapGrid)
        if self.interval is None or grid.heatmap is None or not grid.heatmap.tickers:
            return
        from screens.backfill import BackfillScreen

        ticker, _, _ = grid.current()
        tickers = [ticker] if scope == "ticker" else list(grid.heatmap.tickers)
        what = ticker if scope == "ticker" else f"the {len(tickers):,} tickers in view"
        screen = BackfillScreen(
            self.app.workspace.root, self.interval, tickers, self.app.today(), what
        )
        self.app.push_screen(screen, self._backfilled)

    def action_query(self) -> None:
        """The Query screen on the bars of the ticker under the cursor, around its date."""
        grid = self.query_one(HeatmapGrid)
        ticker, day, _ = grid.current()
        if self.interval is None or ticker is None or day is None:
            return
        from core.sql import prefill
        from screens.query import open_query

        open_query(self.app, prefill.bars_around(ticker, self.interval, day))

    def _backfilled(self, changed: bool | None) -> None:
        if changed:
            self.load_interval(self.interval, full=False)

    def action_ask(self, kind: str) -> None:
        prompt = self.query_one("#heatmap-prompt", Input)
        self.prompt_kind = kind
        prompt.placeholder = {
            "filter": "part of a ticker (AAP) or a glob (A*, *.DE); empty: all",
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
