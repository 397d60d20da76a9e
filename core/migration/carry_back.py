"""Rollback's carry-back: every bar the collector reads now stays readable after rollback.

While partitions are active the collector writes new bars there, and after rollback it
reads only its legacy file ``<workspace>/stocks_<iv>/<T>.parquet``. So, for each ticker
whose routing rollback flips back to legacy, the rows of its partition tree that the
legacy file lacks are merged into that file, by (stock, date), atomically and verified by
content digest. A row both hold with different values is a conflict: reported, and
refused unless the operator forces the values the collector reads now (the partitions).
A legacy file migrated from another home (``data/legacy/``) is first moved back to the
collector's home, where the collector will look for it.

Idempotent: run again after a crash, a ticker already carried has nothing left to add.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from core.config import FileLimits
from core.errors import DataError, ParqctlError
from core.migration import staging
from core.migration.checkpoint import IntervalPlan
from core.migration.digest import content_digest
from core.safety import run_lock
from core.safety.atomic import fsync_dir
from core.safety.containment import require_inside
from core.store.bars import concat_bar_tables, read_bar_file, write_bar_file
from core.store.layout import PARTITION_FILE, legacy_dataset_dir, legacy_file, ticker_partition_dir
from core.store.workspace import Workspace

VALUE_COLUMNS = ("open", "high", "low", "close", "volume")
SHOWN_CONFLICTS = 3


@dataclass
class TickerCarry:
    ticker: str
    source: Path | None  # the legacy file as migrated, if it is not already in the home
    target: Path  # the legacy file the collector reads after rollback
    added: int = 0  # partition rows the legacy file lacks
    conflicts: list[str] = field(default_factory=list)  # "date column: legacy x, partitions y"
    merged: pa.Table | None = field(default=None, repr=False)  # the target's rows, until written

    @property
    def moves(self) -> bool:
        return self.source is not None


@dataclass
class CarryBack:
    interval: str
    tickers: list[TickerCarry] = field(default_factory=list)

    @property
    def rows_added(self) -> int:
        return sum(t.added for t in self.tickers)

    @property
    def conflicts(self) -> list[TickerCarry]:
        return [t for t in self.tickers if t.conflicts]


def plan_carry_back(ws: Workspace, interval: IntervalPlan, switch_restored: bool) -> CarryBack:
    """What rollback must carry for one interval; reads only trees that changed since verify.

    ``switch_restored``: the global switch goes back off, so tickers without a storage
    block (routed to partitions by the switch alone) flip back to legacy too.
    """
    record = interval.activation or interval.activating or {}
    flipping = set(record.get("blocks_set", []))
    dataset = interval.partition_dir(ws.root)
    if switch_restored:
        flipping |= {t for t in _tickers_in(dataset) if _has_no_block(ws, t, interval.interval)}
    flipping |= {t for t, r in interval.tickers.items() if r.get("state") in ("done", "promoting")}
    migrated_from = interval.legacy_dir(ws.root)
    home = legacy_dataset_dir(ws.root, interval.interval)
    result = CarryBack(interval.interval)
    for ticker in sorted(flipping):
        run_lock.ensure_still_held(ws.root)
        target = legacy_file(home, ticker)
        source = legacy_file(migrated_from, ticker)
        carry = TickerCarry(
            ticker, source if source != target and source.is_file() else None, target
        )
        tree_dir = ticker_partition_dir(dataset, ticker)
        verified = ((interval.tickers.get(ticker) or {}).get("verify") or {}).get("tree")
        tree_changed = tree_dir.is_dir() and staging.tree_fingerprint(tree_dir) != verified
        if tree_changed:
            limits = ws.config.limits
            _compare(carry, _legacy_rows(carry, limits), _partition_rows(tree_dir, limits))
        if carry.moves or carry.added or carry.conflicts:
            result.tickers.append(carry)
    return result


def refuse_conflicts(carries: list[CarryBack], force: bool) -> None:
    conflicting = [t for c in carries for t in c.conflicts]
    if not conflicting or force:
        return
    first = conflicting[0]
    raise ParqctlError(
        f"{len(conflicting)} tickers have bars in the partitions that differ from their legacy "
        f"file ({first.ticker}: {'; '.join(first.conflicts[:SHOWN_CONFLICTS])}); nothing was "
        "changed",
        "check them with `parqctl show`, then pass --force to keep the values the collector "
        "reads now (the partitions')",
    )


def carry_back(ws: Workspace, carry: CarryBack, force: bool) -> None:
    """Move, merge and verify each ticker's legacy file in the collector's home."""
    home = legacy_dataset_dir(ws.root, carry.interval)
    for ticker in carry.tickers:
        run_lock.ensure_still_held(ws.root)
        for path in (ticker.source, ticker.target):
            if path is not None:
                require_inside(ws, path, "write the legacy file")
        if ticker.moves:
            _move_home(ticker, home)
        if ticker.added or (force and ticker.conflicts):
            _write_verified(ticker)
        ticker.merged = None


def _tickers_in(dataset: Path) -> list[str]:
    try:
        with os.scandir(dataset) as entries:
            return [
                e.name[len("ticker=") :]
                for e in entries
                if e.name.startswith("ticker=") and e.is_dir(follow_symlinks=False)
            ]
    except FileNotFoundError:
        return []


def _has_no_block(ws: Workspace, ticker: str, interval: str) -> bool:
    entry = ws.tickers.get(ticker)
    return entry is None or entry.storage(interval) is None


def _legacy_rows(carry: TickerCarry, limits: FileLimits) -> pa.Table:
    path = carry.source or carry.target
    return read_bar_file(path, limits=limits) if path.is_file() else concat_bar_tables([])


def _partition_rows(tree_dir: Path, limits: FileLimits) -> pa.Table:
    files = sorted(tree_dir.glob(f"year=*/month=*/{PARTITION_FILE}"))
    return concat_bar_tables([read_bar_file(f, limits=limits) for f in files])


def _compare(carry: TickerCarry, legacy: pa.Table, partitions: pa.Table) -> None:
    old, new = pl.from_arrow(legacy), pl.from_arrow(partitions)
    keys = ["stock", "date"]
    fresh = new.join(old.select(keys), on=keys, how="anti")
    both = new.join(old, on=keys, how="inner", suffix="_legacy")
    for column in VALUE_COLUMNS:
        if column not in both.columns or f"{column}_legacy" not in both.columns:
            continue
        differ = both.filter(pl.col(column).ne_missing(pl.col(f"{column}_legacy")))
        for date, ours, theirs in differ.select("date", f"{column}_legacy", column).iter_rows():
            carry.conflicts.append(f"{date} {column}: legacy {ours}, partitions {theirs}")
    carry.added = fresh.height
    if not (carry.added or carry.conflicts):
        return
    if carry.conflicts:  # only written when forced: the partitions' values win
        kept = old.join(new.select(keys), on=keys, how="anti")
        merged = pl.concat([kept, new], how="diagonal_relaxed")
    else:
        merged = pl.concat([old, fresh], how="diagonal_relaxed")
    carry.merged = _as_legacy_schema(merged.sort("date").to_arrow(), legacy)


def _as_legacy_schema(table: pa.Table, legacy: pa.Table) -> pa.Table:
    """The merged rows in the legacy file's column order and types (polars may widen)."""
    names = [n for n in legacy.column_names if n in table.column_names]
    names += [n for n in table.column_names if n not in names]
    table = table.select(names)
    fields = [
        legacy.schema.field(n) if n in legacy.column_names else table.schema.field(n) for n in names
    ]
    return table.cast(pa.schema(fields))


def _move_home(carry: TickerCarry, home: Path) -> None:
    assert carry.source is not None
    if carry.target.exists():
        raise ParqctlError(
            f"{carry.target} and {carry.source} both exist; rollback will not choose between them",
            "merge them by hand (or move one aside), then run the rollback again",
        )
    home.mkdir(exist_ok=True)
    os.rename(carry.source, carry.target)
    fsync_dir(home)
    fsync_dir(carry.source.parent)


def _write_verified(carry: TickerCarry) -> None:
    assert carry.merged is not None
    expected = content_digest(carry.merged)
    write_bar_file(carry.target, carry.merged)
    # Read back whole: the rows are in memory already, so the file may exceed the limits.
    size_mb = carry.merged.nbytes // (1 << 20) + 1
    written = read_bar_file(
        carry.target, limits=FileLimits(max(carry.merged.num_rows, 1), 2 * size_mb)
    )
    if written.num_rows != carry.merged.num_rows or content_digest(written) != expected:
        raise DataError(
            f"{carry.target} does not read back as written during rollback",
            "check the disk; the partitions still hold every bar, run the rollback again",
        )
