"""Open a workspace: its paths, its metadata, and discovery of the bar datasets on disk."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from core.config import Config, load_config
from core.errors import NotAWorkspaceError, ParqctlError
from core.safety import run_lock
from core.store import metadata
from core.store.layout import (
    COLLECTOR_LEGACY_HOME,
    INTERVALS,
    LEGACY_HOMES,
    Venue,
    interval_of_dataset_dir,
    validate_interval,
)

WORKSPACE_ENV = "PARQCTL_WORKSPACE"
STATE_DIR = ".parqctl"
LOCK_DIR = ".run_lock"
TRADES_DIR = "trades"


def resolve_root(explicit: str | os.PathLike[str] | None) -> Path:
    """``--workspace DIR``, else ``$PARQCTL_WORKSPACE``, else the workspace the current
    directory is in (itself or the nearest parent that holds one, as git finds its
    repository), else the current directory itself."""
    chosen = explicit or os.environ.get(WORKSPACE_ENV)
    if chosen:
        return Path(chosen).expanduser().absolute()
    here = Path(os.getcwd()).absolute()
    return next((d for d in (here, *here.parents) if _holds_a_workspace(d)), here)


def _holds_a_workspace(path: Path) -> bool:
    """``path`` holds tickers.json or the collector's bar folders (``stocks_<iv>/`` at the
    root, under ``data/``, ``data/legacy/`` or ``data/<market>/<source>/``): a plain
    ``data/`` folder is too common a name to stop the walk up at."""
    if (path / metadata.TICKERS_FILE).is_file():
        return True
    homes = [path, path / "data", path / "data" / "legacy"]
    homes += [source for market in _subdirs(path / "data") for source in _subdirs(market)]
    return any(interval_of_dataset_dir(d.name) for home in homes for d in _subdirs(home))


def _subdirs(path: Path) -> list[Path]:
    try:
        with os.scandir(path) as entries:
            return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


@dataclass(frozen=True)
class Dataset:
    """One directory of bar (or trade) files.

    ``kind`` is ``legacy`` (one file per ticker), ``partitioned`` (Hive ticker/year/month)
    or ``trades`` (raw trades, read-only). A legacy dataset's ``home`` is the directory
    holding its ``stocks_<iv>`` folder (see ``core.store.layout.LEGACY_HOMES``).
    """

    kind: str
    path: Path
    interval: str | None = None
    venue: Venue | None = None
    home: str | None = None

    @property
    def read_by_collector(self) -> bool:
        """A legacy dataset the collector reads (its own home); the others it never reads."""
        return self.home == COLLECTOR_LEGACY_HOME

    @property
    def label(self) -> str:
        if self.kind == "legacy":
            where = "" if self.read_by_collector else f" in {self.home}/"
            return f"legacy {self.interval}{where}"
        if self.kind == "partitioned":
            return f"{self.venue.id} {self.interval}"
        return f"{self.venue.id} trades"


@dataclass(frozen=True)
class Unreadable:
    """A directory that could not be listed (permissions, I/O error): what it holds is not
    counted, and the caller says so instead of failing."""

    path: Path
    reason: str

    @classmethod
    def of(cls, path: Path, exc: OSError) -> Unreadable:
        return cls(Path(path), exc.strerror or type(exc).__name__)


@dataclass
class GroupUsage:
    """Files and bytes of one ticker (or trade venue) within a dataset."""

    files: int = 0
    bytes: int = 0


@dataclass
class DatasetInventory:
    dataset: Dataset
    groups: dict[str, GroupUsage] = field(default_factory=dict)
    stray_files: list[Path] = field(default_factory=list)
    # Directories (the dataset's own, or below it) that could not be read, with why: their
    # files are not counted.
    unreadable: list[Unreadable] = field(default_factory=list)

    @property
    def files(self) -> int:
        return sum(g.files for g in self.groups.values())

    @property
    def bytes(self) -> int:
        return sum(g.bytes for g in self.groups.values())


class Workspace:
    """A collector workspace on disk. Metadata is loaded on first use and cached."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None) -> Workspace:
        path = resolve_root(root)
        if not path.exists():
            raise NotAWorkspaceError(
                f"workspace {path} does not exist",
                f"pass --workspace DIR or set ${WORKSPACE_ENV}",
            )
        if not path.is_dir():
            raise NotAWorkspaceError(f"workspace {path} is not a directory", "pass a directory")
        if not (path / metadata.TICKERS_FILE).exists() and not (path / "data").is_dir():
            if _holds_a_workspace(path):  # the collector's stocks_<iv>/ folders alone
                return cls(path)
            raise NotAWorkspaceError(
                f"{path} is not a parqctl workspace (no tickers.json, data/ or stocks_<iv>/)",
                f"run it inside one, pass --workspace DIR or set ${WORKSPACE_ENV}; "
                "`parqctl demo DIR` makes one",
            )
        return cls(path)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def lock_dir(self) -> Path:
        return self.root / LOCK_DIR

    @cached_property
    def config(self) -> Config:
        return load_config(self.root)

    @cached_property
    def tickers(self) -> metadata.TickerRegistry:
        return metadata.load_tickers(self.root / metadata.TICKERS_FILE)

    @cached_property
    def intervals(self) -> list[str]:
        return metadata.load_intervals(self.root / metadata.INTERVALS_FILE)

    @cached_property
    def storage_config(self) -> metadata.StorageConfig:
        return metadata.load_storage_config(self.root / metadata.STORAGE_CONFIG_FILE)

    @cached_property
    def migration_plan(self) -> metadata.MigrationPlan | None:
        return metadata.load_migration_plan(self.root / metadata.MIGRATION_PLAN_FILE)

    def require_interval(self, interval: str) -> str:
        """``interval`` if intervals.json lists it or a bar folder holds it; otherwise a
        one-line error naming the intervals the workspace has (a command asked about
        ``5m`` in a workspace without it must not answer with zeros)."""
        validate_interval(interval)
        known = set(self.intervals) | {d.interval for d in self.datasets() if d.interval}
        if interval not in known:
            order = {iv: n for n, iv in enumerate(INTERVALS)}
            have = ", ".join(sorted(known, key=lambda iv: (order.get(iv, len(order)), iv)))
            raise ParqctlError(
                f"interval {interval} is not in this workspace (it has: {have or 'none'})",
                "pick one of those, or add it to intervals.json for the collector first",
            )
        return interval

    def load_all_metadata(self) -> None:
        """Load every metadata file now, so a malformed one is reported up front."""
        _ = self.config, self.tickers, self.intervals, self.storage_config, self.migration_plan

    # Each save first checks that a run lock this process took is still its own.

    def save_tickers(self) -> None:
        run_lock.ensure_still_held(self.root)
        metadata.save(self.root / metadata.TICKERS_FILE, self.tickers)

    def save_storage_config(self) -> None:
        run_lock.ensure_still_held(self.root)
        metadata.save(self.root / metadata.STORAGE_CONFIG_FILE, self.storage_config)
        self.storage_config.exists = True

    def save_migration_plan(self, plan: metadata.MigrationPlan) -> None:
        run_lock.ensure_still_held(self.root)
        metadata.save(self.root / metadata.MIGRATION_PLAN_FILE, plan)
        self.__dict__["migration_plan"] = plan

    def datasets(
        self, unreadable: list[Unreadable] | None = None, links: list[DatasetLink] | None = None
    ) -> list[Dataset]:
        """Every dataset found; directories that cannot be listed are added to
        ``unreadable`` when it is given (and skipped either way), dataset links to
        ``links``."""
        return discover_datasets(self.root, unreadable, links)

    def legacy_homes(
        self, interval: str, unreadable: list[Unreadable] | None = None
    ) -> list[Dataset]:
        """The legacy directories of an interval that exist, the collector's own first.

        A home whose folder cannot be looked into (no search permission on it) is added to
        ``unreadable`` when it is given: whether it holds the interval is unknown.
        """
        found = []
        for home in LEGACY_HOMES:
            path = self.root / home / f"stocks_{interval}"
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                if unreadable is not None:
                    unreadable.append(Unreadable.of(path.parent, exc))
                continue
            if stat.S_ISDIR(st.st_mode) or (
                stat.S_ISLNK(st.st_mode) and _LinkPolicy(self.root, None).follows(path)
            ):
                found.append(Dataset("legacy", path, interval, home=home))
        return found


@dataclass(frozen=True)
class DatasetLink:
    """A dataset directory that is a symbolic link: followed only when it leads inside the
    workspace or into a directory declared in ``[storage] extra_roots``."""

    path: Path
    target: Path
    declared: bool


class _LinkPolicy:
    """Which dataset links discovery follows; the config is read only if a link is met."""

    def __init__(self, root: Path, found: list[DatasetLink] | None) -> None:
        self.root, self.found = root, found
        self._allowed: list[Path] | None = None

    def follows(self, entry: os.DirEntry[str] | Path) -> bool:
        path = Path(entry)
        named = interval_of_dataset_dir(path.name) or path.name == TRADES_DIR
        if not named or not path.is_symlink() or not path.is_dir():
            return False
        if self._allowed is None:
            roots = [self.root, *load_config(self.root).extra_roots]
            self._allowed = [Path(os.path.realpath(r)) for r in roots]
        target = Path(os.path.realpath(path))
        declared = any(target.is_relative_to(r) for r in self._allowed)
        if self.found is not None:
            self.found.append(DatasetLink(path, target, declared))
        return declared


def _subdirs(
    path: Path, unreadable: list[Unreadable] | None = None, links: _LinkPolicy | None = None
) -> list[os.DirEntry[str]]:
    """The subdirectories of ``path`` (links followed only as ``links`` allows), sorted by
    name; none when it is gone, and none (recorded in ``unreadable``) when it cannot be
    listed."""
    try:
        with os.scandir(path) as entries:
            return sorted(
                (
                    e
                    for e in entries
                    if e.is_dir(follow_symlinks=False) or (links is not None and links.follows(e))
                ),
                key=lambda e: e.name,
            )
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        if unreadable is not None and all(u.path != path for u in unreadable):
            unreadable.append(Unreadable.of(path, exc))
        return []


def discover_datasets(
    root: Path,
    unreadable: list[Unreadable] | None = None,
    links: list[DatasetLink] | None = None,
) -> list[Dataset]:
    """Every bar and trade dataset (the legacy homes and ``data/``), from directory names.

    A directory that cannot be listed is skipped, and added to ``unreadable`` if given. A
    dataset directory that is a link is followed only into the workspace or a declared
    extra root; each such link is added to ``links`` if given."""
    data = root / "data"
    found: list[Dataset] = []
    policy = _LinkPolicy(root, links)
    for home in LEGACY_HOMES:
        for entry in _subdirs(root / home, unreadable, policy):
            interval = interval_of_dataset_dir(entry.name)
            if interval:
                found.append(Dataset("legacy", Path(entry.path), interval, home=home))
    for market in _subdirs(data, unreadable):
        if market.name == "legacy" or interval_of_dataset_dir(market.name):
            continue
        for source in _subdirs(Path(market.path), unreadable):
            venue = Venue(market.name.lower(), source.name.lower())
            for child in _subdirs(Path(source.path), unreadable, policy):
                interval = interval_of_dataset_dir(child.name)
                if interval:
                    found.append(Dataset("partitioned", Path(child.path), interval, venue))
                elif child.name == TRADES_DIR:
                    found.append(Dataset("trades", Path(child.path), None, venue))
    return found


def _is_stray(name: str) -> bool:
    """Temp and partial files left by an interrupted writer (ours or the collector's)."""
    return ".tmp" in name or name.endswith(".partial") or ".parqctl-tmp-" in name


def _walk_files(path: Path, unreadable: list[Unreadable]):
    """(directory entry, size) for every regular file below ``path``, without following
    links; a directory that cannot be listed, or a file that cannot be looked at, is added
    to ``unreadable`` (the directory) and skipped."""
    stack = [path]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        size = _size(entry, directory, unreadable)
                        if size is not None:
                            yield entry, size
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            unreadable.append(Unreadable.of(directory, exc))


def _size(entry: os.DirEntry[str], directory: Path, unreadable: list[Unreadable]) -> int | None:
    """The entry's size; None when it vanished, or cannot be looked at (a directory that
    can be listed but not searched: recorded once)."""
    try:
        return entry.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        return None
    except OSError as exc:
        if not any(u.path == directory for u in unreadable):
            unreadable.append(Unreadable.of(directory, exc))
        return None


def inventory(dataset: Dataset) -> DatasetInventory:
    """Tickers (or trade venues) with file counts and bytes, from directory entries only.

    Directories that cannot be read are listed in ``unreadable``; the rest is counted."""
    result = DatasetInventory(dataset)
    if dataset.kind == "legacy":
        try:
            with os.scandir(dataset.path) as entries:
                listed = list(entries)
        except (FileNotFoundError, NotADirectoryError):
            return result
        except OSError as exc:
            result.unreadable.append(Unreadable.of(dataset.path, exc))
            return result
        for entry in listed:
            if not entry.is_file(follow_symlinks=False):
                continue
            if _is_stray(entry.name) or not entry.name.endswith(".parquet"):
                result.stray_files.append(Path(entry.path))
                continue
            size = _size(entry, dataset.path, result.unreadable)
            if size is None:
                continue
            usage = result.groups.setdefault(entry.name[: -len(".parquet")], GroupUsage())
            usage.files += 1
            usage.bytes += size
        return result
    key_prefix = "ticker=" if dataset.kind == "partitioned" else "venue="
    for group_dir in _subdirs(dataset.path, result.unreadable):
        if not group_dir.name.startswith(key_prefix):
            continue
        usage = result.groups.setdefault(group_dir.name[len(key_prefix) :], GroupUsage())
        for entry, size in _walk_files(Path(group_dir.path), result.unreadable):
            if entry.name.endswith(".parquet") and not _is_stray(entry.name):
                usage.files += 1
                usage.bytes += size
            else:
                result.stray_files.append(Path(entry.path))
    return result
