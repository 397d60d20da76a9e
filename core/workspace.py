"""Open a workspace: its paths, its metadata, and discovery of the bar datasets on disk."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from core import metadata, run_lock
from core.config import Config, load_config
from core.errors import WorkspaceError
from core.layout import COLLECTOR_LEGACY_HOME, LEGACY_HOMES, Venue, interval_of_dataset_dir

WORKSPACE_ENV = "PARQCTL_WORKSPACE"
STATE_DIR = ".parqctl"
LOCK_DIR = ".run_lock"
TRADES_DIR = "trades"


def resolve_root(explicit: str | os.PathLike[str] | None) -> Path:
    """``--workspace DIR``, else ``$PARQCTL_WORKSPACE``, else the current directory."""
    chosen = explicit or os.environ.get(WORKSPACE_ENV) or os.getcwd()
    return Path(chosen).expanduser().absolute()


@dataclass(frozen=True)
class Dataset:
    """One directory of bar (or trade) files.

    ``kind`` is ``legacy`` (one file per ticker), ``partitioned`` (Hive ticker/year/month)
    or ``trades`` (raw trades, read-only). A legacy dataset's ``home`` is the directory
    holding its ``stocks_<iv>`` folder (see ``core.layout.LEGACY_HOMES``).
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
            raise WorkspaceError(
                f"workspace {path} does not exist",
                f"pass --workspace DIR or set ${WORKSPACE_ENV}",
            )
        if not path.is_dir():
            raise WorkspaceError(f"workspace {path} is not a directory", "pass a directory")
        if not (path / metadata.TICKERS_FILE).exists() and not (path / "data").is_dir():
            raise WorkspaceError(
                f"{path} is not a parqctl workspace (no tickers.json and no data/)",
                f"pass --workspace DIR or set ${WORKSPACE_ENV}; `parqctl demo DIR` makes one",
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

    def datasets(self) -> list[Dataset]:
        return discover_datasets(self.root)

    def legacy_homes(self, interval: str) -> list[Dataset]:
        """The legacy directories of an interval that exist, the collector's own first."""
        found = []
        for home in LEGACY_HOMES:
            path = self.root / home / f"stocks_{interval}"
            if path.is_dir() and not path.is_symlink():
                found.append(Dataset("legacy", path, interval, home=home))
        return found


def _subdirs(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return sorted(
                (e for e in entries if e.is_dir(follow_symlinks=False)), key=lambda e: e.name
            )
    except (FileNotFoundError, NotADirectoryError):
        return []


def discover_datasets(root: Path) -> list[Dataset]:
    """Every bar and trade dataset (the legacy homes and ``data/``), from directory names."""
    data = root / "data"
    found: list[Dataset] = []
    for home in LEGACY_HOMES:
        for entry in _subdirs(root / home):
            interval = interval_of_dataset_dir(entry.name)
            if interval:
                found.append(Dataset("legacy", Path(entry.path), interval, home=home))
    for market in _subdirs(data):
        if market.name == "legacy" or interval_of_dataset_dir(market.name):
            continue
        for source in _subdirs(Path(market.path)):
            venue = Venue(market.name.lower(), source.name.lower())
            for child in _subdirs(Path(source.path)):
                interval = interval_of_dataset_dir(child.name)
                if interval:
                    found.append(Dataset("partitioned", Path(child.path), interval, venue))
                elif child.name == TRADES_DIR:
                    found.append(Dataset("trades", Path(child.path), None, venue))
    return found


def _is_stray(name: str) -> bool:
    """Temp and partial files left by an interrupted writer (ours or the collector's)."""
    return ".tmp" in name or name.endswith(".partial") or ".parqctl-tmp-" in name


def _walk_files(path: Path):
    """(directory entry) for every regular file below ``path``, without following links."""
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        yield entry
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue


def inventory(dataset: Dataset) -> DatasetInventory:
    """Tickers (or trade venues) with file counts and bytes, from directory entries only."""
    result = DatasetInventory(dataset)
    if dataset.kind == "legacy":
        with os.scandir(dataset.path) as entries:
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):
                    continue
                if _is_stray(entry.name) or not entry.name.endswith(".parquet"):
                    result.stray_files.append(Path(entry.path))
                    continue
                usage = result.groups.setdefault(entry.name[: -len(".parquet")], GroupUsage())
                usage.files += 1
                usage.bytes += entry.stat(follow_symlinks=False).st_size
        return result
    key_prefix = "ticker=" if dataset.kind == "partitioned" else "venue="
    for group_dir in _subdirs(dataset.path):
        if not group_dir.name.startswith(key_prefix):
            continue
        usage = result.groups.setdefault(group_dir.name[len(key_prefix) :], GroupUsage())
        for entry in _walk_files(Path(group_dir.path)):
            if entry.name.endswith(".parquet") and not _is_stray(entry.name):
                usage.files += 1
                usage.bytes += entry.stat(follow_symlinks=False).st_size
            else:
                result.stray_files.append(Path(entry.path))
    return result
