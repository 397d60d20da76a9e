"""Finding the bar files the index must look at: all of them, or only the hot ones.

    found = scan(root)                          # every file (a stat each) and every stray
    found = scan(root, hot=HotScope(...))       # legacy dirs, hot months, new tickers, named paths
    result, tickers = scan_outline(root)        # a full scan but the partitioned tickers' trees
    part = walk_tickers(tickers[:8])            # ... which worker processes walk, a share each

A full scan lists every directory of the data tree: on a partitioned store of 740,000
files that is most of a minute, whatever is done with the result. A hot scan relies on
how the store is written. The collector writes only the current month's partition of each
ticker (and the previous one around a month's end), always by temp file + rename; every
other change to an old month is parqctl's own (migration, backfill, quarantine), and
parqctl notes the paths it changes (core.availability.index_journal). So a hot scan lists:

- every legacy dataset directory, whole (one directory per interval: cheap);
- the ticker directories of every partitioned dataset (tickers added or removed);
- each known ticker's hot months, by path: from the month before the last refresh to the
  month after today (so a refresh after weeks away catches up, and a bar dated ahead of
  the local clock is not missed);
- the whole tree of each ticker the index has never seen, or whose directory parqctl
  noted (a migration promoting a ticker);
- the files parqctl noted.

What a hot scan does not look at (old months of known tickers) is kept from the index as
it was; a full scan (on schedule, or on demand) catches what changed there without
parqctl. ``ScanResult.covers`` says which records of the old index a scan replaces.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from core.safety.atomic import is_temp_name
from core.store.layout import PARTITION_FILE
from core.store.workspace import Unreadable, discover_datasets

_YEAR_DIR = re.compile(r"^year=(\d{4})$")
_MONTH_DIR = re.compile(r"^month=(\d{1,2})$")


def is_temp_file(name: str) -> bool:
    """A writer's temp or partial file (ours or the collector's): never a bar file."""
    return is_temp_name(name) or ".tmp" in name or name.endswith(".partial")


class Found(NamedTuple):  # made for every file a scan sees: a tuple is cheapest
    """A bar file seen on disk by the scan."""

    path: str
    dataset: str
    kind: str
    interval: str
    venue: str | None
    ticker: str
    year: int | None
    month: int | None
    size: int
    mtime_ns: int


class Stray(NamedTuple):
    """A file in a bar dataset that is not a bar file (temp, partial, damaged, other)."""

    path: str
    dataset: str
    interval: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class HotScope:
    """What a hot scan looks at: months ``>= first_month`` (year * 12 + month - 1) and
    ``<= last_month`` of every ticker the index ``known`` per dataset, and ``paths``."""

    first_month: int
    last_month: int
    known: dict[str, set[str]]  # dataset path -> tickers in the index
    paths: frozenset[str] = frozenset()


@dataclass
class ScanResult:
    """What a scan saw. ``hot`` is None for a full scan (it covers every record)."""

    found: list[Found] = field(default_factory=list)
    strays: list[Stray] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)
    hot: HotScope | None = None
    datasets: set[str] = field(default_factory=set)  # every dataset listed
    present: dict[str, set[str]] = field(default_factory=dict)  # dataset -> tickers on disk
    walked: set[tuple[str, str]] = field(default_factory=set)  # (dataset, ticker) walked whole


# A hot scan that found changes, kept for the next scan of the same scope in this process:
# a command asks "did anything change?" before refreshing, and listing the hot months of
# 10,000 tickers twice cost a second. Handed out once, and only for a few seconds.
_KEPT_FOR_S = 10.0
_kept: tuple[tuple, float, ScanResult] | None = None


def _scope_key(root: Path, hot: HotScope) -> tuple:
    known = frozenset((d, frozenset(t)) for d, t in hot.known.items())
    return (str(root), hot.first_month, hot.last_month, known, hot.paths)


def keep(root: Path, result: ScanResult) -> None:
    """Offer a hot scan's result to the next ``scan`` of the same scope (see above)."""
    global _kept
    if result.hot is not None:
        _kept = (_scope_key(root, result.hot), time.monotonic(), result)


def kept_found(root: Path) -> int:
    """How many files the kept scan of ``root`` found (0 when none is kept)."""
    if _kept is None or _kept[0][0] != str(root):
        return 0
    return len(_kept[2].found)


@dataclass(frozen=True)
class TickerDir:
    """A partitioned ticker's directory, to be walked whole (walk_tickers)."""

    path: str  # as listed (below the root given)
    rel: str  # relative to the workspace root
    dataset: tuple[str, str, str, str]  # (dataset, interval, venue, ticker)


def scan(root: Path, hot: HotScope | None = None) -> ScanResult:
    """Every bar file below the workspace with its stat (or the hot ones: see above)."""
    global _kept
    if hot is not None and _kept is not None:
        key, at, kept = _kept
        _kept = None
        if time.monotonic() - at < _KEPT_FOR_S and key == _scope_key(root, hot):
            return kept
    result = ScanResult(hot=hot)
    _scan_datasets(root, hot, result, None)
    if hot is not None and hot.paths:
        _scan_named(root, hot.paths, result)
    return result


def scan_outline(root: Path) -> tuple[ScanResult, list[TickerDir]]:
    """A full scan without the trees of the partitioned tickers: their directories instead,
    in path order. ``walk_tickers`` of them all, added to the result, is ``scan(root)``;
    worker processes can each walk a share (and read what they find) while others do."""
    result = ScanResult()
    tickers: list[TickerDir] = []
    _scan_datasets(root, None, result, tickers)
    return result, sorted(tickers, key=lambda t: t.rel + "/")  # their files' path order


def walk_tickers(tickers: list[TickerDir]) -> ScanResult:
    """What a full scan finds below these ticker directories (files in path order)."""
    result = ScanResult()
    for ticker in tickers:
        _walk_ticker(ticker.path, ticker.rel, ticker.dataset, result)
    result.found.sort(key=lambda f: f.path)
    return result


def add_walked(result: ScanResult, walked: ScanResult) -> None:
    """Add what ``walk_tickers`` found to a scan outline's result."""
    result.found.extend(walked.found)
    result.strays.extend(walked.strays)
    result.unreadable.extend(walked.unreadable)


def _scan_datasets(
    root: Path, hot: HotScope | None, result: ScanResult, deferred: list[TickerDir] | None
) -> None:
    for dataset in discover_datasets(root, result.unreadable):
        if dataset.kind == "trades" or dataset.interval is None:
            continue
        rel = dataset.path.relative_to(root).as_posix()
        result.datasets.add(rel)
        if dataset.kind == "legacy":
            _scan_legacy(dataset.path, rel, dataset.interval, result)
        else:
            venue = dataset.venue.id
            _scan_partitioned(dataset.path, rel, dataset.interval, venue, hot, result, deferred)


def _entries(path: str, unreadable: list[Unreadable]) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            yield from entries
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        unreadable.append(Unreadable.of(Path(path), exc))


def _stat(entry: os.DirEntry[str]) -> os.stat_result | None:
    try:
        if entry.is_file(follow_symlinks=False):
            return entry.stat(follow_symlinks=False)
    except FileNotFoundError:  # removed between listing and stat
        pass
    return None


def _scan_legacy(path: Path, rel: str, interval: str, result: ScanResult) -> None:
    prefix = rel + "/"
    for entry in _entries(str(path), result.unreadable):
        st = _stat(entry)
        if st is None:
            continue
        name = entry.name
        if name.endswith(".parquet") and not is_temp_file(name) and name != ".parquet":
            ticker = name[: -len(".parquet")]
            result.found.append(
                Found(
                    prefix + name,
                    rel,
                    "legacy",
                    interval,
                    None,
                    ticker,
                    None,
                    None,
                    st.st_size,
                    st.st_mtime_ns,
                )
            )
        else:
            result.strays.append(Stray(prefix + name, rel, interval, st.st_size, st.st_mtime_ns))


def _scan_partitioned(
    path: Path,
    rel: str,
    interval: str,
    venue: str,
    hot: HotScope | None,
    result: ScanResult,
    deferred: list[TickerDir] | None = None,
) -> None:
    """``ticker=<T>/year=<YYYY>/month=<MM>/data.parquet`` below one partitioned dataset;
    the tickers' trees are left to the caller when ``deferred`` is given (a full scan)."""
    present = result.present.setdefault(rel, set())
    known = hot.known.get(rel, set()) if hot is not None else set()
    for ticker_dir in _entries(str(path), result.unreadable):
        name = ticker_dir.name
        if not ticker_dir.is_dir(follow_symlinks=False):
            st = _stat(ticker_dir)
            if st is not None:
                result.strays.append(
                    Stray(f"{rel}/{name}", rel, interval, st.st_size, st.st_mtime_ns)
                )
            continue
        if not name.startswith("ticker=") or name == "ticker=":
            _odd_directory(ticker_dir.path, f"{rel}/{name}", rel, interval, result)
            continue
        ticker = name[len("ticker=") :]
        present.add(ticker)
        dataset = (rel, interval, venue, ticker)
        if hot is None and deferred is not None:
            deferred.append(TickerDir(ticker_dir.path, f"{rel}/{name}", dataset))
            continue
        if hot is None or ticker not in known or f"{rel}/{name}" in hot.paths:
            if hot is not None:
                result.walked.add((rel, ticker))
            _walk_ticker(ticker_dir.path, f"{rel}/{name}", dataset, result)
            continue
        for key in range(hot.first_month, hot.last_month + 1):
            year, month = divmod(key, 12)
            month_rel = f"{rel}/{name}/year={year:04d}/month={month + 1:02d}"
            _scan_month(
                os.path.join(ticker_dir.path, f"year={year:04d}", f"month={month + 1:02d}"),
                month_rel,
                dataset,
                year,
                month + 1,
                result,
            )


def _walk_ticker(
    path: str, rel: str, dataset: tuple[str, str, str, str], result: ScanResult
) -> None:
    for year_dir in _entries(path, result.unreadable):
        year = _YEAR_DIR.match(year_dir.name)
        if year is None or not year_dir.is_dir(follow_symlinks=False):
            _stray(year_dir, f"{rel}/{year_dir.name}", dataset, result)
            continue
        for month_dir in _entries(year_dir.path, result.unreadable):
            month = _MONTH_DIR.match(month_dir.name)
            month_rel = f"{rel}/{year_dir.name}/{month_dir.name}"
            if month is None or not month_dir.is_dir(follow_symlinks=False):
                _stray(month_dir, month_rel, dataset, result)
                continue
            _scan_month(
                month_dir.path,
                month_rel,
                dataset,
                int(year.group(1)),
                int(month.group(1)),
                result,
            )


def _stray(
    entry: os.DirEntry[str], rel: str, dataset: tuple[str, str, str, str], result: ScanResult
) -> None:
    """A file where only directories belong is a stray; so is every file in an odd
    directory."""
    if entry.is_dir(follow_symlinks=False):
        _odd_directory(entry.path, rel, dataset[0], dataset[1], result)
        return
    st = _stat(entry)
    if st is not None:
        result.strays.append(Stray(rel, dataset[0], dataset[1], st.st_size, st.st_mtime_ns))


def _odd_directory(path: str, rel: str, dataset: str, interval: str, result: ScanResult) -> None:
    """Every file below a directory that is not part of the layout: strays."""
    for entry in _entries(path, result.unreadable):
        if entry.is_dir(follow_symlinks=False):
            _odd_directory(entry.path, f"{rel}/{entry.name}", dataset, interval, result)
            continue
        st = _stat(entry)
        if st is not None:
            result.strays.append(
                Stray(f"{rel}/{entry.name}", dataset, interval, st.st_size, st.st_mtime_ns)
            )


def _scan_month(
    path: str,
    rel: str,
    dataset: tuple[str, str, str, str],
    year: int,
    month: int,
    result: ScanResult,
) -> None:
    prefix = rel + "/"
    dataset_rel, interval, venue, ticker = dataset
    for entry in _entries(path, result.unreadable):
        st = _stat(entry)
        if st is None:
            if entry.is_dir(follow_symlinks=False):
                _odd_directory(entry.path, prefix + entry.name, dataset_rel, interval, result)
            continue
        if entry.name == PARTITION_FILE:
            result.found.append(
                Found(
                    prefix + PARTITION_FILE,
                    dataset_rel,
                    "partitioned",
                    interval,
                    venue,
                    ticker,
                    year,
                    month,
                    st.st_size,
                    st.st_mtime_ns,
                )
            )
        else:
            result.strays.append(
                Stray(prefix + entry.name, dataset_rel, interval, st.st_size, st.st_mtime_ns)
            )


def _scan_named(root: Path, paths: frozenset[str], result: ScanResult) -> None:
    """The files parqctl noted as changed, when a hot scan did not see them already."""
    seen = {f.path for f in result.found} | {s.path for s in result.strays}
    for rel in sorted(paths - seen):
        parsed = parse_path(rel, result.datasets)
        if parsed is None:
            continue
        try:
            st = os.stat(root / rel, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            continue  # gone: covered, so its record is dropped
        if not os.path.isfile(root / rel) or os.path.islink(root / rel):
            continue
        result.found.append(parsed._replace(size=st.st_size, mtime_ns=st.st_mtime_ns))


def parse_path(rel: str, datasets: set[str]) -> Found | None:
    """The record a bar file's relative path names (stat left at 0), or None."""
    for dataset in datasets:
        if not rel.startswith(dataset + "/"):
            continue
        rest = rel[len(dataset) + 1 :].split("/")
        interval = dataset.rsplit("stocks_", 1)[-1]
        if len(rest) == 1 and rest[0].endswith(".parquet") and not is_temp_file(rest[0]):
            return Found(rel, dataset, "legacy", interval, None, rest[0][:-8], None, None, 0, 0)
        if len(rest) == 4 and rest[3] == PARTITION_FILE and rest[0].startswith("ticker="):
            year, month = _YEAR_DIR.match(rest[1]), _MONTH_DIR.match(rest[2])
            if year and month:
                parts = dataset.split("/")
                venue = f"{parts[-3]}:{parts[-2]}".lower() if len(parts) >= 3 else None
                return Found(
                    rel,
                    dataset,
                    "partitioned",
                    interval,
                    venue,
                    rest[0][len("ticker=") :],
                    int(year.group(1)),
                    int(month.group(1)),
                    0,
                    0,
                )
    return None
