"""Row-level checks of one bar file, and their cache keyed by (path, size, mtime_ns).

The file index (core.availability.index) says whether a file is readable and what its schema is; these
checks read its rows: the stock name, duplicate and misplaced bar times, price sanity.
Their findings are cached under ``.parqctl/integrity/`` with the file's size and mtime, so
a nightly run over an unchanged workspace reads no Parquet at all.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.config import FileLimits
from core.integrity.findings import Finding, Severity
from core.safety import untrusted_json
from core.safety.atomic import atomic_path, confined, read_state_file
from core.store.bars import FIRST_BAR_DAY, LAST_BAR_DAY, footer_problem, workspace_limits
from core.store.workspace import STATE_DIR

CACHE_FILE = Path(STATE_DIR) / "integrity" / "row_checks.parquet"
CACHE_VERSION = b"2"  # 2: dates outside the calendars, files beyond the limits
_VERSION_KEY = b"parqctl.row_checks.version"
CACHE_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("deep", pa.bool_()),
        ("findings", pa.string()),  # JSON list of Finding.as_dict()
    ]
)
PRICE_COLUMNS = ("open", "high", "low", "close")
ROW_COLUMNS = ("stock", "date", *PRICE_COLUMNS, "volume")
# Prices are stored rounded; a bar is out of order only beyond float noise.
PRICE_TOLERANCE = 1e-9
EXAMPLES = 3
NULL_TIME = np.iinfo(np.int64).min  # stands for a null `date` in the int64 view
_FIRST_NS = int(np.datetime64(FIRST_BAR_DAY, "ns").astype(np.int64))
_END_NS = int((np.datetime64(LAST_BAR_DAY, "D") + 1).astype("datetime64[ns]").astype(np.int64))


@dataclass(frozen=True)
class BarFile:
    """A readable bar file as the index recorded it."""

    path: str  # relative to the workspace root
    ticker: str
    interval: str
    year: int | None  # Hive keys of a partition file; None for a legacy file
    month: int | None
    size: int
    mtime_ns: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.path, self.size, self.mtime_ns)


class ChangedWhileChecking(Exception):
    """The file's size or mtime is no longer what the index recorded."""


def check_rows(
    root: Path, bar: BarFile, *, deep: bool = False, limits: FileLimits | None = None
) -> list[Finding]:
    """The row-level findings of one file; raises ChangedWhileChecking if it moved on.

    A file whose footer is beyond ``limits`` (default: the workspace's) is not read: its
    finding says so.
    """
    path = root / bar.path
    _same_file(path, bar)
    try:
        # A native file without pre-buffering, and the schema asked for once: per file,
        # against 740,000 files, these fixed costs were most of the check.
        with (
            pa.OSFile(str(path)) as handle,
            pq.ParquetFile(handle, pre_buffer=False, page_checksum_verification=deep) as parquet,
        ):
            too_large = footer_problem(parquet.metadata, limits or workspace_limits(root))
            if too_large is not None:
                return [too_large_finding(bar, too_large)]
            names = set(parquet.schema_arrow.names)
            present = [c for c in ROW_COLUMNS if c in names]
            table = parquet.read(columns=present, use_threads=False)
            damage = _decode_every_row_group(bar, parquet) if deep else []
    except FileNotFoundError:
        raise ChangedWhileChecking(bar.path) from None
    except (pa.ArrowException, OSError) as exc:
        _same_file(path, bar)
        return [_unreadable(bar, exc)]
    _same_file(path, bar)
    return _row_findings(bar, table) + damage


def _same_file(path: Path, bar: BarFile) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ChangedWhileChecking(bar.path) from None
    if (st.st_size, st.st_mtime_ns) != (bar.size, bar.mtime_ns):
        raise ChangedWhileChecking(bar.path)


def _finding(bar: BarFile, severity: Severity, code: str, message: str, advice: str) -> Finding:
    return Finding(
        severity, code, bar.path, message, advice, ticker=bar.ticker, interval=bar.interval
    )


def _unreadable(bar: BarFile, exc: BaseException) -> Finding:
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return _finding(
        bar,
        Severity.ERROR,
        "file.unreadable",
        f"its footer reads but its data does not decode: {first_line}",
        "the file is damaged: quarantine it (`parqctl integrity --quarantine`) and re-fetch "
        "the ticker; a re-fetch recovers only bars inside the interval's retention window, so "
        "keep the quarantined copy",
    )


def too_large_finding(bar: BarFile, problem: str) -> Finding:
    """The ERROR finding of a file beyond the workspace's ``[limits]``: not read at all."""
    return _finding(
        bar,
        Severity.ERROR,
        "file.too_large",
        f"{problem}; its rows were not checked",
        f"no command reads it (reading it could exhaust the memory): set it aside with "
        f"`parqctl quarantine add {bar.path} --reason 'too large'` (or `parqctl integrity "
        "--quarantine`), or raise [limits] max_file_rows / max_file_mb in "
        ".parqctl/config.toml if it is genuine",
    )


def _decode_every_row_group(bar: BarFile, parquet: pq.ParquetFile) -> list[Finding]:
    groups = parquet.metadata.num_row_groups
    for index in range(groups):
        try:
            parquet.read_row_group(index, use_threads=False)
        except (pa.ArrowException, OSError) as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return [
                _finding(
                    bar,
                    Severity.ERROR,
                    "file.corrupt_row_group",
                    f"row group {index} of {groups} does not decode: {first_line}",
                    "the file is damaged: quarantine it and re-fetch the ticker",
                )
            ]
    return []


def _times(values: np.ndarray) -> str:
    shown = ", ".join(
        str(np.datetime64(int(v), "ns"))[:16].replace("T", " ") for v in values[:EXAMPLES]
    )
    return shown + (", ..." if len(values) > EXAMPLES else "")


def _date_ns(column: pa.ChunkedArray) -> np.ndarray | None:
    """Bar times as int64 ns of local wall time (a zoned column is flagged elsewhere)."""
    if not pa.types.is_timestamp(column.type):
        return None
    if column.type.tz is not None:
        column = pc.local_timestamp(column)
    as_int = column.cast(pa.timestamp("ns")).cast(pa.int64())
    return pc.fill_null(as_int, NULL_TIME).to_numpy()


def _row_findings(bar: BarFile, table: pa.Table) -> list[Finding]:
    rows = table.num_rows
    names = set(table.column_names)
    findings: list[Finding] = []
    if "stock" in names and _is_text(table["stock"].type):
        findings += _stock_findings(bar, table["stock"], rows)
    dates = _date_ns(table["date"]) if "date" in names else None
    if dates is None:
        return findings
    null_date = dates == NULL_TIME
    if null_date.any():
        findings.append(
            _finding(
                bar,
                Severity.ERROR,
                "rows.null_date",
                f"{int(null_date.sum()):,} of {rows:,} rows have no date",
                "a bar without a time cannot be placed: quarantine the file and re-fetch the ticker",
            )
        )
    findings += _range_findings(bar, dates[~null_date] if null_date.any() else dates, rows)
    if null_date.any():  # (a filtered copy of the table only when there is something to drop)
        valid = ~null_date
        findings += _month_findings(bar, dates[valid], rows)
        findings += _order_findings(bar, table.filter(pa.array(valid)), dates[valid])
    else:
        findings += _month_findings(bar, dates, rows)
        findings += _order_findings(bar, table, dates)
    findings += _price_findings(bar, table, dates)
    return findings


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _stock_findings(bar: BarFile, stock: pa.ChunkedArray, rows: int) -> list[Finding]:
    matching = pc.sum(pc.equal(stock, pa.scalar(bar.ticker, stock.type))).as_py() or 0
    wrong = rows - matching
    if not wrong:
        return []
    others = pc.unique(
        pc.filter(stock, pc.invert(pc.fill_null(pc.equal(stock, bar.ticker), False)))
    )
    shown = ", ".join(repr(v) for v in others.to_pylist()[:EXAMPLES])
    return [
        _finding(
            bar,
            Severity.ERROR,
            "rows.stock_mismatch",
            f"{wrong:,} of {rows:,} rows have stock {shown} instead of {bar.ticker!r}",
            f"the file holds bars of another ticker under {bar.ticker}'s name: quarantine it "
            f"and re-fetch {bar.ticker}",
        )
    ]


def _range_findings(bar: BarFile, dates: np.ndarray, rows: int) -> list[Finding]:
    outside = dates[(dates < _FIRST_NS) | (dates >= _END_NS)]
    if not len(outside):
        return []
    return [
        _finding(
            bar,
            Severity.ERROR,
            "rows.date_out_of_range",
            f"{len(outside):,} of {rows:,} rows are dated outside {FIRST_BAR_DAY}..{LAST_BAR_DAY}, "
            f"where no trading calendar reaches: {_times(np.sort(outside))}",
            "a corrupted bar time (availability and health leave these bars out): remove those "
            "rows, or quarantine the file and re-fetch the ticker",
        )
    ]


def _month_findings(bar: BarFile, dates: np.ndarray, rows: int) -> list[Finding]:
    if bar.year is None or bar.month is None or not len(dates):
        return []
    months = dates.view("datetime64[ns]").astype("datetime64[M]")
    outside = dates[months != np.datetime64(f"{bar.year:04d}-{bar.month:02d}", "M")]
    if not len(outside):
        return []
    return [
        _finding(
            bar,
            Severity.ERROR,
            "rows.wrong_month",
            f"{len(outside):,} of {rows:,} rows lie outside {bar.year:04d}-{bar.month:02d}: "
            f"{_times(np.sort(outside))}",
            "a partition holds only its own month's rows; readers of the other month miss "
            "them: move them to their partitions (or quarantine the file and re-fetch the month)",
        )
    ]


def _order_findings(bar: BarFile, table: pa.Table, dates: np.ndarray) -> list[Finding]:
    findings = []
    if len(dates) > 1 and (dates[1:] < dates[:-1]).any():
        findings.append(
            _finding(
                bar,
                Severity.WARNING,
                "rows.unsorted",
                "rows are not sorted by date",
                "the collector sorts on its next write of this ticker; readers that assume "
                "order (as-of joins, last bar) get wrong answers until then",
            )
        )
    order = np.argsort(dates, kind="stable")
    ordered = dates[order]
    repeats = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
    if not len(repeats):
        return findings
    later = table.take(pa.array(order[repeats]))
    earlier = table.take(pa.array(order[repeats - 1]))
    same = np.ones(len(repeats), dtype=bool)
    for name in table.column_names:
        same &= _equal_or_both_missing(earlier[name], later[name])
    conflicting = ordered[repeats][~same]
    times = np.unique(ordered[repeats])
    if len(conflicting):
        findings.append(
            _finding(
                bar,
                Severity.ERROR,
                "rows.conflicting_duplicate",
                f"{len(np.unique(conflicting)):,} bar time(s) appear more than once with different "
                f"values: {_times(np.unique(conflicting))}",
                "which bar is right is unknown (the collector would keep the last on its next "
                "write): compare with a fresh fetch, or quarantine the file and re-fetch",
            )
        )
    else:
        findings.append(
            _finding(
                bar,
                Severity.WARNING,
                "rows.duplicate",
                f"{len(repeats):,} rows repeat an earlier row exactly: {_times(times)}",
                "the collector de-duplicates on its next write of this ticker; readers that do "
                "not de-duplicate count these bars twice until then",
            )
        )
    return findings


def _equal_or_both_missing(a: pa.ChunkedArray, b: pa.ChunkedArray) -> np.ndarray:
    same = pc.or_(pc.fill_null(pc.equal(a, b), False), pc.and_(pc.is_null(a), pc.is_null(b)))
    if pa.types.is_floating(a.type):
        same = pc.or_(same, pc.fill_null(pc.and_(pc.is_nan(a), pc.is_nan(b)), False))
    return same.to_numpy()


def _price_findings(bar: BarFile, table: pa.Table, dates: np.ndarray) -> list[Finding]:
    names = set(table.column_names)
    if not all(c in names and pa.types.is_floating(table[c].type) for c in PRICE_COLUMNS):
        return []
    o, h, low, c = (table[name].to_numpy().astype(np.float64, copy=False) for name in PRICE_COLUMNS)
    findings = []
    missing = np.isnan(o) | np.isnan(h) | np.isnan(low) | np.isnan(c)
    if missing.any():
        findings.append(
            _finding(
                bar,
                Severity.WARNING,
                "prices.nan",
                f"{int(missing.sum()):,} rows have a missing (NaN or null) price: {_times(dates[missing])}",
                "Yahoo sends empty bars for some sessions: re-fetch them while they are inside "
                "the interval's retention window",
            )
        )
    negative = (o < 0) | (h < 0) | (low < 0) | (c < 0)
    if negative.any():
        findings.append(
            _finding(
                bar,
                Severity.WARNING,
                "prices.negative",
                f"{int(negative.sum()):,} rows have a negative price: {_times(dates[negative])}",
                "real for a few instruments (oil futures in April 2020); otherwise a bad bar: "
                "re-fetch those sessions",
            )
        )
    slack = PRICE_TOLERANCE * np.maximum(np.abs(h), np.abs(low))
    with np.errstate(invalid="ignore"):
        disorder = ~missing & (
            (low > np.minimum(o, c) + slack) | (h < np.maximum(o, c) - slack) | (low > h + slack)
        )
    if disorder.any():
        findings.append(
            _finding(
                bar,
                Severity.WARNING,
                "prices.ohlc_order",
                f"{int(disorder.sum()):,} rows break low <= open, close <= high: {_times(dates[disorder])}",
                "a bad bar from the source: re-fetch those sessions while they are inside the "
                "retention window",
            )
        )
    if "volume" in names and pa.types.is_integer(table["volume"].type):
        below = pc.fill_null(pc.less(table["volume"], 0), False).to_numpy()
        if below.any():
            findings.append(
                _finding(
                    bar,
                    Severity.WARNING,
                    "volume.negative",
                    f"{int(below.sum()):,} rows have a negative volume: {_times(dates[below])}",
                    "a bad bar: re-fetch those sessions",
                )
            )
    return findings


class RowCheckCache:
    """Findings of earlier row checks, by (path, size, mtime_ns); a deep entry also
    answers a shallow question, not the other way round."""

    def __init__(self, entries: dict[str, tuple[int, int, bool, str]]) -> None:
        self._entries = entries
        self.changed = False

    @staticmethod
    def table(root: Path) -> pa.Table | None:
        """The persisted entries as Arrow (CACHE_SCHEMA), for a vectorised lookup; None
        when there are none or they are of another version."""
        try:
            # Never through a link, never waiting on a FIFO (read_state_file).
            content = read_state_file(root, CACHE_FILE)
            if content is None:
                return None
            # ParquetFile rather than read_table: the latter imports pyarrow.dataset, and
            # with it pandas, which costs seconds at start-up.
            with pq.ParquetFile(pa.BufferReader(content)) as parquet:
                table = parquet.read()
        except (pa.ArrowException, OSError):
            return None
        if (table.schema.metadata or {}).get(
            _VERSION_KEY
        ) != CACHE_VERSION or not table.schema.equals(CACHE_SCHEMA):
            return None
        return table

    @classmethod
    def load(cls, root: Path) -> RowCheckCache:
        table = cls.table(root)
        if table is None:
            return cls({})
        columns = [table[name].to_pylist() for name in CACHE_SCHEMA.names]
        return cls({p: (s, m, d, f) for p, s, m, d, f in zip(*columns, strict=True)})

    def get(self, bar: BarFile, deep: bool) -> list[Finding] | None:
        entry = self._entries.get(bar.path)
        if entry is None or entry[:2] != (bar.size, bar.mtime_ns) or (deep and not entry[2]):
            return None
        if entry[3] == "[]":  # most files: no JSON to decode
            return []
        return [Finding.from_dict(raw) for raw in untrusted_json.loads(entry[3])]

    def put(self, bar: BarFile, deep: bool, findings: list[Finding]) -> None:
        text = json.dumps([f.as_dict() for f in findings], separators=(",", ":"))
        self._entries[bar.path] = (bar.size, bar.mtime_ns, deep, text)
        self.changed = True

    def forget_missing(self, present: set[str]) -> None:
        """Drop entries of files that are no longer in the data tree."""
        gone = [path for path in self._entries if path not in present]
        for path in gone:
            del self._entries[path]
        self.changed = self.changed or bool(gone)

    def save(self, root: Path) -> str | None:
        """Persist atomically (a cache: no fsync); returns why not if it cannot be written."""
        items = sorted(self._entries.items())
        table = pa.table(
            {
                "path": [p for p, _ in items],
                "size": [e[0] for _, e in items],
                "mtime_ns": [e[1] for _, e in items],
                "deep": [e[2] for _, e in items],
                "findings": [e[3] for _, e in items],
            },
            schema=CACHE_SCHEMA.with_metadata({_VERSION_KEY: CACHE_VERSION}),
        )
        path = root / CACHE_FILE
        try:
            # Never through a link: a `.parqctl/integrity` linked out of the workspace is
            # not written (UnsafeLinkError, an OSError).
            confined(root, path).parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path, durable=False) as tmp:
                pq.write_table(table, tmp, compression="zstd")
        except OSError as exc:
            return f"cannot write {path}: {exc.strerror or exc}"
        self.changed = False
        return None
