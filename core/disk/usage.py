"""Where the workspace's bytes are: per dataset and state directory, per filesystem.

Counted from directory entries alone (no Parquet is opened), the way ``du`` counts by
default: allocated blocks (``st_blocks * 512``) of every file, directory and link below the
root, the root itself included, each hard-linked inode once. Apparent sizes (``st_size``)
are kept beside them. Every byte goes to exactly one bucket, so the buckets sum to the
total ``du -s`` reports.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.config import Watermarks
from core.disk.watermarks import DiskStatus, disk_status
from core.store.workspace import LOCK_DIR, STATE_DIR, Workspace

if TYPE_CHECKING:  # NumPy only where it is used: migrate's parent process imports this
    from core.disk.tree_cache import TreeTotals

QUARANTINE_DIR = Path(STATE_DIR) / "quarantine"
STAGING_DIR = Path(STATE_DIR) / "staging"
INDEX_DIR = Path(STATE_DIR) / "index"


@dataclass
class UsageBucket:
    """Bytes under one directory of the workspace (minus the buckets nested in it)."""

    label: str
    kind: str  # legacy, partitioned, trades, quarantine, staging, index, state, other
    path: Path
    bytes: int = 0  # allocated, as du counts
    apparent_bytes: int = 0
    files: int = 0
    mount: Path | None = None


@dataclass(frozen=True)
class Filesystem:
    """A filesystem the workspace lives on, its usage, and which parts of it are there."""

    mount: Path
    status: DiskStatus
    labels: tuple[str, ...]
    workspace_bytes: int | None = None  # allocated bytes of the workspace on it, if counted


@dataclass
class DiskUsage:
    root: Path
    buckets: list[UsageBucket] = field(default_factory=list)
    filesystems: list[Filesystem] = field(default_factory=list)
    freshness: TreeTotals | None = None  # which directories were checked, and when all were

    @property
    def total_bytes(self) -> int:
        return sum(b.bytes for b in self.buckets)

    @property
    def total_apparent_bytes(self) -> int:
        return sum(b.apparent_bytes for b in self.buckets)


def mount_point(path: Path) -> Path:
    """The mount point of the filesystem holding ``path``."""
    current = Path(os.path.realpath(path))
    device = os.stat(current).st_dev
    while current.parent != current and os.stat(current.parent).st_dev == device:
        current = current.parent
    return current


def _places(ws: Workspace) -> list[UsageBucket]:
    """The buckets of a workspace; a bucket nested in another (``.parqctl/quarantine`` in
    ``.parqctl``, everything in ``other``) takes its subtree from the outer one."""
    buckets = [UsageBucket(ds.label, ds.kind, ds.path) for ds in ws.datasets()]
    buckets += [
        UsageBucket("quarantine", "quarantine", ws.root / QUARANTINE_DIR),
        UsageBucket("staging", "staging", ws.root / STAGING_DIR),
        UsageBucket("index", "index", ws.root / INDEX_DIR),
        UsageBucket("parqctl state", "state", ws.root / STATE_DIR),
        UsageBucket("run lock", "lock", ws.root / LOCK_DIR),
        UsageBucket("other", "other", ws.root),
    ]
    return buckets


def disk_usage(ws: Workspace, *, refresh: bool = False) -> DiskUsage:
    """The breakdown by bucket and the filesystems the workspace is on.

    Partitioned datasets (hundreds of thousands of directories) come from the
    per-directory cache of ``core.disk.tree_cache``, which checks only what can have
    changed (``refresh``: every directory); everything else is walked afresh.
    """
    from core.disk.tree_cache import tree_totals

    buckets = _places(ws)
    partitioned = [b for b in buckets if b.kind == "partitioned"]
    trees = tree_totals(ws.root, [b.path for b in partitioned], refresh=refresh)
    by_path = {os.path.normpath(b.path): b for b in buckets}
    cached = {os.path.normpath(b.path) for b in partitioned}
    other = buckets[-1]
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[str, UsageBucket]] = [(os.path.normpath(ws.root), other)]
    while stack:
        directory, bucket = stack.pop()
        try:
            _count(os.lstat(directory), bucket, seen)
            with os.scandir(directory) as listing:
                children = list(listing)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in children:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.path not in cached:
                    stack.append((entry.path, by_path.get(entry.path, bucket)))
            else:
                _count(st, bucket, seen)
                bucket.files += 1
    for bucket, total in zip(partitioned, trees.totals(seen), strict=True):
        bucket.bytes, bucket.apparent_bytes, bucket.files = total
    present = [b for b in buckets if b.path.exists() or b is other]
    for bucket in present:
        bucket.mount = mount_point(bucket.path)
    result = DiskUsage(ws.root, present, freshness=trees)
    result.filesystems = _filesystems(present, ws.config.watermarks)
    return result


def _count(st: os.stat_result, bucket: UsageBucket, seen: set[tuple[int, int]]) -> None:
    if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return
        seen.add(key)
    bucket.bytes += st.st_blocks * 512
    bucket.apparent_bytes += st.st_size


def _filesystems(buckets: list[UsageBucket], watermarks: Watermarks) -> list[Filesystem]:
    mounts: dict[Path, list[UsageBucket]] = {}
    for bucket in buckets:
        mounts.setdefault(bucket.mount, []).append(bucket)
    return [
        Filesystem(
            mount,
            disk_status(mount, watermarks),
            tuple(b.label for b in members),
            sum(b.bytes for b in members),
        )
        for mount, members in mounts.items()
    ]


def workspace_filesystems(ws: Workspace) -> list[Filesystem]:
    """The filesystems of the root, ``.parqctl`` and every dataset, from a stat of each:
    cheap enough for every ``health`` run."""
    mounts: dict[Path, list[str]] = {}
    places = [("workspace", ws.root), *((d.label, d.path) for d in ws.datasets())]
    for label, path in places:
        mounts.setdefault(mount_point(path), []).append(label)
    return [
        Filesystem(mount, disk_status(mount, ws.config.watermarks), tuple(labels))
        for mount, labels in mounts.items()
    ]
