"""The staging area under ``.parqctl/staging/``, and promoting staged files into the tree.

A run stages each ticker as a complete ``ticker=<T>/year=/month=/data.parquet`` tree; a
ticker without partition files yet is promoted with one directory rename, others file by
file (each a rename over the old file). The collector never looks under ``.parqctl/``,
and its readers only ever see complete files in the partitioned tree.

Every creation and deletion here walks down from the workspace root without following
links (``core.safety.atomic.open_dir``): a ``.parqctl`` or ``.parqctl/staging`` that is a symbolic
link, even one swapped in during a run, is refused (``atomic.UnsafeLinkError``) and nothing
is created or deleted through it.
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

from core.availability import index_journal
from core.safety import atomic
from core.store.layout import PARTITION_FILE

STAGING_DIR = Path(".parqctl") / "staging"
RUN_PREFIX = "run-"
SAMPLE_PREFIX = "estimate-"


def new_area(workspace_root: Path, prefix: str = RUN_PREFIX) -> Path:
    """A fresh directory for one run (or one estimate sample)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"{prefix}{stamp}-{os.getpid()}-{secrets.token_hex(3)}"
    with atomic.opened_dir(workspace_root, STAGING_DIR, create=True) as base:
        os.mkdir(name, 0o755, dir_fd=base)
    return workspace_root / STAGING_DIR / name


def clear_stale(workspace_root: Path) -> list[Path]:
    """Remove what earlier runs left behind (call with the run lock held).

    Run areas are only ever written under the lock, so any found now is a crashed run's;
    an estimate's sample is left alone while the process that wrote it lives.
    """
    removed = []
    base = workspace_root / STAGING_DIR
    try:
        base_fd = atomic.open_dir(workspace_root, STAGING_DIR)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    try:
        for name in sorted(os.listdir(base_fd)):
            if name.startswith(SAMPLE_PREFIX) and _writer_alive(name):
                continue
            if name.startswith((RUN_PREFIX, SAMPLE_PREFIX)):
                # rmtree with dir_fd never follows a link, neither this entry nor below it.
                shutil.rmtree(name, ignore_errors=True, dir_fd=base_fd)
                removed.append(base / name)
    finally:
        os.close(base_fd)
    return removed


def _writer_alive(name: str) -> bool:
    parts = name.split("-")
    try:
        return psutil.pid_exists(int(parts[2]))
    except (IndexError, ValueError):
        return False


def discard(area: Path) -> None:
    """Delete a staging area (or a directory inside one), best effort; refused, deleting
    nothing, when a link has taken the place of ``.parqctl`` or ``staging`` (or of any
    directory on the way down to ``area``)."""
    root, rel = _split_area(area)
    try:
        parent_fd = atomic.open_dir(root, rel.parent)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        shutil.rmtree(rel.name, ignore_errors=True, dir_fd=parent_fd)
    finally:
        os.close(parent_fd)


def _split_area(path: Path) -> tuple[Path, Path]:
    """(workspace root, path relative to it) of a path under ``<root>/.parqctl/staging/``."""
    parts = Path(path).parts
    for i in range(len(parts) - len(STAGING_DIR.parts), -1, -1):
        if parts[i : i + len(STAGING_DIR.parts)] == STAGING_DIR.parts:
            rel = Path(*parts[i:])
            if len(rel.parts) > len(STAGING_DIR.parts):
                return Path(*parts[:i]), rel
    raise atomic.UnsafeLinkError(
        f"{path} is not a staging area", f"parqctl stages only under {STAGING_DIR}/"
    )


@dataclass(frozen=True)
class Promotion:
    files: list[Path]  # final paths now in place
    directories: list[Path]  # directories whose entries changed (to flush without syncfs)
    whole_tree: bool = False  # one rename of the staged tree: the final tree is exactly it


def promote(staged_ticker: Path, final_ticker: Path, *, list_changes: bool = True) -> Promotion:
    """Move a staged ticker tree into the partitioned tree.

    ``list_changes`` False: a whole-tree rename does not list the files and directories it
    moved (only an fsync-per-file flush needs them; syncfs covers everything).
    """
    root, rel = _split_area(staged_ticker)
    atomic.confined(root, rel)  # the staged side is renamed away: never through a link
    promotion = _promote(staged_ticker, final_ticker, list_changes)
    # The file index looks at a known ticker's old months only when told (index_journal).
    index_journal.note_changed(root, [final_ticker])
    return promotion


def _promote(staged_ticker: Path, final_ticker: Path, list_changes: bool) -> Promotion:
    if not final_ticker.exists():
        final_ticker.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staged_ticker, final_ticker)
        if not list_changes:
            return Promotion([], [], whole_tree=True)
        files = sorted(final_ticker.glob(f"year=*/month=*/{PARTITION_FILE}"))
        directories = [final_ticker.parent, final_ticker, *{f.parent.parent for f in files}]
        return Promotion(files, directories + [f.parent for f in files], whole_tree=True)
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
