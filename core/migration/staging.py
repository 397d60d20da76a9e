"""The staging area under ``.parqctl/staging/``, and promoting staged files into the tree.

A run stages each ticker as a complete ``ticker=<T>/year=/month=/data.parquet`` tree; a
ticker without partition files yet is promoted with one directory rename, others file by
file (each a rename over the old file). The collector never looks under ``.parqctl/``,
and its readers only ever see complete files in the partitioned tree.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from core.layout import PARTITION_FILE

STAGING_DIR = Path(".parqctl") / "staging"
RUN_PREFIX = "run-"
SAMPLE_PREFIX = "estimate-"


def new_area(workspace_root: Path, prefix: str = RUN_PREFIX) -> Path:
    """A fresh directory for one run (or one estimate sample)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = workspace_root / STAGING_DIR / f"{prefix}{stamp}-{os.getpid()}-{secrets.token_hex(3)}"
    path.mkdir(parents=True)
    return path


def clear_stale(workspace_root: Path) -> list[Path]:
    """Remove what earlier runs left behind (call with the run lock held).

    Run areas are only ever written under the lock, so any found now is a crashed run's;
    an estimate's sample is left alone while the process that wrote it lives.
    """
    removed = []
    base = workspace_root / STAGING_DIR
    if not base.is_dir():
        return removed
    for entry in sorted(base.iterdir()):
        if entry.name.startswith(SAMPLE_PREFIX) and _writer_alive(entry.name):
            continue
        if entry.name.startswith((RUN_PREFIX, SAMPLE_PREFIX)):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _writer_alive(name: str) -> bool:
    parts = name.split("-")
    try:
        return psutil.pid_exists(int(parts[2]))
    except (IndexError, ValueError):
        return False


def discard(area: Path) -> None:
    shutil.rmtree(area, ignore_errors=True)


@dataclass(frozen=True)
class Promotion:
    files: list[Path]  # final paths now in place
    directories: list[Path]  # directories whose entries changed (to flush without syncfs)


def promote(staged_ticker: Path, final_ticker: Path, *, list_changes: bool = True) -> Promotion:
    """Move a staged ticker tree into the partitioned tree.

    ``list_changes`` False: a whole-tree rename does not list the files and directories it
    moved (only an fsync-per-file flush needs them; syncfs covers everything).
    """
    if not final_ticker.exists():
        final_ticker.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staged_ticker, final_ticker)
        if not list_changes:
            return Promotion([], [])
        files = sorted(final_ticker.glob(f"year=*/month=*/{PARTITION_FILE}"))
        directories = [final_ticker.parent, final_ticker, *{f.parent.parent for f in files}]
        return Promotion(files, directories + [f.parent for f in files])
    files, directories = [], {final_ticker}
    for staged in sorted(staged_ticker.glob(f"year=*/month=*/{PARTITION_FILE}")):
        target = final_ticker / staged.relative_to(staged_ticker)
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            directories.add(target.parent.parent)
        os.replace(staged, target)
        files.append(target)
        directories.add(target.parent)
    return Promotion(files, sorted(directories))


def tree_fingerprint(ticker_dir: Path) -> str:
    """A digest of the ticker's partition files' names, sizes and modification times.

    Renames keep a file's mtime, so it is taken once the files are in place and tells,
    without reading them, whether anything in the ticker's tree changed since.
    """
    h = hashlib.blake2b(digest_size=16)
    for year_name, year_path in _sorted_dirs(str(ticker_dir)):
        for month_name, month_path in _sorted_dirs(year_path):
            try:
                st = os.stat(os.path.join(month_path, PARTITION_FILE))
            except FileNotFoundError:
                continue
            h.update(f"{year_name}/{month_name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def file_fingerprint(path: Path) -> str:
    """Size, mtime and inode of one file, hashed short; empty when it does not exist.

    A rename keeps all three, so a staged file promoted into the tree keeps its
    fingerprint; a collector's rewrite (a new file renamed over it) or append changes it.
    """
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return ""
    text = f"{st.st_size} {st.st_mtime_ns} {st.st_ino}".encode()
    return hashlib.blake2b(text, digest_size=6).hexdigest()


def _sorted_dirs(path: str) -> list[tuple[str, str]]:
    """(name, path) of the subdirectories, by name (plain strings: called per file)."""
    try:
        with os.scandir(path) as entries:
            return sorted((e.name, e.path) for e in entries if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []
