"""The views of ``parqctl sql``: what each holds, its columns, and how it is built.

Every view is built from parqctl's own engine, so that it agrees with the other commands:

- ``bars_<iv>``: each ticker's bars from where the collector reads them now, exactly as
  ``core.store.routing.read_ticker_bars`` picks them (the routed layout when it has files, else
  the other one, else a stranded legacy file), never two layouts for one ticker. The file
  list is taken from the disk when the view is first used (directory entries only, no file
  opened), and the ticker of each file from that choice, never from the file or from a
  Hive path parser (``ticker=EURUSD=X`` is one directory, key ``ticker``). The view reads
  them through a pyarrow dataset whose every file carries ``ticker == T`` as its partition
  expression: a filter on ticker picks the files before any is opened, and a filter on
  date skips the row groups outside it by their footer statistics.
- ``tickers``, ``files``, ``gaps``, ``findings``, ``audit``, ``quarantine``: Arrow tables
  made from tickers.json and routing, the file index, the gap report, the last integrity
  check, the audit log and the quarantine records.

Views are built lazily: opening the engine declares them; the first query naming one
builds it (``ViewCatalog.build``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ParqctlError
from core.store.layout import (
    DATASET_PREFIX,
    INTERVALS,
    LEGACY_HOMES,
    PARTITION_FILE,
    validate_interval,
    validate_ticker,
)
from core.store.workspace import Workspace, discover_datasets

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

BARS_PREFIX = "bars_"
# The ticker column of a bars dataset, named so that a file's own extra column never
# shadows it; the view renames it ``ticker``.
TICKER_FIELD = "__parqctl_ticker"
_TEMP_MARKERS = (".tmp", ".partial", ".parqctl-tmp-")


@dataclass(frozen=True)
class ViewSpec:
    """A view as ``parqctl sql --views`` lists it."""

    name: str
    description: str
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type)

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]


BAR_VIEW_COLUMNS = (
    ("ticker", "VARCHAR"),
    ("stock", "VARCHAR"),
    ("date", "TIMESTAMP_NS"),
    ("open", "DOUBLE"),
    ("high", "DOUBLE"),
    ("low", "DOUBLE"),
    ("close", "DOUBLE"),
    ("volume", "BIGINT"),
    ("sequence", "BIGINT"),
)

_SPECS = {
    "tickers": ViewSpec(
        "tickers",
        "tickers.json flattened: one row per ticker and interval, with where the collector "
        "routes it",
        (
            ("ticker", "VARCHAR"),
            ("interval", "VARCHAR"),
            ("status", "VARCHAR"),
            ("ticker_status", "VARCHAR"),
            ("storage", "VARCHAR"),
            ("venue", "VARCHAR"),
            ("added_date", "DATE"),
            ("last_checked", "DATE"),
            ("last_found_date", "DATE"),
            ("last_data_date", "DATE"),
        ),
    ),
    "files": ViewSpec(
        "files",
        "the file index: every bar file, its layout, ticker, interval, rows and bytes, and "
        "why it is unreadable",
        (
            ("path", "VARCHAR"),
            ("layout", "VARCHAR"),
            ("ticker", "VARCHAR"),
            ("interval", "VARCHAR"),
            ("venue", "VARCHAR"),
            ("year", "SMALLINT"),
            ("month", "TINYINT"),
            ("rows", "BIGINT"),
            ("bytes", "BIGINT"),
            ("modified", "TIMESTAMP"),
            ("min_date", "TIMESTAMP_NS"),
            ("max_date", "TIMESTAMP_NS"),
            ("readable", "BOOLEAN"),
            ("error", "VARCHAR"),
        ),
    ),
    "gaps": ViewSpec(
        "gaps",
        "missing sessions as runs, as `parqctl availability` reports them, with the last day "
        "each can still be fetched",
        (
            ("ticker", "VARCHAR"),
            ("interval", "VARCHAR"),
            ("first_missing", "DATE"),
            ("last_missing", "DATE"),
            ("sessions", "INTEGER"),
            ("lost_sessions", "INTEGER"),
            ("status", "VARCHAR"),
            ("recoverable_until", "DATE"),
        ),
    ),
    "findings": ViewSpec(
        "findings",
        "the findings of the last full integrity check (`parqctl integrity`)",
        (
            ("severity", "VARCHAR"),
            ("code", "VARCHAR"),
            ("path", "VARCHAR"),
            ("ticker", "VARCHAR"),
            ("interval", "VARCHAR"),
            ("scope", "VARCHAR"),
            ("message", "VARCHAR"),
            ("advice", "VARCHAR"),
            ("checked_at", "TIMESTAMP"),
        ),
    ),
    "audit": ViewSpec(
        "audit",
        "the audit log, .parqctl/audit.jsonl: who did what, when; details as JSON",
        (
            ("ts", "TIMESTAMP"),
            ("user", "VARCHAR"),
            ("host", "VARCHAR"),
            ("pid", "BIGINT"),
            ("action", "VARCHAR"),
            ("result", "VARCHAR"),
            ("details", "VARCHAR"),
        ),
    ),
    "quarantine": ViewSpec(
        "quarantine",
        "the quarantine's records: each file set aside, why, by whom, and its condition",
        (
            ("id", "VARCHAR"),
            ("condition", "VARCHAR"),
            ("original_path", "VARCHAR"),
            ("bytes", "BIGINT"),
            ("sha256", "VARCHAR"),
            ("reason", "VARCHAR"),
            ("who", "VARCHAR"),
            ("quarantined_at", "TIMESTAMP"),
            ("restore_to", "VARCHAR"),
            ("problem", "VARCHAR"),
        ),
    ),
}
METADATA_VIEWS = tuple(_SPECS)


def bars_view(interval: str) -> str:
    return f"{BARS_PREFIX}{interval}"


def bars_spec(interval: str) -> ViewSpec:
    return ViewSpec(
        bars_view(interval),
        f"the {interval} bars of every ticker, read from where the collector routes it",
        BAR_VIEW_COLUMNS,
    )


def _interval_order(interval: str) -> int:
    return INTERVALS.index(interval) if interval in INTERVALS else len(INTERVALS)


# --- which files the bars views read ------------------------------------------------------


@dataclass
class BarFiles:
    """The files a ``bars_<iv>`` view reads, each with the ticker it holds."""

    interval: str
    paths: list[str] = field(default_factory=list)  # absolute
    tickers: list[str] = field(default_factory=list)  # the ticker of each path
    sources: dict[str, str] = field(default_factory=dict)  # ticker -> source read
    # Files the file index knows as unreadable (unchanged since): (relative path, why)
    left_out: list[tuple[str, str]] = field(default_factory=list)

    def files_of(self, ticker: str) -> list[str]:
        return [p for p, t in zip(self.paths, self.tickers, strict=True) if t == ticker]


def _is_temp(name: str) -> bool:
    return any(marker in name for marker in _TEMP_MARKERS)


def _names(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _legacy_names(directory: Path) -> dict[str, str]:
    """ticker -> absolute path of the legacy files in one ``stocks_<iv>`` directory."""
    found = {}
    for entry in _names(directory):
        name = entry.name
        if (
            name.endswith(".parquet")
            and len(name) > len(".parquet")
            and not _is_temp(name)
            and entry.is_file()
        ):
            found[name[: -len(".parquet")]] = entry.path
    return found


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _partition_files(ticker_dir: Path) -> list[str]:
    """``year=*/month=*/data.parquet`` below one ticker directory, in the order
    ``BarLocation.partition_files`` gives them (by year, then month directory name), from
    directory listings and one ``stat`` per file."""
    files = []
    base = str(ticker_dir)
    for year in sorted(_listdir(base)):
        if not year.startswith("year="):
            continue
        year_dir = f"{base}/{year}"
        for month in sorted(_listdir(year_dir)):
            if month.startswith("month="):
                candidate = f"{year_dir}/{month}/{PARTITION_FILE}"
                if os.path.exists(candidate):
                    files.append(candidate)
    return files


def bar_files(ws: Workspace, interval: str) -> BarFiles:
    """Every file ``bars_<interval>`` reads: per ticker, the files
    ``core.store.routing.read_ticker_bars`` would read, in the same order of preference.

    Tickers are those with a legacy file in any home, a ``ticker=`` directory in any
    partitioned dataset of the interval, or an entry for the interval in tickers.json.
    Files the file index records as unreadable, and that have not changed since, are left
    out (``left_out``): one damaged file would otherwise fail every query of the view.
    """
    from core.store.routing import locate

    validate_interval(interval)
    homes = [ws.root / home / f"{DATASET_PREFIX}{interval}" for home in LEGACY_HOMES]
    candidates: set[str] = set()
    existing: set[str] = set()  # legacy files in the homes, as absolute paths
    for home in homes:
        found = _legacy_names(home)
        candidates.update(found)
        existing.update(found.values())
    partition_dirs: set[str] = set()
    for dataset in discover_datasets(ws.root):
        if dataset.kind == "partitioned" and dataset.interval == interval:
            for entry in _names(dataset.path):
                if entry.name.startswith("ticker=") and len(entry.name) > len("ticker="):
                    candidates.add(entry.name[len("ticker=") :])
                    partition_dirs.add(entry.path)
    for name, entry in ws.tickers.raw.items():
        if isinstance(entry, dict) and interval in (entry.get("intervals") or {}):
            candidates.add(name)

    result = BarFiles(interval)
    for ticker in sorted(candidates):
        try:
            validate_ticker(ticker)
        except ParqctlError:
            continue
        location = locate(ws, ticker, interval)
        legacy_path = str(location.legacy_path)
        has_legacy = (
            legacy_path in existing
            if location.legacy_path.parent in homes
            else location.legacy_path.is_file()
        )

        def partitioned(location=location) -> list[str]:
            directory = str(location.partition_dir)
            if directory not in partition_dirs and not location.partition_dir.is_dir():
                return []
            return _partition_files(location.partition_dir)

        def routed_legacy(has_legacy=has_legacy, legacy_path=legacy_path) -> list[str]:
            return [legacy_path] if has_legacy else []

        order: list[tuple[str, Callable[[], list[str]]]] = [
            ("partitioned", partitioned),
            ("legacy", routed_legacy),
        ]
        if location.mode == "legacy":
            order.reverse()
        order.append(("stranded legacy", lambda s=location.stranded: [str(p) for p in s[:1]]))
        for source, listing in order:
            files = listing()
            if files:
                result.sources[ticker] = source
                result.paths += files
                result.tickers += [ticker] * len(files)
                break
    _leave_out_unreadable(ws, result)
    return result


def _leave_out_unreadable(ws: Workspace, files: BarFiles) -> None:
    """Drop the files the persisted index knows as unreadable, if unchanged since.

    The index is read with pyarrow alone (five columns), not through polars."""
    import pyarrow.compute as pc

    from core.availability.index_shards import read_columns

    index = read_columns(ws.root, ["path", "interval", "size", "mtime_ns", "error"])
    if index is None:
        return  # none yet, or unreadable: nothing is known to be bad
    bad = index.filter(
        pc.and_(pc.is_valid(index["error"]), pc.equal(index["interval"], files.interval))
    )
    if not bad.num_rows:
        return
    chosen = {path: i for i, path in enumerate(files.paths)}
    drop = set()
    for row in bad.select(["path", "size", "mtime_ns", "error"]).to_pylist():
        absolute = str(ws.root / row["path"])
        if absolute not in chosen:
            continue
        try:
            st = os.stat(absolute)
        except OSError:
            continue
        if (st.st_size, st.st_mtime_ns) == (row["size"], row["mtime_ns"]):
            drop.add(chosen[absolute])
            files.left_out.append((row["path"], row["error"]))
    if drop:
        keep = [i for i in range(len(files.paths)) if i not in drop]
        files.paths = [files.paths[i] for i in keep]
        files.tickers = [files.tickers[i] for i in keep]


def bars_dataset(files: BarFiles) -> ds.Dataset:
    """A pyarrow dataset over ``files``: the bar columns plus ``TICKER_FIELD``, whose value
    each file carries as its partition expression (so filters on it prune files unopened).
    Missing columns read as null, extra columns are not read; no file is opened here."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    from core.store.bars import BAR_SCHEMA

    schema = pa.schema([*BAR_SCHEMA, pa.field(TICKER_FIELD, pa.string())])
    expressions = {t: ds.field(TICKER_FIELD) == t for t in set(files.tickers)}
    # Read like the index reads: a plain file, no pre-buffering (half the per-file cost).
    parquet = ds.ParquetFileFormat(
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False)
    )
    return ds.FileSystemDataset.from_paths(
        files.paths,
        schema=schema,
        format=parquet,
        filesystem=pafs.LocalFileSystem(),
        partitions=[expressions[t] for t in files.tickers],
    )


# --- the metadata views -------------------------------------------------------------------


def _day(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _table(spec: ViewSpec, rows: Iterable[dict[str, Any]]) -> pa.Table:
    import pyarrow as pa

    types = {
        "VARCHAR": pa.string(),
        "DATE": pa.date32(),
        "TIMESTAMP": pa.timestamp("us"),
        "TIMESTAMP_NS": pa.timestamp("ns"),
        "BIGINT": pa.int64(),
        "INTEGER": pa.int32(),
        "SMALLINT": pa.int16(),
        "TINYINT": pa.int8(),
        "BOOLEAN": pa.bool_(),
        "DOUBLE": pa.float64(),
    }
    schema = pa.schema([(name, types[kind]) for name, kind in spec.columns])
    return pa.Table.from_pylist(list(rows), schema=schema)


def tickers_table(ws: Workspace) -> pa.Table:
    from core.store.routing import routed_mode, storage_block

    def rows():
        for name, entry in ws.tickers.raw.items():
            if not isinstance(entry, dict):
                continue
            intervals = entry.get("intervals") or {}
            base = {
                "ticker": name,
                "ticker_status": _text(entry.get("status")),
                "added_date": _day(entry.get("added_date")),
            }
            if not isinstance(intervals, dict) or not intervals:
                yield {**base, "last_checked": _day(entry.get("last_checked"))}
                continue
            for interval, item in sorted(intervals.items(), key=lambda i: _interval_order(i[0])):
                item = item if isinstance(item, dict) else {}
                storage, venue = None, None
                with contextlib.suppress(ParqctlError):
                    storage = routed_mode(ws, name, interval)
                if storage == "partitioned":
                    block = storage_block(ws, name, interval)
                    if block is not None and block.get("mode") == "partitioned":
                        venue = f"{block.get('market')}:{block.get('source')}".lower()
                    else:
                        venue = "us:yahoo"
                yield {
                    **base,
                    "interval": interval,
                    "status": _text(item.get("status")),
                    "storage": storage,
                    "venue": venue,
                    "last_checked": _day(item.get("last_checked")),
                    "last_found_date": _day(item.get("last_found_date")),
                    "last_data_date": _day(item.get("last_data_date")),
                }

    return _table(_SPECS["tickers"], rows())


def files_table(ws: Workspace) -> pa.Table:
    """The file index, brought up to date first (new and changed files are read, as
    ``parqctl availability`` does)."""
    import polars as pl

    from core.availability.index import refresh_index

    frame = refresh_index(ws.root, sessions=False).files
    table = frame.select(
        pl.col("path"),
        pl.col("kind").alias("layout"),
        pl.col("ticker"),
        pl.col("interval"),
        pl.col("venue"),
        pl.col("year").cast(pl.Int16),
        pl.col("month").cast(pl.Int8),
        pl.col("rows"),
        pl.col("size").alias("bytes"),
        pl.from_epoch(pl.col("mtime_ns") // 1000, time_unit="us").alias("modified"),
        pl.col("min_date"),
        pl.col("max_date"),
        pl.col("error").is_null().alias("readable"),
        pl.col("error"),
    ).to_arrow()
    return table.cast(_table(_SPECS["files"], []).schema)


def gaps_table(ws: Workspace, today: date | None) -> pa.Table:
    """Every gap of every interval, as ``parqctl availability --json`` lists them (its
    default window: each ticker's first to last bar)."""
    from core.availability.gaps import availability
    from core.availability.index import refresh_index

    report = availability(ws, refresh_index(ws.root), today=today)

    def rows():
        for interval, result in report.intervals.items():
            for ticker in result.tickers:
                for gap in ticker.gaps:
                    yield {
                        "ticker": ticker.ticker,
                        "interval": interval,
                        "first_missing": gap.start,
                        "last_missing": gap.end,
                        "sessions": gap.sessions,
                        "lost_sessions": gap.lost_sessions,
                        "status": gap.status,
                        "recoverable_until": gap.recoverable_until,
                    }

    return _table(_SPECS["gaps"], rows())


def findings_table(ws: Workspace) -> pa.Table:
    from core.integrity.findings import LAST_REPORT
    from core.store.metadata import load_json

    path = ws.root / LAST_REPORT
    raw: Any = load_json(path) if os.path.lexists(path) else {}
    raw = raw if isinstance(raw, dict) else {}
    checked = raw.get("checked_at_ts")
    checked_at = (
        datetime.fromtimestamp(checked, UTC).replace(tzinfo=None)
        if isinstance(checked, int | float)
        else None
    )

    def rows():
        for item in raw.get("findings") or []:
            if isinstance(item, dict):
                yield {
                    **{name: _text(item.get(name)) for name in _SPECS["findings"].column_names},
                    "checked_at": checked_at,
                }

    return _table(_SPECS["findings"], rows())


_KNOWN_AUDIT = ("ts", "user", "host", "pid", "action", "result")


def audit_table(ws: Workspace) -> pa.Table:
    from core.safety import audit

    def rows():
        for record in audit.read(ws.root):
            if not isinstance(record, dict):
                continue
            ts = None
            if isinstance(record.get("ts"), str):
                try:
                    ts = datetime.fromisoformat(record["ts"].replace("Z", "+00:00"))
                    ts = ts.astimezone(UTC).replace(tzinfo=None)
                except ValueError:
                    ts = None
            pid = record.get("pid")
            details = {k: v for k, v in record.items() if k not in _KNOWN_AUDIT}
            yield {
                "ts": ts,
                "user": _text(record.get("user")),
                "host": _text(record.get("host")),
                "pid": pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
                "action": _text(record.get("action")),
                "result": _text(record.get("result")),
                "details": json.dumps(details, default=str, ensure_ascii=False),
            }

    return _table(_SPECS["audit"], rows())


def quarantine_table(ws: Workspace) -> pa.Table:
    from core.integrity import quarantine

    def rows():
        for entry in quarantine.entries(ws.root):
            at = entry.quarantined_at
            yield {
                "id": entry.id,
                "condition": entry.condition,
                "original_path": entry.original_path,
                "bytes": entry.size,
                "sha256": entry.sha256,
                "reason": entry.reason,
                "who": _text(entry.who),
                "quarantined_at": (
                    datetime.fromtimestamp(at, UTC).replace(tzinfo=None)
                    if isinstance(at, int | float) and at == at
                    else None
                ),
                "restore_to": entry.restore_to,
                "problem": entry.problem,
            }

    return _table(_SPECS["quarantine"], rows())


# --- the catalog --------------------------------------------------------------------------

_BAR_VIEW = re.compile(r"^bars_(?P<interval>[0-9]+(?:m|h|d|wk|mo))$")


class ViewCatalog:
    """The views of one workspace: which exist, and building one when first used."""

    def __init__(self, ws: Workspace, today: date | None = None) -> None:
        self.ws = ws
        self.today = today
        self.notes: list[str] = []
        self.bar_files: dict[str, BarFiles] = {}

    def intervals(self) -> list[str]:
        """Intervals with a dataset on disk or listed in intervals.json."""
        found = {d.interval for d in discover_datasets(self.ws.root) if d.interval}
        # A malformed intervals.json: the datasets on disk still count.
        with contextlib.suppress(ParqctlError):
            found.update(iv for iv in self.ws.intervals if iv in INTERVALS)
        return sorted((iv for iv in found if iv in INTERVALS), key=_interval_order)

    def specs(self) -> dict[str, ViewSpec]:
        views = {bars_view(iv): bars_spec(iv) for iv in self.intervals()}
        views.update(_SPECS)
        return views

    @staticmethod
    def interval_of(name: str) -> str | None:
        match = _BAR_VIEW.match(name)
        return match.group("interval") if match and match.group("interval") in INTERVALS else None

    def build(self, name: str) -> pa.Table | ds.Dataset:
        """The Arrow data behind view ``name`` (a dataset for bars, else a table)."""
        interval = self.interval_of(name)
        if interval is not None:
            files = bar_files(self.ws, interval)
            self.bar_files[interval] = files
            if files.left_out:
                shown = ", ".join(f"{path} ({error})" for path, error in files.left_out[:3])
                more = f" and {len(files.left_out) - 3} more" if len(files.left_out) > 3 else ""
                self.notes.append(
                    f"{name} leaves out {len(files.left_out)} unreadable file(s): {shown}{more}; "
                    "see `SELECT * FROM files WHERE NOT readable`"
                )
            return bars_dataset(files)
        builders: dict[str, Callable[[], pa.Table]] = {
            "tickers": lambda: tickers_table(self.ws),
            "files": lambda: files_table(self.ws),
            "gaps": lambda: gaps_table(self.ws, self.today),
            "findings": lambda: findings_table(self.ws),
            "audit": lambda: audit_table(self.ws),
            "quarantine": lambda: quarantine_table(self.ws),
        }
        return builders[name]()
