"""Per-directory byte totals of the partitioned datasets, kept between runs so ``disk``
need not stat every file (a migrated 5,000-ticker store holds 740,000 files, each in its
own month directory).

One row per directory: its parent, name, ``st_mtime_ns`` and inode, and the bytes of the
directory itself plus the files directly in it (allocated and apparent, as ``du``
counts), and how many files. Files with more than one hard link are kept apart, by
(device, inode), so each is counted once however many names it has. Stored as NumPy
arrays in ``.parqctl/disk_tree.npy``: a cache, written atomically, rebuilt by a full walk
when missing, torn, or made for other datasets.

A directory's mtime changes whenever an entry is created, removed or renamed in it, which
is how every writer here writes (temp file + rename). A directory whose mtime and inode
are unchanged is taken from the cache; one that changed is listed again, its files
stat-ed, its new subdirectories walked and its removed ones dropped.

Checking a directory is one ``lstat``; checking all of them (800,000) costs seconds, so:

- every call checks each dataset and ticker directory (a new or removed ticker or year)
  and the year and month directories from the previous calendar month (UTC) on: the
  months the collector writes;
- every directory is checked with ``refresh``, when ``.parqctl/audit.jsonl`` changed since
  the last full check (every parqctl command that writes bars records itself there:
  migration, backfill, fetch, CSV import, quarantine), and when the last full check is
  older than ``FULL_CHECK_EVERY_S``. Only older months changed by another program wait
  for one of these.
"""

from __future__ import annotations

import io
import json
import os
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core.safety import atomic, untrusted_json
from core.store.workspace import STATE_DIR

CACHE_FILE = Path(STATE_DIR) / "disk_tree.npy"
AUDIT_FILE = Path(STATE_DIR) / "audit.jsonl"
VERSION = 1
FULL_CHECK_EVERY_S = 24 * 3600.0
ALWAYS = np.iinfo(np.int32).max  # the heat of a directory checked on every call
REMOVED = -2  # the parent of a directory found gone (dropped when the cache is saved)
_DATASET, _TICKER, _YEAR, _MONTH, _OTHER = range(5)
_COLUMNS = {
    "parent": np.int32,
    "mtime": np.int64,
    "ino": np.int64,
    "bytes": np.int64,
    "apparent": np.int64,
    "files": np.int32,
    "kind": np.int8,
    "heat": np.int32,
    "dataset": np.int16,
}
_LINK_COLUMNS = ("dir", "dev", "inode", "bytes", "apparent")


@dataclass
class TreeTotals:
    """The datasets' totals as the cache has them now, and how fresh they are."""

    checked: str  # "full walk" (no usable cache), "all directories", "recent months"
    directories_checked: int
    directories_rescanned: int
    all_checked_at: float  # when every directory was last checked (Unix time)
    cache_note: str  # why the cache was not written, if it was not
    own: list[tuple[int, int, int]]  # per dataset: bytes, apparent, files (single links)
    links: dict[str, np.ndarray]  # multiply linked files, with their dataset in "dir"

    @property
    def all_checked_iso(self) -> str:
        return datetime.fromtimestamp(self.all_checked_at, UTC).isoformat(timespec="seconds")

    def totals(self, seen: set[tuple[int, int]]) -> list[tuple[int, int, int]]:
        """(bytes, apparent, files) per dataset; a multiply linked inode counts once, and
        not at all when ``seen`` (counted elsewhere already) holds it."""
        links = self.links
        if not len(links["dir"]):
            return list(self.own)
        if (links["dev"] == links["dev"][0]).all():  # one filesystem: the inode alone
            _, first = np.unique(links["inode"], return_index=True)
        else:
            key = np.stack([links["dev"], links["inode"]], axis=1)
            _, first = np.unique(key, axis=0, return_index=True)
        if seen:
            inodes = np.array([ino for _, ino in seen], np.int64)
            maybe = first[np.isin(links["inode"][first], inodes)].tolist()
            counted = [i for i in maybe if (int(links["dev"][i]), int(links["inode"][i])) in seen]
            first = first[~np.isin(first, counted)]
        owner = links["dir"][first]
        extra = [
            np.bincount(owner, links[c][first], minlength=len(self.own)).astype(np.int64)
            for c in ("bytes", "apparent")
        ]
        return [
            (b + int(extra[0][n]), a + int(extra[1][n]), f) for n, (b, a, f) in enumerate(self.own)
        ]


@dataclass
class _Tree:
    rows: dict[str, np.ndarray]
    names: list[str]
    links: dict[str, np.ndarray]  # "dir" is the row holding the name
    meta: dict
    new_rows: list[tuple] = field(default_factory=list)  # appended this run, in _COLUMNS order
    new_names: list[str] = field(default_factory=list)
    new_links: list[tuple] = field(default_factory=list)
    relisted: set[int] = field(default_factory=set)  # rows whose old links are superseded

    @property
    def size(self) -> int:
        return len(self.names) + len(self.new_names)

    def value(self, i: int, column: str) -> int:
        if i < len(self.names):
            return int(self.rows[column][i])
        return self.new_rows[i - len(self.names)][list(_COLUMNS).index(column)]


def tree_totals(
    root: Path, datasets: list[Path], *, refresh: bool = False, now: float | None = None
) -> TreeTotals:
    """The partitioned datasets' totals, from the cache where it is still valid."""
    now = time.time() if now is None else now
    spec = [os.path.normpath(p) for p in datasets]
    audit = _audit_signature(root)
    tree = _load(root, spec)
    if tree is None:
        tree = _Tree(_empty_rows(), [], _empty_links(), {"version": VERSION, "spec": spec})
        checked = "full walk"
    elif refresh or tree.meta["audit"] != audit or now - tree.meta["all_at"] > FULL_CHECK_EVERY_S:
        checked = "all directories"
    else:
        checked = "recent months"
    if checked == "full walk":
        for number, path in enumerate(spec):
            _walk_new(tree, -1, path, number)
        counts = (tree.size, tree.size)
    else:
        counts = _check(tree, checked == "all directories", _previous_month(now))
    if checked != "recent months":
        tree.meta["all_at"], tree.meta["audit"] = now, audit
    rows, names, links = _compacted(tree)
    note = ""
    if counts[1] or checked != "recent months":
        note = _save(root, tree.meta, rows, names, links) or ""
    own = [
        tuple(int(x) for x in sums)
        for sums in zip(
            *(np.bincount(rows["dataset"], rows[c], minlength=len(spec)).astype(np.int64)
              for c in ("bytes", "apparent", "files")),
            strict=True,
        )
    ]  # fmt: skip
    links = {**links, "dir": rows["dataset"][links["dir"]]}
    return TreeTotals(checked, *counts, tree.meta["all_at"], note, own, links)


def _previous_month(now: float) -> int:
    today = datetime.fromtimestamp(now, UTC)
    return today.year * 12 + today.month - 2


def _audit_signature(root: Path) -> list[int]:
    try:
        st = os.stat(root / AUDIT_FILE)
    except OSError:
        return [0, 0]
    return [st.st_size, st.st_mtime_ns]


def _empty_rows() -> dict[str, np.ndarray]:
    return {c: np.zeros(0, t) for c, t in _COLUMNS.items()}


def _empty_links() -> dict[str, np.ndarray]:
    return {c: np.zeros(0, np.int64) for c in _LINK_COLUMNS}


def _load(root: Path, spec: list[str]) -> _Tree | None:
    try:
        content = atomic.read_state_file(root, CACHE_FILE)
        if content is None:
            return None
        stream = io.BytesIO(content)
        meta = untrusted_json.loads(bytes(np.load(stream, allow_pickle=False)).decode("utf-8"))
        if meta.get("version") != VERSION or meta.get("spec") != spec:
            return None
        names = bytes(np.load(stream, allow_pickle=False)).decode("utf-8", "surrogateescape")
        rows = {
            c: np.load(stream, allow_pickle=False).astype(t, copy=False)
            for c, t in _COLUMNS.items()
        }
        links = {c: np.load(stream, allow_pickle=False) for c in _LINK_COLUMNS}
    except (OSError, ValueError, KeyError, EOFError, atomic.UnsafeLinkError):
        return None
    names = names.split("\0") if names else []
    if any(len(v) != len(names) for v in rows.values()) or not {"all_at", "audit"} <= meta.keys():
        return None
    return _Tree(rows, names, links, meta)


def _save(root: Path, meta: dict, rows: dict, names: list[str], links: dict) -> str | None:
    """The meta JSON, the names, then each column: plain ``.npy`` arrays one after the
    other (no zip: nothing to decompress or checksum on every load)."""
    buffer = io.BytesIO()
    for array in (
        np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8),
        np.frombuffer("\0".join(names).encode("utf-8", "surrogateescape"), np.uint8),
        *rows.values(),
        *links.values(),
    ):
        np.save(buffer, array, allow_pickle=False)
    try:
        path = atomic.confined(root, CACHE_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        # No fsync: a cache; a torn or lost file is detected on load and rebuilt.
        with atomic.atomic_path(path, durable=False) as tmp:
            tmp.write_bytes(buffer.getbuffer())
    except (OSError, atomic.UnsafeLinkError) as exc:
        return f"disk usage cache not written: {getattr(exc, 'strerror', None) or exc}"
    return None


def _compacted(tree: _Tree) -> tuple[dict, list[str], dict]:
    """Rows and links with this run's additions, without removed directories, renumbered."""
    rows, names, links = tree.rows, tree.names, tree.links
    if tree.new_rows:
        added = list(zip(*tree.new_rows, strict=True))
        rows = {
            c: np.concatenate([rows[c], np.array(added[n], t)])
            for n, (c, t) in enumerate(_COLUMNS.items())
        }
        names = names + tree.new_names
    keep_link = np.ones(len(links["dir"]), bool)
    if tree.relisted:
        keep_link &= ~np.isin(links["dir"], list(tree.relisted))
    if tree.new_links:
        added = list(zip(*tree.new_links, strict=True))
        links = {
            c: np.concatenate([links[c][keep_link], np.array(added[n], np.int64)])
            for n, c in enumerate(_LINK_COLUMNS)
        }
    else:
        links = {c: v[keep_link] for c, v in links.items()}
    alive = rows["parent"] != REMOVED
    if alive.all():
        return rows, names, links
    number = np.cumsum(alive) - 1
    rows = {c: v[alive] for c, v in rows.items()}
    parent = rows["parent"]
    rows["parent"] = np.where(parent < 0, -1, number[np.maximum(parent, 0)]).astype(np.int32)
    names = [n for n, keep in zip(names, alive.tolist(), strict=True) if keep]
    keep_link = alive[links["dir"]]
    links = {c: v[keep_link] for c, v in links.items()}
    links["dir"] = number[links["dir"]]
    return rows, names, links


def _check(tree: _Tree, full: bool, hot_from: int) -> tuple[int, int]:
    """Check the directories due (all, or the recent ones); rescan those that changed.
    Returns (checked, rescanned)."""
    rows, names = tree.rows, tree.names
    due = np.arange(len(names)) if full else np.flatnonzero(rows["heat"] >= hot_from)
    paths: dict[int, str] = {}

    def path_of(i: int) -> str:
        known = paths.get(i)
        if known is None:
            parent = int(rows["parent"][i])
            known = names[i] if parent < 0 else f"{path_of(parent)}/{names[i]}"
            paths[i] = known
        return known

    children = _Children(rows["parent"])
    rescanned = 0
    for i in due.tolist():
        if rows["parent"][i] == REMOVED:  # dropped with its parent during this check
            continue
        path = path_of(i)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            _drop(tree, children, i)
            continue
        if not stat.S_ISDIR(st.st_mode):
            _drop(tree, children, i)
            continue
        if st.st_mtime_ns == rows["mtime"][i] and st.st_ino == rows["ino"][i]:
            continue
        if st.st_ino != rows["ino"][i]:  # another directory renamed into its place
            for child in children.of(i):
                _drop(tree, children, child)
        rescanned += 1
        own, subdirs = _list(tree, i, path, st)
        rows["mtime"][i], rows["ino"][i] = st.st_mtime_ns, st.st_ino
        rows["bytes"][i], rows["apparent"][i], rows["files"][i] = own
        tree.relisted.add(i)
        known = {names[c]: c for c in children.of(i) if rows["parent"][c] != REMOVED}
        for name, child in known.items():
            if name not in subdirs:
                _drop(tree, children, child)
        for name in subdirs:
            if name not in known:
                rescanned += _walk_new(tree, i, f"{path}/{name}", int(rows["dataset"][i]))
    return len(due), rescanned


class _Children:
    """The rows under each row, from the parent column (sorted on first use)."""

    def __init__(self, parent: np.ndarray) -> None:
        self.parent = parent
        self.order: np.ndarray | None = None
        self.sorted = parent

    def of(self, i: int) -> list[int]:
        if self.order is None:
            self.order = np.argsort(self.parent, kind="stable")
            self.sorted = self.parent[self.order]
        lo, hi = np.searchsorted(self.sorted, [i, i + 1])
        return self.order[lo:hi].tolist()


def _drop(tree: _Tree, children: _Children, i: int) -> None:
    """Mark a directory and everything below it removed."""
    stack = [i]
    while stack:
        row = stack.pop()
        stack += children.of(row)
        tree.rows["parent"][row] = REMOVED


def _list(tree: _Tree, i: int, path: str, st: os.stat_result) -> tuple[tuple, set[str]]:
    """A directory's own bytes and files (its multiply linked files go to ``new_links``)
    and its subdirectories' names."""
    allocated, apparent, files = st.st_blocks * 512, st.st_size, 0
    subdirs = set()
    try:
        with os.scandir(path) as listing:
            entries = list(listing)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        entries = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                subdirs.add(entry.name)
                continue
            est = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        files += 1
        if est.st_nlink > 1:
            tree.new_links.append((i, est.st_dev, est.st_ino, est.st_blocks * 512, est.st_size))
        else:
            allocated += est.st_blocks * 512
            apparent += est.st_size
    return (allocated, apparent, files), subdirs


def _walk_new(tree: _Tree, parent: int, path: str, dataset: int) -> int:
    """Add a directory not in the cache and everything below it; returns rows added."""
    added = 0
    stack = [(parent, path)]
    while stack:
        up, here = stack.pop()
        try:
            st = os.lstat(here)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        name = here if up < 0 else os.path.basename(here)
        kind, heat = _classify(tree, up, name)
        index = tree.size
        tree.new_names.append(name)
        tree.new_rows.append(())  # reserved: its children refer to this index
        own, subdirs = _list(tree, index, here, st)
        tree.new_rows[-1] = (up, st.st_mtime_ns, st.st_ino, *own, kind, heat, dataset)
        added += 1
        stack += [(index, f"{here}/{sub}") for sub in sorted(subdirs)]
    return added


def _classify(tree: _Tree, parent: int, name: str) -> tuple[int, int]:
    """(kind, heat) of a new directory, from its parent's and its own name. A year's heat
    is its December, a month's itself (as ``year * 12 + month - 1``); others: ALWAYS."""
    if parent < 0:
        return _DATASET, ALWAYS
    up_kind = tree.value(parent, "kind")
    if up_kind == _DATASET and name.startswith("ticker="):
        return _TICKER, ALWAYS
    if up_kind == _TICKER and name.startswith("year=") and name[5:].isdigit():
        return _YEAR, int(name[5:]) * 12 + 11
    if up_kind == _YEAR and name.startswith("month=") and name[6:].isdigit():
        month = int(name[6:])
        if 1 <= month <= 12:
            return _MONTH, tree.value(parent, "heat") - 11 + month - 1
    return _OTHER, ALWAYS
