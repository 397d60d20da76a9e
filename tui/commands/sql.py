"""``parqctl sql``: read-only SQL over the workspace with DuckDB.

The query runs in a thread so that Ctrl-C reaches the main thread at once: it interrupts
DuckDB (``SqlEngine.interrupt``), the half-written ``--out`` temp file is removed, and the
command exits 130 with nothing written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ParqctlError
from tui.arguments import iso_date, positive_int

if TYPE_CHECKING:
    import pyarrow as pa

    from core.sql import QueryResult, SqlEngine

FORMATS = ("table", "csv", "json", "parquet")
TABLE_ROWS = 1000  # rows the table format shows without --limit
CELL_WIDTH = 40


def register(commands) -> None:
    p = commands.add_parser(
        "sql",
        help="read-only SQL over the workspace (DuckDB): bars_<iv>, tickers, files, gaps, "
        "findings, audit, quarantine; exit 1 on a query error",
        description="Run read-only SQL over the workspace. `parqctl sql --views` lists the "
        "views and their columns.",
    )
    p.add_argument("query", nargs="?", metavar="QUERY", help="the SQL to run")
    p.add_argument("-f", "--file", metavar="FILE", help="read the SQL from FILE (- for stdin)")
    p.add_argument(
        "--format",
        choices=FORMATS,
        help="table (default on screen), csv, json, or parquet (with --out); with --out, "
        "the file's extension decides when not given",
    )
    p.add_argument("--out", "-o", metavar="PATH", help="write the rows to PATH, atomically")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help=f"at most N rows (the table shows {TABLE_ROWS:,} unless told)",
    )
    p.add_argument("--views", action="store_true", help="list the views and their columns")
    p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="DuckDB's memory limit, e.g. 2GiB (default: a quarter of RAM); beyond it, "
        "work spills to .parqctl/sql-tmp/",
    )
    p.add_argument(
        "--today", type=iso_date, metavar="DATE", help="judge gaps' recoverability as of DATE"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from core.sql import SqlEngine

    sql = _query_text(args)
    fmt = _format(args)
    with SqlEngine.open(args.workspace, memory_limit=args.memory_limit, today=args.today) as engine:
        if args.views:
            _print_views(engine, fmt)
            return 0
        target = None
        if args.out:
            from core.sql.output import out_path

            target = out_path(engine.ws.root, args.out, force=args.force)
        outcome: dict[str, Any] = {}
        worker = threading.Thread(
            target=_run_query, args=(engine, sql, fmt, target, args.limit, outcome), daemon=True
        )
        interrupted = threading.Event()

        def on_sigint(_signum, _frame) -> None:
            # Our own handler, not KeyboardInterrupt: the worker is stopped through DuckDB,
            # and pyarrow's writers see no signal of their own.
            interrupted.set()
            engine.interrupt()

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            worker.start()
            while worker.is_alive():
                worker.join(0.1)
                if interrupted.is_set():
                    engine.interrupt()  # again, in case it came between two fetches
        finally:
            signal.signal(signal.SIGINT, previous)
        if interrupted.is_set() and "error" in outcome:
            outcome["error"] = _interrupted()  # whatever the interrupt broke on the way out
        for note in engine.notes:
            print(f"parqctl: note: {note}", file=sys.stderr)
        if "error" in outcome:
            raise outcome["error"]
        return 0


def _interrupted() -> ParqctlError:
    from core.sql import QueryInterrupted

    return QueryInterrupted()


def _query_text(args: argparse.Namespace) -> str:
    if args.views:
        return ""
    if args.query is not None and args.file is not None:
        raise ParqctlError("give the query or -f FILE, not both", "see `parqctl sql --help`")
    if args.file == "-":
        return sys.stdin.read()
    if args.file is not None:
        try:
            return Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ParqctlError(f"cannot read {args.file}: {reason}", "check the path") from None
    if args.query is None:
        raise ParqctlError("no query given", "pass QUERY, -f FILE, or --views")
    return args.query


def _format(args: argparse.Namespace) -> str:
    from core.sql.output import format_for

    if args.views:
        return args.format or "table"
    if args.out:
        if args.format == "table":
            raise ParqctlError(
                "--format table is for the screen", "write csv, json or parquet with --out"
            )
        return format_for(Path(args.out), args.format)
    if args.format == "parquet":
        raise ParqctlError("--format parquet needs --out PATH", "name the file to write")
    return args.format or "table"


def _run_query(
    engine: SqlEngine,
    sql: str,
    fmt: str,
    target: Path | None,
    limit: int | None,
    outcome: dict[str, Any],
) -> None:
    """The query and its output, in the worker thread; any error is handed back."""
    try:
        result = engine.execute(sql)
        if target is not None:
            from core.sql.output import write_file

            rows = write_file(result.batches(limit), target, fmt, result.schema or _schema(result))
            print(f"wrote {rows:,} rows to {target}", file=sys.stderr)
        elif fmt == "table":
            _print_table(result, limit or TABLE_ROWS, limit is None)
        else:
            from core.sql.output import write_stream

            out = sys.stdout.buffer
            write_stream(result.batches(limit), out, fmt, result.schema or _schema(result))
            out.flush()
    except BaseException as exc:  # handed to the main thread, which raises it
        outcome["error"] = exc


def _schema(result: QueryResult) -> pa.Schema:
    return result.empty().schema


# --- the table format ---------------------------------------------------------------------


def _cell(value: Any) -> str:
    from core.sql.output import plain_value

    if value is None:
        return ""
    value = plain_value(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def table_lines(table: pa.Table) -> list[str]:
    """An aligned text table: numbers right-aligned, long values cut with an ellipsis."""
    import pyarrow as pa

    from core.sql.output import readable

    names = table.column_names
    batches = [readable(b) for b in table.to_batches()]
    # By position: a join can give two columns one name.
    columns = [[c.to_pylist() for c in b.columns] for b in batches]
    rows = [[_cell(v) for v in row] for b in columns for row in zip(*b, strict=True)]
    numeric = [
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        for t in table.schema.types
    ]
    widths = [max([len(n), *(len(r[i]) for r in rows)]) for i, n in enumerate(names)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if right else c.ljust(w)
            for c, w, right in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    return [line(names), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _print_table(result: QueryResult, shown: int, default_limit: bool) -> None:
    import pyarrow as pa

    batches = list(result.batches(shown))
    table = pa.Table.from_batches(batches, schema=result.schema) if batches else result.empty()
    if not result.columns:
        print(f"done in {result.elapsed_s:.2f} s", file=sys.stderr)
        return
    print("\n".join(table_lines(table)))
    more = default_limit and result.has_more()
    count = f"{table.num_rows:,} row{'s' if table.num_rows != 1 else ''}"
    if more:
        count = f"first {count} shown; --limit N or --format csv for more"
    print(f"({count}, {result.elapsed_s:.2f} s)", file=sys.stderr)


def _print_views(engine: SqlEngine, fmt: str) -> None:
    views = engine.views()
    if fmt == "json":
        print(
            json.dumps(
                {
                    v.name: {
                        "description": v.description,
                        "columns": [{"name": n, "type": t} for n, t in v.columns],
                    }
                    for v in views
                },
                indent=2,
            )
        )
        return
    width = shutil.get_terminal_size((100, 24)).columns
    for view in views:
        print(f"{view.name}: {view.description}")
        line = "   "
        for i, (name, kind) in enumerate(view.columns):
            item = f" {name} {kind}" + ("," if i < len(view.columns) - 1 else "")
            if len(line) + len(item) > width and line.strip():
                print(line)
                line = "   "
            line += item
        print(line)
