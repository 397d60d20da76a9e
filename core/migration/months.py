"""Months as the partitioned layout names them, and a ticker's partition files on disk.

A month is an int (months since 1970-01); the plan stores sets of them as compact text
(``2021-01..2022-12,2023-03``).
"""

from __future__ import annotations

import os
from pathlib import Path

from core.store.layout import PARTITION_FILE


def month_of(year: int, month: int) -> int:
    return (year - 1970) * 12 + month - 1


def year_month(index: int) -> tuple[int, int]:
    return 1970 + index // 12, index % 12 + 1


def label(index: int) -> str:
    year, month = year_month(index)
    return f"{year:04d}-{month:02d}"


def parse_label(text: str) -> int:
    year, _, month = text.partition("-")
    return month_of(int(year), int(month))


def relative_dirs(index: int) -> tuple[str, str]:
    """``("year=2024", "month=01")``: the month's directory names below the ticker's."""
    year, month = year_month(index)
    return f"year={year:04d}", f"month={month:02d}"


def relative_file(index: int) -> str:
    """``year=2024/month=01/data.parquet`` below the ticker's directory."""
    return "/".join((*relative_dirs(index), PARTITION_FILE))


def partition_files(ticker_dir: Path) -> dict[int, Path]:
    """The ticker's ``year=*/month=*/data.parquet`` files by month (exact names only)."""
    found: dict[int, Path] = {}
    for year_name, year_path in _subdirs(str(ticker_dir), "year="):
        for month_name, month_path in _subdirs(year_path, "month="):
            path = os.path.join(month_path, PARTITION_FILE)
            try:
                year, month = int(year_name[5:]), int(month_name[6:])
            except ValueError:
                continue
            if 1 <= month <= 12 and os.path.isfile(path):
                found[month_of(year, month)] = Path(path)
    return found


def _subdirs(path: str, prefix: str) -> list[tuple[str, str]]:
    """(name, path) of the subdirectories named ``prefix...``, by name (plain strings:
    this runs for every month of every ticker)."""
    try:
        with os.scandir(path) as entries:
            return sorted(
                (e.name, e.path)
                for e in entries
                if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)
            )
    except (FileNotFoundError, NotADirectoryError):
        return []


def compact(months: list[int] | set[int]) -> str:
    """``[600, 601, 602, 610]`` -> ``2020-01..2020-03,2020-11``."""
    ordered = sorted(set(months))
    runs: list[str] = []
    start = previous = None
    for m in [*ordered, None]:
        if start is not None and (m is None or m != previous + 1):
            runs.append(label(start) if start == previous else f"{label(start)}..{label(previous)}")
            start = None
        if m is not None and start is None:
            start = m
        previous = m
    return ",".join(runs)


def expand(text: str | None) -> list[int]:
    months: list[int] = []
    for run in (text or "").split(","):
        if not run:
            continue
        first, _, last = run.partition("..")
        months.extend(range(parse_label(first), parse_label(last or first) + 1))
    return months
