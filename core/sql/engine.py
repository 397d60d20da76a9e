"""A read-only DuckDB connection over a workspace, locked down by DuckDB's own settings.

    with SqlEngine.open(ws) as engine:
        result = engine.execute("SELECT * FROM bars_1d WHERE ticker = 'AAPL'")
        for batch in result.batches():
            ...

The connection is in memory and starts locked: external access off (no file, extension,
network or secret is ever reached by a statement: ``read_text``, ``COPY ... TO``,
``ATTACH``, ``INSTALL``/``LOAD``, ``EXPORT DATABASE`` all fail), extensions never
installed or loaded automatically, Python replacement scans off, and the configuration
locked (no ``SET``/``PRAGMA``/``RESET`` can undo any of it). DuckDB itself reads no file:
parqctl hands it the workspace as Arrow data (``core.sql.views``), built when a query
first names a view. DuckDB's allow-lists (``allowed_directories``, ``allowed_paths``) are
deliberately not used: a path they allow is writable too, and ``COPY ... TO
'<bar file>' (USE_TMP_FILE false)`` would overwrite a bar file in place. Memory is bounded (``memory_limit``); what does not fit spills to a
temp directory of this session under ``.parqctl/sql-tmp/`` (never in ``data/``), capped
at the room left below the critical watermark, and removed on close.

Another thread may ``interrupt()`` a running query (the CLI's Ctrl-C, the console's
escape); the query then raises ``QueryInterrupted`` and the connection stays usable.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ParqctlError
from core.jobs import JobCancelled
from core.safety import atomic
from core.sql.views import BAR_VIEW_COLUMNS, TICKER_FIELD, ViewCatalog, ViewSpec
from core.store.workspace import STATE_DIR, Workspace

if TYPE_CHECKING:
    import pyarrow as pa

TEMP_DIR = Path(STATE_DIR) / "sql-tmp"
BATCH_ROWS = 2048
_SESSION_DIR = re.compile(r"^(?P<pid>\d+)-[0-9a-f]{8}$")
_MISSING_TABLE = re.compile(r"Table with name (?P<name>[^\s!]+) does not exist", re.IGNORECASE)
_UNREADABLE = re.compile(
    r"(?:Could not open Parquet input source|Error reading|Error creating dataset)\s*'(?P<path>[^']+)':\s*(?P<why>.*)",
    re.DOTALL,
)
_LINE = re.compile(r"^LINE (?P<line>\d+): (?P<snippet>.*)$")


class QueryError(ParqctlError):
    """A query DuckDB refused or failed: its message on one line, with the position."""

    exit_code = 1

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        where = f" (line {line}, column {column})" if line is not None and column else ""
        if line is not None and not column:
            where = f" (line {line})"
        super().__init__(message + where)
        self.line, self.column = line, column


class QueryInterrupted(JobCancelled):
    """The query was interrupted (Ctrl-C, escape); nothing was written."""

    def __init__(self) -> None:
        super().__init__("query interrupted", "nothing was written")


@dataclass(frozen=True)
class EngineOptions:
    memory_limit: str | None = None  # DuckDB syntax ("2GiB"); default: a quarter of RAM
    threads: int | None = None  # default: DuckDB's (the CPU count)
    today: date | None = None  # the day gaps are judged from; default: today


def default_memory_limit() -> str:
    try:
        import psutil

        total = psutil.virtual_memory().total
    except Exception:  # psutil missing or refusing: DuckDB's own default then
        return "80%"
    return f"{max(256, total // 4 // 2**20)}MiB"


@dataclass
class _Pending:
    reader: Any  # the DuckDB relation's Arrow reader
    leftover: pa.RecordBatch | None = None


@dataclass
class QueryResult:
    """A query's columns and its rows, streamed from DuckDB as Arrow record batches."""

    engine: SqlEngine
    sql: str
    columns: list[str]
    types: list[str]
    started: float
    _pending: _Pending | None = field(default=None, repr=False)
    schema: pa.Schema | None = None
    rows_read: int = 0
    exhausted: bool = False

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def batches(self, limit: int | None = None) -> Iterator[pa.RecordBatch]:
        """The rows as record batches, at most ``limit`` rows in all."""
        while limit is None or self.rows_read < limit:
            batch = self._next(None if limit is None else limit - self.rows_read)
            if batch is None:
                return
            yield batch

    def fetch(self, rows: int) -> pa.Table:
        """The next ``rows`` rows (fewer at the end; none once exhausted)."""
        import pyarrow as pa

        schema: pa.Schema | None = None
        got: list[pa.RecordBatch] = []
        for batch in self.batches(self.rows_read + rows):
            schema = batch.schema
            got.append(batch)
        if not got:
            return self.empty()
        return pa.Table.from_batches(got, schema=schema)

    def empty(self) -> pa.Table:
        import pyarrow as pa

        if self.schema is not None:
            return self.schema.empty_table()
        return pa.table({name: pa.array([], pa.null()) for name in self.columns})

    def _next(self, at_most: int | None) -> pa.RecordBatch | None:
        pending = self._pending
        if pending is None or self.exhausted:
            return None
        batch = pending.leftover
        pending.leftover = None
        if batch is None:
            with self.engine.translated(self.sql):
                try:
                    batch = pending.reader.read_next_batch()
                except StopIteration:
                    self.exhausted = True
                    self.close()
                    return None
        if at_most is not None and batch.num_rows > at_most:
            pending.leftover = batch.slice(at_most)
            batch = batch.slice(0, at_most)
        self.rows_read += batch.num_rows
        return batch

    def has_more(self) -> bool:
        """Whether rows are left (reads ahead one batch to know)."""
        pending = self._pending
        if pending is None or self.exhausted:
            return False
        if pending.leftover is None:
            with self.engine.translated(self.sql):
                try:
                    pending.leftover = pending.reader.read_next_batch()
                except StopIteration:
                    self.exhausted = True
                    self.close()
                    return False
        return True

    def close(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            with contextlib.suppress(Exception):
                pending.reader.close()
        self.engine._forget(self)


class SqlEngine:
    """One locked-down in-memory DuckDB connection with the workspace's views."""

    def __init__(self, ws: Workspace, options: EngineOptions | None = None) -> None:
        import duckdb

        self.ws = ws
        self.options = options or EngineOptions()
        self.catalog = ViewCatalog(ws, self.options.today)
        self._specs = self.catalog.specs()
        self._built: set[str] = set()
        self._current: QueryResult | None = None
        self._lock = threading.RLock()
        self.temp_dir, temp_limit = _session_temp_dir(ws)
        config: dict[str, Any] = {
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "allow_persistent_secrets": False,
            "python_enable_replacements": False,
            "memory_limit": self.options.memory_limit or default_memory_limit(),
            "temp_directory": str(self.temp_dir) if temp_limit else "",
        }
        if temp_limit:
            config["max_temp_directory_size"] = f"{temp_limit // 2**20}MiB"
        if self.options.threads:
            config["threads"] = self.options.threads
        try:
            self.con = duckdb.connect(":memory:", config=config)
            # Per connection, so not in ``config``: a progress bar would print into the
            # CLI's CSV or JSON, and over the console. Then nothing can be changed.
            self.con.execute("SET enable_progress_bar = false")
            self.con.execute("SET enable_progress_bar_print = false")
            self.con.execute("SET lock_configuration = true")
        except duckdb.Error as exc:
            self._remove_temp()
            raise ParqctlError(
                f"cannot start DuckDB: {_first_line(str(exc))}",
                "check --memory-limit (e.g. 2GiB)",
            ) from None

    @classmethod
    def open(cls, root: str | os.PathLike[str] | Workspace | None = None, **options: Any):
        ws = root if isinstance(root, Workspace) else Workspace.open(root)
        return cls(ws, EngineOptions(**options))

    def __enter__(self) -> SqlEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- views ---------------------------------------------------------------------------

    def refresh(self) -> None:
        """Forget the views built so far: the next query that names one builds it again
        from the disk and the metadata as they are then (a long console session)."""
        with self._lock:
            if self._current is not None:
                self._current.close()
            for name in self._built:
                with contextlib.suppress(Exception):
                    if self.catalog.interval_of(name) is not None:
                        self.con.execute(f'DROP VIEW IF EXISTS "{name}"')
                        self.con.unregister(f"_source_{name}")
                    else:
                        self.con.unregister(name)
            self._built.clear()
            self.ws = Workspace(self.ws.root)  # metadata is cached per instance
            self.catalog = ViewCatalog(self.ws, self.options.today)
            self._specs = self.catalog.specs()

    def views(self) -> list[ViewSpec]:
        """The views of this workspace with their columns; nothing is read to list them."""
        return list(self._specs.values())

    @property
    def notes(self) -> list[str]:
        """What the operator should know about the views built so far (files left out)."""
        return list(self.catalog.notes)

    def _ensure(self, name: str) -> bool:
        """Build view ``name`` if it is one of ours and not built yet."""
        if name not in self._specs or name in self._built:
            return False
        data = self.catalog.build(name)
        if self.catalog.interval_of(name) is not None:
            source = f"_source_{name}"
            self.con.register(source, data)
            columns = ", ".join(
                f'"{TICKER_FIELD}" AS ticker' if col == "ticker" else f'"{col}"'
                for col, _ in BAR_VIEW_COLUMNS
            )
            self.con.execute(
                f'CREATE OR REPLACE TEMP VIEW "{name}" AS SELECT {columns} FROM {source}'
            )
        else:
            self.con.register(name, data)
        self._built.add(name)
        return True

    def _prepare(self, sql: str) -> None:
        try:
            names = self.con.get_table_names(sql)
        except Exception:  # unparsable or unbindable: executing it reports why
            return
        for name in sorted(names):
            self._ensure(name)

    # --- running -------------------------------------------------------------------------

    def execute(self, sql: str, batch_rows: int = BATCH_ROWS) -> QueryResult:
        """Run ``sql`` (one or more statements; the rows of the last one are returned).

        Raises QueryError (one line, with the position) for anything DuckDB refuses,
        QueryInterrupted when ``interrupt()`` was called meanwhile."""
        with self._lock:
            if self._current is not None:
                self._current.close()
            with contextlib.suppress(Exception):  # what a failed statement left unfinished
                self.con.abort()
            started = time.perf_counter()
            statements = self._statements(sql)
            self._prepare(sql)
            for offset, text in statements[:-1]:
                self._run(text, offset, sql, self._run_to_end)
            offset, text = statements[-1]
            relation = self._run(text, offset, sql, lambda t: self.con.sql(t))
            if relation is None:
                result = QueryResult(self, sql, [], [], started, exhausted=True)
            else:
                reader = self._run(
                    text, offset, sql, lambda _t: relation.to_arrow_reader(batch_rows)
                )
                result = QueryResult(
                    self,
                    sql,
                    list(relation.columns),
                    [str(t) for t in relation.types],
                    started,
                    _Pending(reader),
                    reader.schema,
                )
            self._current = result
            return result

    def _run_to_end(self, text: str) -> None:
        self.con.execute(text)
        self.con.complete()

    def _run(self, text: str, offset: int, whole: str, call):
        """``call(text)``, building a view the statement names when DuckDB misses one."""
        import duckdb

        for _ in range(len(self._specs) + 1):
            try:
                with self.translated(whole, offset):
                    return self._positioned(call, text)
            except QueryError as exc:
                cause = exc.__cause__
                missing = (
                    _MISSING_TABLE.search(str(cause)) if isinstance(cause, duckdb.Error) else None
                )
                if missing is None or not self._ensure(missing.group("name").strip('"')):
                    raise
        raise QueryError("the query names views that could not be made")

    def _positioned(self, call, text: str):
        """``call(text)``; a parser, binder or catalog error that lost its position (the
        relation API trims it) is raised again as DuckDB reports it to ``execute``, which
        fails the same way before running anything."""
        import duckdb

        try:
            return call(text)
        except (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException) as exc:
            if "\nLINE " in str(exc):
                raise
            try:
                self.con.execute(text)
            except type(exc) as full:
                raise full from None
            except duckdb.Error:
                pass
            with contextlib.suppress(Exception):
                self.con.abort()
            raise

    def _statements(self, sql: str) -> list[tuple[int, str]]:
        """(offset in ``sql``, text) of each statement."""
        if not sql.strip():
            raise QueryError("no query given")
        with self.translated(sql):
            found = self.con.extract_statements(sql)
        statements, position = [], 0
        for statement in found:
            text = statement.query
            at = sql.find(text.strip(), position)
            at = position if at < 0 else at - (len(text) - len(text.lstrip()))
            statements.append((at, text))
            position = max(position, at + len(text))
        if not statements:
            raise QueryError("no query given (only comments)")
        return statements

    @contextlib.contextmanager
    def translated(self, sql: str, offset: int = 0) -> Iterator[None]:
        """DuckDB's and pyarrow's errors as QueryError / QueryInterrupted."""
        import duckdb
        import pyarrow as pa

        try:
            yield
        except duckdb.InterruptException:
            raise QueryInterrupted() from None
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            if "INTERRUPT Error" in str(exc):  # through the Arrow stream: another class
                raise QueryInterrupted() from None
            raise self._error(str(exc), sql, offset) from exc

    def _error(self, text: str, sql: str, offset: int) -> QueryError:
        unreadable = _UNREADABLE.search(text)
        if unreadable:
            path = unreadable.group("path")
            with contextlib.suppress(ValueError):
                path = str(Path(path).relative_to(self.ws.root))
            return QueryError(
                f"cannot read {path}: {_first_line(unreadable.group('why'))}; the bars views "
                "leave out the files parqctl's index knows as unreadable: run `parqctl "
                "availability` or `parqctl integrity` to index it, or quarantine it"
            )
        message, line, column = describe_error(text, sql, offset)
        missing = _MISSING_TABLE.search(message)
        if missing and missing.group("name").strip('"') not in self._specs:
            name = missing.group("name").strip('"')
            return QueryError(
                f"no view {name} in this workspace; the views are {', '.join(self._specs)}",
                line,
                column,
            )
        return QueryError(message, line, column)

    def interrupt(self) -> None:
        """Stop the running query (from any thread)."""
        with contextlib.suppress(Exception):
            self.con.interrupt()

    def _forget(self, result: QueryResult) -> None:
        if self._current is result:
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        with contextlib.suppress(Exception):
            self.con.close()
        self._remove_temp()

    def _remove_temp(self) -> None:
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


# --- errors -------------------------------------------------------------------------------


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def describe_error(text: str, sql: str, offset: int = 0) -> tuple[str, int | None, int | None]:
    """DuckDB's error as one line, and its position (line, column) in ``sql``.

    DuckDB writes the message, detail lines, then ``LINE n: <snippet>`` and a caret line;
    the snippet may be cut (``...``) around the caret: it is found in the statement's line
    to give the column. ``offset`` is where the statement starts in ``sql``."""
    lines = text.rstrip().splitlines()
    message_lines, position = [], None
    for i, raw in enumerate(lines):
        match = _LINE.match(raw)
        if match:
            caret_line = lines[i + 1] if i + 1 < len(lines) else ""
            position = (int(match["line"]), match["snippet"], caret_line.find("^"))
            break
        if raw.strip():
            message_lines.append(raw.strip())
    message = "; ".join(message_lines) or "query failed"
    if position is None:
        return message, None, None
    statement_line, snippet, caret = position
    caret -= len(f"LINE {statement_line}: ")
    before = sql[:offset]
    line = before.count("\n") + statement_line
    statement_lines = sql[offset:].split("\n")
    text_line = (
        statement_lines[statement_line - 1] if statement_line <= len(statement_lines) else ""
    )
    start_col = len(before) - before.rfind("\n") - 1 if statement_line == 1 else 0
    core = snippet[3:] if snippet.startswith("...") else snippet
    core_caret = caret - (3 if snippet.startswith("...") else 0)
    core = core[:-3] if core.endswith("...") else core
    at = text_line.find(core) if core else -1
    if at < 0 or caret < 0:
        return message, line, None
    return message, line, start_col + at + core_caret + 1


# --- the temp directory -------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _session_temp_dir(ws: Workspace) -> tuple[Path | None, int]:
    """This session's spill directory and the bytes it may hold.

    ``.parqctl/sql-tmp/<pid>-<random>`` (directories left by sessions whose process is
    gone are removed first), else one in the system's temp directory when the workspace
    cannot be written; the limit is the room left below the critical watermark of its
    filesystem (0: no spilling; a query that does not fit in memory then fails)."""
    from core.config import Watermarks
    from core.disk.watermarks import disk_status

    directory: Path | None = None
    try:
        with atomic.opened_dir(ws.root, TEMP_DIR, create=True) as fd:
            with os.scandir(fd) as entries:
                stale = [
                    e.name
                    for e in entries
                    if (m := _SESSION_DIR.match(e.name))
                    and e.is_dir(follow_symlinks=False)
                    and not _alive(int(m["pid"]))
                ]
            name = f"{os.getpid()}-{secrets.token_hex(4)}"
            os.mkdir(name, 0o700, dir_fd=fd)
        for old in stale:
            shutil.rmtree(ws.root / TEMP_DIR / old, ignore_errors=True)
        directory = ws.root / TEMP_DIR / name
    except OSError:
        with contextlib.suppress(OSError):
            directory = Path(tempfile.mkdtemp(prefix="parqctl-sql-"))
    if directory is None:
        return None, 0
    try:
        marks = ws.config.watermarks
    except ParqctlError:
        marks = Watermarks()
    try:
        status = disk_status(directory, marks)
    except OSError:
        return directory, 0
    room = int(status.total * marks.critical / 100) - status.used
    return directory, max(0, room) if room > 2**20 else 0
