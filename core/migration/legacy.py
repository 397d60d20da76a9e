"""The legacy files of an interval: one ``<TICKER>.parquet`` per ticker."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import UnsafeTickerError
from core.safety.atomic import is_temp_name
from core.store.layout import validate_ticker

SUFFIX = ".parquet"


@dataclass(frozen=True)
class LegacyFile:
    ticker: str
    path: Path
    size: int
    mtime_ns: int

    def unchanged(self, record: dict | None) -> bool:
        """Whether a recorded ``{"size", "mtime_ns"}`` still describes this file."""
        return bool(record) and (record.get("size"), record.get("mtime_ns")) == (
            self.size,
            self.mtime_ns,
        )


def list_legacy(directory: Path) -> tuple[list[LegacyFile], list[Path]]:
    """The ticker files sorted by ticker, and the other files found (temp, hidden, stray)."""
    files, strays = [], []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return [], []
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            continue
        name = entry.name
        ticker = name[: -len(SUFFIX)]
        if (
            not name.endswith(SUFFIX)
            or name.startswith(".")
            or ".tmp" in name
            or is_temp_name(name)
            or not _safe(ticker)
        ):
            strays.append(Path(entry.path))
            continue
        st = entry.stat(follow_symlinks=False)
        files.append(LegacyFile(ticker, Path(entry.path), st.st_size, st.st_mtime_ns))
    return sorted(files, key=lambda f: f.ticker), sorted(strays)


def _safe(ticker: str) -> bool:
    try:
        validate_ticker(ticker)
    except UnsafeTickerError:
        return False
    return True
