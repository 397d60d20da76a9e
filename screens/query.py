"""Query: read-only SQL over the workspace (core.sql), an editor over a paged results table.

The query runs in a thread worker on the screen's own engine (opened on first use, closed
with the screen); rows arrive a page at a time, and the next page is fetched when the
cursor reaches the last row (or on ``ctrl+l``), so a result of millions of rows never
freezes the console. ``escape`` interrupts a running query through DuckDB.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter  # a module name, so tests can fix the clock
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, OptionList, Static, TextArea, Tree
from textual.widgets.option_list import Option

from core.errors import ParqctlError
from core.sql import history
from core.sql.views import ViewSpec
from tui.navigation import Popup

if TYPE_CHECKING:
    import pyarrow as pa
    from textual.app import App

    from core.sql import QueryResult, SqlEngine

PAGE_ROWS = 500
MAX_SHOWN_ROWS = 100_000  # beyond this the table stops growing: export the rest
CELL_WIDTH = 40
DEFAULT_QUERY = """-- ctrl+r runs; ctrl+t views, ctrl+o history, ctrl+g export
SELECT ticker, count(*) AS bars, min(date) AS first, max(date) AS last
FROM bars_1d
GROUP BY ticker
ORDER BY ticker
"""

# --- the editor: SQL highlighted without tree-sitter ---------------------------------------

KEYWORDS = frozenset(
    re.findall(
        r"\w+",
        """select from where group by order having limit offset join left right full inner
        outer cross on using as and or not in is null like ilike between case when then else
        end distinct union all except intersect with asc desc nulls first last create temp
        temporary table view insert into values update delete set describe summarize pivot
        unpivot qualify window over partition rows range preceding following current row
        filter exists any some true false cast try_cast interval explain analyze show""",
    )
)
TYPES = frozenset(
    re.findall(
        r"\w+",
        "varchar integer bigint smallint tinyint double float real decimal date timestamp "
        "timestamp_ns boolean text interval",
    )
)
_TOKENS = re.compile(
    r"(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))"
    r"|(?P<string>'(?:[^']|'')*(?:'|\Z))"
    r"|(?P<quoted>\"(?:[^\"]|\"\")*(?:\"|\Z))"
    r"|(?P<number>\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b)"
    r"|(?P<word>\b[A-Za-z_][A-Za-z0-9_]*\b)(?P<call>\s*\()?"
    r"|(?P<operator>[-+*/%<>=!|&:]+)",
    re.DOTALL,
)


def sql_highlights(text: str) -> dict[int, list[tuple[int, int | None, str]]]:
    """Highlights per line in TextArea's form: (start byte, end byte, name)."""
    lines = text.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    result: dict[int, list[tuple[int, int | None, str]]] = {}

    def add(start: int, end: int, name: str) -> None:
        row = _row_of(starts, start)
        while start < end:
            line_end = starts[row] + len(lines[row])
            piece_end = min(end, line_end)
            begin = len(lines[row][: start - starts[row]].encode("utf-8"))
            finish = len(lines[row][: piece_end - starts[row]].encode("utf-8"))
            if finish > begin:
                result.setdefault(row, []).append((begin, finish, name))
            row += 1
            if row >= len(lines):
                break
            start = starts[row]

    for match in _TOKENS.finditer(text):
        kind = match.lastgroup
        if kind == "call":
            word = match.group("word")
            add(match.start("word"), match.end("word"), "function.call")
            continue
        if kind == "word":
            word = match.group("word").lower()
            name = "keyword" if word in KEYWORDS else "type.builtin" if word in TYPES else None
            if name:
                add(match.start(), match.end(), name)
            continue
        name = {"quoted": "variable.builtin"}.get(kind, kind)
        add(match.start(), match.end(), name)
    return result


def _row_of(starts: list[int], offset: int) -> int:
    low, high = 0, len(starts) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if starts[middle] <= offset:
            low = middle
        else:
            high = middle - 1
    return low


class SqlEditor(TextArea):
    """A TextArea highlighting SQL with a small tokenizer (no tree-sitter needed)."""

    def _build_highlight_map(self) -> None:  # TextArea's hook for its highlight map
        self._line_cache.clear()
        self._highlights.clear()
        self._highlights.update(sql_highlights(self.text))


# --- messages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    columns: list[str]
    types: list[str]
    table: pa.Table
    first: bool
    more: bool
    elapsed_s: float
    total_shown: int


class PageLoaded(Message):
    def __init__(self, run: int, page: Page) -> None:
        super().__init__()
        self.run, self.page = run, page


class QueryFailed(Message):
    def __init__(self, run: int, error: str, cancelled: bool = False) -> None:
        super().__init__()
        self.run, self.error, self.cancelled = run, error, cancelled


class Exported(Message):
    def __init__(self, text: str, ok: bool) -> None:
        super().__init__()
        self.text, self.ok = text, ok


# --- values --------------------------------------------------------------------------------


def cell(value: object, numeric: bool) -> Text | str:
    from core.sql.output import plain_value

    if value is None:
        return Text("∅", style="dim")
    shown = plain_value(value)
    text = shown if isinstance(shown, str) else str(shown)
    text = text.replace("\n", " ")
    if len(text) > CELL_WIDTH:
        text = text[: CELL_WIDTH - 1] + "…"
    return Text(text, justify="right") if numeric else text


def rows_of(table: pa.Table) -> list[list[Text | str]]:
    import pyarrow as pa

    from core.sql.output import readable

    numeric = [
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        for t in table.schema.types
    ]
    rows = []
    for batch in table.to_batches():
        # By position: a join can give two columns one name (to_pylist's dicts keep one).
        columns = [column.to_pylist() for column in readable(batch).columns]
        for row in zip(*columns, strict=True):
            rows.append([cell(v, n) for v, n in zip(row, numeric, strict=True)])
    return rows


# --- dialogs -------------------------------------------------------------------------------


class HistoryScreen(Popup[str | None]):
    """Past queries, newest first (j/k move); enter puts one in the editor."""

    BINDINGS = [Binding("escape", "dismiss_none", "Close")]
    DEFAULT_CSS = """
    HistoryScreen { align: center middle; }
    HistoryScreen > Vertical {
        width: 100; max-width: 95%; height: 80%; border: thick $primary; background: $surface;
        padding: 0 1;
    }
    HistoryScreen #history-title { text-style: bold; margin-bottom: 1; }
    """

    def __init__(self, entries: list[history.HistoryEntry]) -> None:
        super().__init__()
        self.entries = entries

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                f"History · {len(self.entries)} queries · enter loads one · escape closes",
                id="history-title",
            )
            options = [
                Option(self._label(entry), id=str(i)) for i, entry in enumerate(self.entries)
            ]
            yield OptionList(*options, id="history-list")

    @staticmethod
    def _label(entry: history.HistoryEntry) -> Text:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.ts))
        first = " ".join(entry.query.split())
        outcome = (
            "error" if entry.error else (f"{entry.rows:,} rows" if entry.rows is not None else "")
        )
        label = Text(f"{when}  ", style="dim")
        label.append(first[:160])
        if outcome:
            label.append(f"  · {outcome}", style="dim")
        return label

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.entries[int(event.option.id or 0)].query)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class ExportScreen(ModalScreen[str | None]):
    """Asks where to write the result; the extension picks CSV, JSON or Parquet."""

    BINDINGS = [Binding("escape", "dismiss_none", "Cancel")]
    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    ExportScreen > Vertical {
        width: 90; max-width: 95%; height: auto; border: thick $primary; background: $surface;
        padding: 1 2;
    }
    ExportScreen #export-title { text-style: bold; margin-bottom: 1; }
    """

    def __init__(self, suggested: str) -> None:
        super().__init__()
        self.suggested = suggested

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                "Export every row of the query to a file (.csv, .json or .parquet), written "
                "atomically; never inside data/. Enter writes, escape cancels.",
                id="export-title",
            )
            yield Input(self.suggested, id="export-path")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


# --- the screen ----------------------------------------------------------------------------


class QueryScreen(Screen):
    HELP = """# Query

Read-only SQL over the workspace (DuckDB). The views: `bars_<interval>` (every ticker's
bars from where the collector reads them, with `ticker`), `tickers`, `files` (the file
index), `gaps`, `findings` (last integrity check), `audit`, `quarantine`. Nothing a
query does can write a file: DuckDB's file access is off and its settings locked.

`ctrl+r` (or `f5`) runs the editor's SQL; rows come a page at a time, the next page when
the cursor reaches the end (or `ctrl+l`). `escape` interrupts a running query.
`ctrl+t` goes to the views and their columns (enter inserts one into the editor),
`ctrl+o` opens the history of past queries (kept in `.parqctl/sql_history.jsonl`),
`ctrl+g` exports every row to a file you name (CSV, JSON or Parquet by its extension).
`tab` moves between the editor, the results and the views; `ctrl+q` quits from the
editor, where `q` is typed.
"""
    BINDINGS = [
        Binding("ctrl+r,f5", "run", "Run", priority=True),
        # Said in the status line while they apply; in the palette and help always.
        Binding("escape", "cancel", "Cancel query", show=False),
        Binding("ctrl+l", "more", "More rows", show=False),
        Binding("ctrl+t", "views", "Views"),
        Binding("ctrl+o", "history", "History"),
        Binding("ctrl+g", "export", "Export"),
        # `q` types a q in the editor: quitting from there is ctrl+q.
        Binding("ctrl+q", "app.quit", "Quit", priority=True),
    ]
    DEFAULT_CSS = """
    QueryScreen #query-body { height: 1fr; }
    QueryScreen #query-main { width: 1fr; }
    QueryScreen #query-editor { height: 9; border: round $primary 50%; }
    QueryScreen #query-editor:focus { border: round $primary; }
    QueryScreen #query-status { height: 1; padding: 0 1; color: $text-muted; }
    QueryScreen #query-status.-error { color: $error; }
    QueryScreen #query-status.-running { color: $warning; }
    QueryScreen #query-results { height: 1fr; }
    QueryScreen #query-views { width: 34; border-left: solid $panel; }
    QueryScreen.-narrow #query-views { display: none; }
    QueryScreen.-narrow #query-views.-shown { display: block; width: 28; }
    """

    def __init__(self, initial: str | None = None) -> None:
        super().__init__()
        self.initial = initial
        self._engine: SqlEngine | None = None
        self._engine_lock = threading.Lock()
        self._result: QueryResult | None = None
        self._run_id = 0
        self._running = False
        self._more = False
        self._shown = 0
        self._sql = ""

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="query-body"):
            with Vertical(id="query-main"):
                yield SqlEditor(
                    self.initial or DEFAULT_QUERY,
                    id="query-editor",
                    soft_wrap=False,
                    show_line_numbers=True,
                    tab_behavior="focus",
                )
                yield Static("", id="query-status")
                yield DataTable(id="query-results", zebra_stripes=True, cursor_type="row")
            yield Tree("views", id="query-views")
        yield Footer()

    def on_mount(self) -> None:
        editor = self.query_one(SqlEditor)
        editor.cursor_blink = False
        editor.focus()
        self._status("ctrl+r runs the query · ctrl+t views · ctrl+o history")
        self._fill_views()

    def on_screen_resume(self) -> None:
        """Back on the screen: the views are built again when next used, so that they show
        what the collector wrote meanwhile."""
        if self._engine is not None and not self._running:
            self._refresh_engine()

    @work(thread=True, exit_on_error=False, group="query")
    def _refresh_engine(self) -> None:
        with self._engine_lock:
            if self._engine is not None:
                self._engine.refresh()

    def on_unmount(self) -> None:
        """Interrupt what runs and close the engine (its temp directory goes with it)."""
        engine, self._engine = self._engine, None
        if engine is None:
            return
        engine.interrupt()
        # The worker lets go of the lock as soon as DuckDB stops; a file listing in progress
        # cannot be interrupted, and is not waited for long.
        if self._engine_lock.acquire(timeout=5):
            try:
                engine.close()
            finally:
                self._engine_lock.release()

    # --- the engine, its views --------------------------------------------------------------

    def _get_engine(self) -> SqlEngine:
        """The screen's engine, opened on first use (in a worker thread)."""
        from core.sql import EngineOptions, SqlEngine
        from core.store.workspace import Workspace

        if self._engine is None:
            today = self.app.today() if hasattr(self.app, "today") else None
            self._engine = SqlEngine(Workspace(self.app.workspace.root), EngineOptions(today=today))
        return self._engine

    @work(thread=True, exit_on_error=False, group="query-views")
    def _fill_views(self) -> None:
        from core.sql.views import ViewCatalog
        from core.store.workspace import Workspace

        try:
            specs = list(ViewCatalog(Workspace(self.app.workspace.root)).specs().values())
        except ParqctlError as exc:
            self.app.call_from_thread(self._status, exc.one_line(), "error")
            return
        self.app.call_from_thread(self._show_views, specs)

    def _show_views(self, specs: list[ViewSpec]) -> None:
        tree = self.query_one(Tree)
        tree.clear()
        tree.root.expand()
        tree.show_root = False
        for spec in specs:
            node = tree.root.add(spec.name, data=spec.name, expand=spec.name == "bars_1d")
            for name, kind in spec.columns:
                node.add_leaf(Text.assemble(name, " ", (kind.lower(), "dim")), data=name)

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        if event.node.data and not event.node.allow_expand:
            self._insert(str(event.node.data))

    def _insert(self, text: str) -> None:
        editor = self.query_one(SqlEditor)
        editor.insert(text)
        editor.focus()

    def action_views(self) -> None:
        tree = self.query_one(Tree)
        tree.toggle_class("-shown")
        if tree.has_focus:
            self.query_one(SqlEditor).focus()
        else:
            tree.focus()

    # --- running ----------------------------------------------------------------------------

    def set_query(self, sql: str, *, run: bool = False) -> None:
        """Put ``sql`` in the editor (another screen opening this one prefilled); on a
        screen shown for the first time, once it is mounted."""
        if not self.is_mounted:
            self.call_after_refresh(self.set_query, sql, run=run)
            return
        self.query_one(SqlEditor).load_text(sql)
        if run:
            self.action_run()

    def action_run(self) -> None:
        sql = self.query_one(SqlEditor).text
        if not sql.strip():
            self._status("nothing to run", "error")
            return
        if self._engine is not None:
            self._engine.interrupt()  # a query still running gives way
        self._run_id += 1
        self._running, self._more, self._sql = True, False, sql
        self._status("running… (escape interrupts)", "running")
        self._run(self._run_id, sql)

    @work(thread=True, exit_on_error=False, group="query", description="query")
    def _run(self, run: int, sql: str) -> None:
        from core.sql import QueryError, QueryInterrupted

        started = perf_counter()
        with self._engine_lock:
            try:
                engine = self._get_engine()
                result = engine.execute(sql)
                table = result.fetch(PAGE_ROWS)
                more = result.has_more()
                self._result = result
                page = Page(
                    result.columns,
                    result.types,
                    table,
                    True,
                    more,
                    perf_counter() - started,
                    table.num_rows,
                )
            except QueryInterrupted:
                self.post_message(QueryFailed(run, "interrupted", cancelled=True))
                self._record(sql, None, perf_counter() - started, "interrupted")
                return
            except (QueryError, ParqctlError) as exc:
                self.post_message(QueryFailed(run, exc.one_line()))
                self._record(sql, None, perf_counter() - started, exc.one_line())
                return
        self.post_message(PageLoaded(run, page))
        self._record(sql, table.num_rows, page.elapsed_s, None)

    def _record(self, sql: str, rows: int | None, elapsed: float, error: str | None) -> None:
        # A history that cannot be written is not worth failing a query for.
        with contextlib.suppress(OSError):
            history.record(self.app.workspace.root, sql, rows=rows, elapsed_s=elapsed, error=error)

    def action_more(self) -> None:
        if self._running or not self._more or self._result is None:
            return
        if self._shown >= MAX_SHOWN_ROWS:
            self._status(f"{self._shown:,} rows shown: export (ctrl+g) for the rest")
            return
        self._running = True
        self._status(f"{self._shown:,} rows · fetching more…", "running")
        self._fetch_more(self._run_id, self._result)

    @work(thread=True, exit_on_error=False, group="query", description="more rows")
    def _fetch_more(self, run: int, result: QueryResult) -> None:
        from core.sql import QueryError, QueryInterrupted

        started = perf_counter()
        with self._engine_lock:
            try:
                table = result.fetch(PAGE_ROWS)
                more = result.has_more()
            except QueryInterrupted:
                self.post_message(QueryFailed(run, "interrupted", cancelled=True))
                return
            except QueryError as exc:
                self.post_message(QueryFailed(run, exc.one_line()))
                return
        page = Page(
            result.columns,
            result.types,
            table,
            False,
            more,
            perf_counter() - started,
            result.rows_read,
        )
        self.post_message(PageLoaded(run, page))

    def action_cancel(self) -> None:
        if self._running and self._engine is not None:
            self._engine.interrupt()
            self._status("interrupting…", "running")
        else:
            self.app.action_back()  # nothing to interrupt: escape goes back, as everywhere

    def on_page_loaded(self, message: PageLoaded) -> None:
        if message.run != self._run_id:
            return
        page = message.page
        table = self.query_one(DataTable)
        if page.first:
            table.clear(columns=True)
            for name in page.columns:
                table.add_column(name)
            self._shown = 0
        table.add_rows(rows_of(page.table))
        self._shown += page.table.num_rows
        self._running, self._more = False, page.more
        if not page.columns:
            self._status(f"done in {page.elapsed_s:.2f} s")
            return
        more = " · more: ctrl+l or move to the last row" if page.more else ""
        rows = f"{self._shown:,} row{'s' if self._shown != 1 else ''}"
        self._status(f"{rows}{' so far' if page.more else ''} in {page.elapsed_s:.2f} s{more}")

    def on_query_failed(self, message: QueryFailed) -> None:
        if message.run != self._run_id:
            return
        self._running = False
        if message.cancelled:
            self._more = False
            self._status("interrupted: nothing was written", "error")
        else:
            self._status(message.error, "error")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = event.data_table
        if self._more and event.cursor_row >= table.row_count - 1:
            self.action_more()

    # --- history and export -------------------------------------------------------------------

    def action_history(self) -> None:
        entries = history.load(self.app.workspace.root)
        if not entries:
            self.notify("no queries yet in .parqctl/sql_history.jsonl")
            return

        def chosen(sql: str | None) -> None:
            if sql:
                self.query_one(SqlEditor).load_text(sql)
                self.query_one(SqlEditor).focus()

        self.app.push_screen(HistoryScreen(entries), chosen)

    def action_export(self) -> None:
        if not self._sql.strip():
            self.notify("run a query first, then export its rows", severity="warning")
            return
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self._now()))
        suggested = str(Path.cwd() / f"query-{stamp}.csv")

        def chosen(path: str | None) -> None:
            if path:
                self._export(self._sql, path)

        self.app.push_screen(ExportScreen(suggested), chosen)

    def _now(self) -> float:
        return self.app.now() if hasattr(self.app, "now") else time.time()

    def _export(self, sql: str, path: str) -> None:
        from core.sql.output import format_for, out_path

        try:
            target = out_path(self.app.workspace.root, path)
            fmt = format_for(target)
        except ParqctlError as exc:
            self.notify(exc.one_line(), severity="error", timeout=8)
            return
        self._running, self._more = True, False
        self._status(f"exporting to {target}…", "running")
        self._write(sql, target, fmt)

    @work(thread=True, exit_on_error=False, group="query", description="export")
    def _write(self, sql: str, target: Path, fmt: str) -> None:
        from core.sql import QueryInterrupted
        from core.sql.output import write_file

        with self._engine_lock:
            try:
                result = self._get_engine().execute(sql)
                rows = write_file(result.batches(), target, fmt, result.empty().schema)
            except QueryInterrupted:
                self.post_message(Exported("export interrupted: nothing was written", False))
                return
            except (ParqctlError, OSError) as exc:
                text = exc.one_line() if isinstance(exc, ParqctlError) else str(exc)
                self.post_message(Exported(f"export failed: {text}", False))
                return
        self.post_message(Exported(f"exported {rows:,} rows to {target}", True))

    def on_exported(self, message: Exported) -> None:
        self._running = False
        self._status(message.text + (" · run again to page" if message.ok else ""))
        self.notify(message.text, severity="information" if message.ok else "error", timeout=8)

    # --- status -------------------------------------------------------------------------------

    def _status(self, text: str, state: str | None = None) -> None:
        status = self.query_one("#query-status", Static)
        status.update(text)
        status.set_class(state == "error", "-error")
        status.set_class(state == "running", "-running")


def open_query(app: App, sql: str, *, run: bool = True) -> None:
    """Switch to the Query screen with ``sql`` in its editor (and run it): for the other
    screens' "query this" keys, e.g. the heatmap's
    ``open_query(self.app, prefill.bars_around(ticker, interval, day))`` or the integrity
    screen's ``open_query(self.app, prefill.finding_file(finding.path))``
    (``core.sql.prefill``)."""
    app.switch_mode("query")
    screen = app.screen
    if isinstance(screen, QueryScreen):
        screen.set_query(sql, run=run)
