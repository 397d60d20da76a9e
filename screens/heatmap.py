"""The availability heatmap: which ticker has which trading sessions, at a glance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
from rich.text import Text
from textual import work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from core.availability.coverage import coverage_grid
from core.availability.gaps import (
    Gap,
    TickerAvailability,
    Window,
    interval_availability,
    registered_for,
)
from core.availability.heatmap import (
    NO_ISSUE,
    SORTS,
    ZOOMS,
    CellState,
    Heatmap,
    HeatmapSource,
    quarantined_files,
    ticker_paths,
)
from core.availability.index import refresh_index
from core.errors import ParqctlError
from core.ingest.confirmed_empty import days_by_ticker as confirmed_empty_days
from core.integrity.quarantine import QuarantineEntry
from core.store.workspace import Workspace
from screens.heatmap_grid import GLYPHS, PARTIAL_SHADES, HeatmapGrid, partial_glyph
from tui.messages import IndexProgress

LEGEND = (
    (CellState.COMPLETE, "$success", "complete"),
    (CellState.PARTIAL, "$warning", "partial"),
    (CellState.MISSING, "$error", "missing"),
    (CellState.OUTSIDE, "dim", "not listed"),
    (CellState.NOT_EXPECTED, "dim", "no session"),
    (CellState.CONFIRMED_EMPTY, "dim", "Yahoo empty"),
    (CellState.UNREADABLE, "$error", "unreadable"),
    (CellState.QUARANTINED, "$secondary", "quarantined"),
    (CellState.NO_BARS, "$warning", "no bars"),
)
SHOWN_PROBLEM_FILES = 3  # unreadable or quarantined files named in the panel; then a count


@dataclass(frozen=True)
class IntervalData:
    """One interval's heatmap source and per-ticker availability, built once per load."""

    interval: str
    source: HeatmapSource
    tickers: dict[str, TickerAvailability]
    quarantined: dict[str, list[QuarantineEntry]]  # ticker -> its files in the quarantine
    paths: dict[str, str]  # ticker -> its file or partition directory, relative to the root
    with_files: frozenset[str]  # tickers with files of the interval, readable or not
    registry: dict[str, dict]  # tickers.json entries, raw


class IntervalLoaded(Message):
    def __init__(self, data: IntervalData | None, intervals: list[str], error: str | None) -> None:
        super().__init__()
        self.data, self.intervals, self.error = data, intervals, error


class MatrixReady(Message):
    def __init__(self, heatmap: Heatmap, keep_ticker: str | None, keep_day: date | None) -> None:
        super().__init__()
        self.heatmap, self.keep_ticker, self.keep_day = heatmap, keep_ticker, keep_day


def describe_cell(bucket: date, state: int, coverage: float | None) -> str:
    name = CellState(state).name.lower().replace("_", " ")
    if state == CellState.PARTIAL and coverage is not None:
        return f"{partial_glyph(coverage)} {bucket}: partial, {coverage:.0%} of the bars"
    return f"{GLYPHS[CellState(state)]} {bucket}: {name}"


def describe_ticker(
    data: IntervalData, ticker: str, cell: tuple[date, int, float | None] | None
) -> str:
    """The ticker under the cursor: the cell, its bars and sessions, and what else is
    wrong with it (unreadable or quarantined files; no bars, and why)."""
    info = data.tickers.get(ticker)
    lines = [ticker]
    if cell is not None:
        lines.append(describe_cell(*cell))
    if info is not None and info.first is not None:
        lines += [
            f"bars     {info.first} .. {info.last}",
            f"sessions {info.present_sessions:,}/{info.expected_sessions:,}",
            f"partial  {len(info.partial):,}",
        ]
    else:
        lines.append(f"no {data.interval} bars: " + _why_no_bars(data, ticker))
    unreadable = info.unreadable if info is not None else []
    if unreadable:
        lines.append(f"{GLYPHS[CellState.UNREADABLE]} {len(unreadable)} unreadable file(s)")
        lines += [f"  {u.path}: {u.error}" for u in unreadable[:SHOWN_PROBLEM_FILES]]
        if len(unreadable) > SHOWN_PROBLEM_FILES:
            lines.append(f"  … {len(unreadable) - SHOWN_PROBLEM_FILES} more")
    quarantined = data.quarantined.get(ticker, [])
    if quarantined:
        lines.append(
            f"{GLYPHS[CellState.QUARANTINED]} {len(quarantined)} file(s) in quarantine (4)"
        )
        lines += [
            f"  {q.original_path}: {q.reason} ({q.when[:10]}, id {q.id})"
            for q in quarantined[:SHOWN_PROBLEM_FILES]
        ]
        if len(quarantined) > SHOWN_PROBLEM_FILES:
            lines.append(f"  … {len(quarantined) - SHOWN_PROBLEM_FILES} more")
    return "\n".join(lines)


def _why_no_bars(data: IntervalData, ticker: str) -> str:
    info = data.tickers.get(ticker)
    if info is not None and info.unreadable:
        return "its files cannot be read"
    if ticker in data.quarantined and ticker not in data.with_files:
        return "its files are in the quarantine"
    if ticker in data.with_files:
        return "its files hold no rows"
    status = (data.registry.get(ticker) or {}).get("intervals", {}).get(data.interval, {})
    said = (
        f" (status {status['status']})" if isinstance(status, dict) and "status" in status else ""
    )
    return f"in tickers.json{said}, no files"


def gap_fate(gap: Gap, asked_empty: date | None = None) -> str:
    if asked_empty is not None:  # `parqctl backfill` asked Yahoo, which had no bars there
        return f"∅ empty ({asked_empty})"
    if gap.recoverable_until is not None:
        return f"⏳ by {gap.recoverable_until}"
    if gap.lost_sessions:
        return "✗ lost" if gap.status == "lost" else f"✗ {gap.lost_sessions} lost"
    return "✓ fetchable"


def gaps_heading(info: TickerAvailability | None) -> str:
    """How many gaps and sessions, and the first deadline (it may belong to an older gap)."""
    if info is None or info.first is None:
        return ""
    if not info.gaps:
        return "✓ no gaps"
    deadlines = [g.recoverable_until for g in info.gaps if g.recoverable_until is not None]
    return f"{len(info.gaps)} gap(s), {info.missing_sessions:,} sessions" + (
        f" · ⏳ {min(deadlines)}" if deadlines else ""
    )


def newest_first(info: TickerAvailability | None) -> list[Gap]:
    return sorted(info.gaps, key=lambda g: g.end, reverse=True) if info else []


def gap_line(gap: Gap, asked_empty: date | None = None) -> str:
    """One gap: its days, its sessions, whether it can still be fetched and until when."""
    span = f"{gap.start}" if gap.start == gap.end else f"{gap.start}..{gap.end:%m-%d}"
    return f"{span:<17} {gap.sessions:>3} {gap_fate(gap, asked_empty)}"


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
- `▓` `▒` `░` **partial**: some bars or sessions of the cell are missing; the shade says
  how much is there (at least 90%, at least 50%, less), so a one-session gap and a
  fifteen-session one look different at every zoom,
- `×` **missing**: sessions expected and no bar at all (a gap),
- `·` **not listed**: before the ticker's first bar or after its last,
- blank: **no session** (weekends, holidays).

Every ticker in tickers.json and every ticker with files is a row. A ticker without bars
fills its row with why: `!` **unreadable** files, `⊘` files in the **quarantine** (4),
`○` **no bars** (empty files, or none yet). A ticker with bars whose name is coloured has
an unreadable or quarantined file too; the panel says which.

**What needs attention comes first**: the grid opens sorted by attention: tickers with
unreadable, quarantined or no bars, then those with gaps (worst coverage first), then
those with partial sessions, then the complete ones by name. `s` sorts by attention, name,
worst coverage or latest gap; `o` shows only the tickers that need attention (or all
again).

The panel (beside the grid, or under it on a narrow terminal) shows the ticker under the
cursor with its gaps, newest first, and whether each can still be fetched from Yahoo
(`⏳` until when, `✓` any time) or is lost for good (`✗`); `∅` marks a gap Yahoo was
asked for and had no bars (a halt; `parqctl backfill --recheck` asks again). `tab` goes
to the gap list; `enter` on a gap moves the grid's cursor to it.

`/` filters by ticker: `AAP` matches every ticker holding it, `A*` or `*.DE` are globs;
`escape` clears the filter (then goes back). `t` jumps to a ticker, `d` to a date; `c`
copies the path of the ticker's file (or partition directory) to the clipboard; `r`
re-indexes the files that changed. `b` backfills the recoverable gaps of the ticker under
the cursor from Yahoo Finance, `B` those of every ticker in view: both say what will be
fetched and ask first, then run with a progress bar (`escape` stops after the request in
progress); the grid reloads when done. `S` opens the Query screen (8) on the bars of the
ticker under the cursor around its date.

Arrows or `h` `j` `k` `l` move the cursor, `ctrl+left` / `ctrl+right` by ten cells,
`pageup` / `pagedown` by a screen, `g` / `G` (or `home` / `end`) to the first and last
ticker.
"""
    # The footer shows what is used most; every key is in the help and the palette.
    BINDINGS = [
        Binding("z", "zoom(-1)", "Zoom in", group=ZOOM),
        Binding("x", "zoom(1)", "Zoom out", group=ZOOM),
        Binding("i", "next_interval", "Interval"),
        Binding("s", "next_sort", "Sort"),
        Binding("o", "toggle_gaps", "Problems"),
        Binding("slash", "ask('filter')", "Filter", key_display="/"),
        Binding("c", "copy_path", "Copy path", show=False),
        Binding("t", "ask('ticker')", "Ticker", show=False),
        Binding("d", "ask('date')", "Date", show=False),
        Binding("r", "reload", "Re-index", show=False),
        Binding("escape", "clear", "Close / clear filter", show=False),
        Binding("b", "backfill('ticker')", "Backfill ticker", show=False),
        Binding("B", "backfill('view')", "Backfill all in view", show=False),
        Binding("S", "query", "Query these bars (SQL)", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.interval: str | None = None
        self.intervals: list[str] = []
        self.zoom = "week"
        self.sort = "attention"
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
                with Vertical(id="heatmap-gaps-box"):
                    yield Static("", id="heatmap-gaps")
                    yield OptionList(id="heatmap-gap-list")
        yield Input(id="heatmap-prompt")
        yield Static(self._legend(), id="heatmap-legend")
        yield Footer()

    @staticmethod
    def _legend() -> str:
        glyphs = {**GLYPHS, CellState.PARTIAL: "".join(g for _, g in PARTIAL_SHADES)}
        glyphs[CellState.NOT_EXPECTED] = "␣"
        return "  ".join(f"[{colour}]{glyphs[state]}[/] {name}" for state, colour, name in LEGEND)

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
            quarantined = quarantined_files(workspace.root, chosen)
            source = HeatmapSource(
                grid,
                confirmed_empty_days(workspace.root, chosen),
                registered=registered_for(workspace, chosen),
                quarantined=quarantined,
            )
            data = IntervalData(
                chosen,
                source,
                {t.ticker: t for t in availability.tickers},
                quarantined,
                ticker_paths(index, grid),
                frozenset(grid.sources),
                workspace.tickers.raw,
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
            filters.append("only problems")
        # What hides rows comes right after the count of rows shown: at 80 columns the
        # line is cut, and "2 of 300 tickers" must not appear without its reason.
        self.query_one("#heatmap-status", Static).update(
            f"{heatmap.interval} · {heatmap.zoom} · sort {heatmap_sort_name(self.sort)} · {shown}"
            + (f" ({', '.join(filters)})" if filters else "")
            + f" · {attention_summary(heatmap)}"
            + f" · {heatmap.start}..{heatmap.end}"
        )
        if not heatmap.tickers:
            self.query_one("#heatmap-ticker", Static).update("no ticker matches")
            self.query_one("#heatmap-gaps", Static).update("")
            self.query_one("#heatmap-gap-list", OptionList).clear_options()

    def on_heatmap_grid_cursor_moved(self, message: HeatmapGrid.CursorMoved) -> None:
        if message.ticker is None or self.data is None:
            return
        cell = None
        if message.bucket is not None and message.state is not None:
            cell = (message.bucket, message.state, message.coverage)
        self.query_one("#heatmap-ticker", Static).update(
            Text(describe_ticker(self.data, message.ticker, cell))
        )
        info = self.data.tickers.get(message.ticker)
        heading = Text(gaps_heading(info), no_wrap=True, overflow="ellipsis")
        self.query_one("#heatmap-gaps", Static).update(heading)
        gap_list = self.query_one("#heatmap-gap-list", OptionList)
        # Without bars there are no gaps to list: the ticker's problems take the room.
        self.query_one("#heatmap-gaps-box").display = bool(heading.plain)
        if gap_list.has_focus:  # the list is being read: it follows the grid only from it
            return
        empty = self._confirmed_empty(message.ticker)
        gap_list.set_options(
            Option(gap_line(gap, empty.get(gap.start)), id=gap.start.isoformat())
            for gap in newest_first(info)
        )
        gap_list.display = bool(gap_list.option_count)
        if gap_list.option_count:
            gap_list.highlighted = 0  # tab, enter: the newest gap

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """Enter on a gap: the grid's cursor goes to the gap's first session."""
        event.stop()
        grid = self.query_one(HeatmapGrid)
        day = date.fromisoformat(event.option.id)
        grid.set_cursor(grid.cursor_row, grid.column_of(day))
        grid.focus()

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

    def action_clear(self) -> None:
        """Escape: closes the prompt, else clears the filter and the problems-only view,
        else is left to the app (back to the previous screen)."""
        if self.query_one("#heatmap-prompt", Input).display:
            self.action_close_prompt()
        elif self.pattern or self.only_gaps:
            self.pattern, self.only_gaps = None, False
            self.rebuild()
        else:
            raise SkipAction()

    def action_copy_path(self) -> None:
        """Copies the path of the ticker under the cursor: its file, or its partition
        directory; a ticker whose files are all in the quarantine gives the first of them."""
        ticker, _, _ = self.query_one(HeatmapGrid).current()
        if ticker is None or self.data is None:
            return
        relative = self.data.paths.get(ticker)
        if relative is not None:
            path = str(self.app.workspace.root / relative)
        elif ticker in self.data.quarantined:
            path = str(self.data.quarantined[ticker][0].stored_path)
        else:
            self.notify(f"{ticker} has no {self.interval} files to copy", severity="warning")
            return
        self.app.copy_to_clipboard(path)
        self.notify(f"copied {path}", title="Clipboard")

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
                hidden = self.pattern or self.only_gaps
                self.notify(
                    f"{value} is not in view: escape clears the filter"
                    if hidden
                    else f"no {self.interval} ticker {value} in tickers.json or on disk",
                    severity="warning",
                )
        elif self.prompt_kind == "date" and value:
            try:
                day = date.fromisoformat(value)
            except ValueError:
                self.notify(f"{value!r} is not a date like 2025-12-31", severity="error")
                return
            grid.set_cursor(grid.cursor_row, grid.column_of(day))


def heatmap_sort_name(sort: str) -> str:
    return {
        "attention": "attention",
        "name": "name",
        "coverage": "worst coverage",
        "recent_gap": "latest gap",
    }[sort]


def attention_summary(heatmap: Heatmap) -> str:
    """How many rows in view need a look: an issue, or a gap."""
    issues = int((heatmap.issues != NO_ISSUE).sum())
    gaps = int((~np.isnat(heatmap.last_gap) & (heatmap.issues == NO_ISSUE)).sum())
    if not issues and not gaps:
        return "✓ nothing to look at"
    parts = [f"{issues:,} with issues"] if issues else []
    return ", ".join([*parts, f"{gaps:,} with gaps"] if gaps else parts)
