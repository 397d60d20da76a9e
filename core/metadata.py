"""Typed views of the workspace's JSON metadata that keep unknown keys on rewrite.

Each model wraps the parsed JSON (``raw``) and is its only source of truth: accessors read
from it, mutators write into it, and saving dumps it back, so keys and values parqctl does
not know survive a rewrite unchanged and in their original order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import atomic
from core.errors import MetadataError
from core.layout import Venue

TICKERS_FILE = "tickers.json"
INTERVALS_FILE = "intervals.json"
STORAGE_CONFIG_FILE = "storage_config.json"
MIGRATION_PLAN_FILE = "migration_plan.json"


def load_json(path: Path) -> Any:
    """Parse a JSON file; errors name the file (and line and column) and say what to do."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MetadataError(f"{path} not found", "check the workspace path") from None
    except UnicodeDecodeError as exc:
        raise MetadataError(
            f"{path} is not UTF-8 text (byte {exc.start})", "restore it from a backup"
        ) from None
    except OSError as exc:
        raise MetadataError(
            f"cannot read {path}: {exc.strerror}", "check its permissions"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MetadataError(
            f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            "fix the file by hand or restore it from a backup",
        ) from None


def _require(condition: bool, path: Path, where: str, expected: str) -> None:
    if not condition:
        raise MetadataError(
            f"{path}: {where} should be {expected}",
            "fix the file by hand or restore it from a backup",
        )


@dataclass(frozen=True)
class StorageBlock:
    """The per-interval ``storage`` block that routes the collector's reads and writes."""

    mode: str
    venue: Venue | None
    root: str
    dataset: str
    verified_at: str | None

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> StorageBlock:
        market, source = raw.get("market"), raw.get("source")
        venue = None
        if isinstance(market, str) and isinstance(source, str) and market and source:
            venue = Venue(market.lower(), source.lower())
        elif isinstance(raw.get("venue"), str):
            venue = Venue.parse(raw["venue"])
        return cls(
            mode=str(raw.get("mode", "legacy")),
            venue=venue,
            root=str(raw.get("root", "data")),
            dataset=str(raw.get("dataset", "stocks")),
            verified_at=raw.get("verified_at"),
        )

    @staticmethod
    def partitioned_raw(venue: Venue, verified_at: str, root: str = "data") -> dict[str, Any]:
        """The block the collector writes for a partitioned interval."""
        return {
            "mode": "partitioned",
            "venue": venue.id,
            "market": venue.market,
            "source": venue.source,
            "dataset": "stocks",
            "root": root,
            "verified_at": verified_at,
        }


@dataclass
class TickerEntry:
    name: str
    raw: dict[str, Any]

    @property
    def status(self) -> str | None:
        return self.raw.get("status")

    def interval_names(self) -> list[str]:
        return list(self.raw.get("intervals", {}))

    def interval(self, interval: str) -> dict[str, Any] | None:
        return self.raw.get("intervals", {}).get(interval)

    def storage(self, interval: str) -> StorageBlock | None:
        entry = self.interval(interval)
        block = entry.get("storage") if entry else None
        return StorageBlock.from_raw(block) if isinstance(block, dict) else None

    def set_storage(self, interval: str, block: dict[str, Any]) -> None:
        self.raw.setdefault("intervals", {}).setdefault(interval, {})["storage"] = block

    def clear_storage(self, interval: str) -> None:
        entry = self.interval(interval)
        if entry is not None:
            entry.pop("storage", None)


@dataclass
class TickerRegistry:
    """tickers.json: ticker name -> entry."""

    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, path: Path, data: Any) -> TickerRegistry:
        _require(isinstance(data, dict), path, "the top level", "an object of tickers")
        for name, entry in data.items():
            _require(isinstance(entry, dict), path, f"entry {name!r}", "an object")
            intervals = entry.get("intervals", {})
            _require(isinstance(intervals, dict), path, f"{name!r}.intervals", "an object")
            for iv, iv_entry in intervals.items():
                _require(isinstance(iv_entry, dict), path, f"{name!r}.intervals.{iv}", "an object")
                storage = iv_entry.get("storage")
                _require(
                    storage is None or isinstance(storage, dict),
                    path,
                    f"{name!r}.intervals.{iv}.storage",
                    "an object",
                )
        return cls(data)

    def __len__(self) -> int:
        return len(self.raw)

    def __contains__(self, name: object) -> bool:
        return name in self.raw

    def names(self) -> list[str]:
        return list(self.raw)

    def get(self, name: str) -> TickerEntry | None:
        entry = self.raw.get(name)
        return TickerEntry(name, entry) if entry is not None else None

    def entries(self) -> list[TickerEntry]:
        return [TickerEntry(name, entry) for name, entry in self.raw.items()]


@dataclass
class StorageConfig:
    """storage_config.json: the global partitioned switch and its overrides.

    ``exists`` is False when the workspace has no such file (``raw`` is then the model
    parqctl would write, with the switch off).
    """

    raw: dict[str, Any] = field(
        default_factory=lambda: {"partitioned": False, "markets": {}, "sources": {}}
    )
    exists: bool = True

    @classmethod
    def from_json(cls, path: Path, data: Any) -> StorageConfig:
        _require(isinstance(data, dict), path, "the top level", "an object")
        _require(
            isinstance(data.get("partitioned", False), bool), path, "partitioned", "true or false"
        )
        for key in ("markets", "sources"):
            value = data.get(key, {})
            _require(isinstance(value, dict), path, key, "an object")
        return cls(data)

    def is_partitioned(self, venue: Venue) -> bool:
        """The most specific switch wins: source, then market, then the global flag."""
        sources = self.raw.get("sources") or {}
        if venue.config_key in sources:
            return bool(sources[venue.config_key])
        markets = self.raw.get("markets") or {}
        if venue.market in markets:
            return bool(markets[venue.market])
        return bool(self.raw.get("partitioned", False))

    @property
    def collector_partitions_unblocked(self) -> bool:
        """Whether the collector's updater puts a ticker without a storage block in the
        partitioned layout (us/yahoo). It reads only the global switch, not ``markets`` or
        ``sources``, and without the file it defaults to partitioned (new installations)."""
        return not self.exists or bool(self.raw.get("partitioned", False))

    def set_source(self, venue: Venue, partitioned: bool) -> None:
        self.raw.setdefault("sources", {})[venue.config_key] = partitioned


@dataclass
class MigrationPlan:
    """migration_plan.json in the collector's schema (schema_version 1)."""

    raw: dict[str, Any]

    @classmethod
    def from_json(cls, path: Path, data: Any) -> MigrationPlan:
        _require(isinstance(data, dict), path, "the top level", "an object")
        venues = data.get("venues", [])
        _require(isinstance(venues, list), path, "venues", "a list")
        for i, venue in enumerate(venues):
            _require(isinstance(venue, dict), path, f"venues[{i}]", "an object")
            _require(
                isinstance(venue.get("intervals", {}), dict),
                path,
                f"venues[{i}].intervals",
                "an object",
            )
        return cls(data)

    def interval_states(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(venue id, interval, that interval's raw record) for every interval in the plan."""
        return [
            (str(venue.get("id", "?")), interval, record)
            for venue in self.raw.get("venues", [])
            for interval, record in venue.get("intervals", {}).items()
        ]


def load_tickers(path: Path) -> TickerRegistry:
    return TickerRegistry.from_json(path, load_json(path)) if path.exists() else TickerRegistry()


def load_intervals(path: Path) -> list[str]:
    if not path.exists():
        return []
    data = load_json(path)
    _require(
        isinstance(data, list) and all(isinstance(x, str) for x in data),
        path,
        "the top level",
        'a list of interval names such as ["1d", "1h"]',
    )
    return data


def load_storage_config(path: Path) -> StorageConfig:
    if not path.exists():
        return StorageConfig(exists=False)
    return StorageConfig.from_json(path, load_json(path))


def load_migration_plan(path: Path) -> MigrationPlan | None:
    return MigrationPlan.from_json(path, load_json(path)) if path.exists() else None


def save(path: Path, model: TickerRegistry | StorageConfig | MigrationPlan | list[str]) -> None:
    """Atomically rewrite a metadata file from its model (unknown keys included)."""
    atomic.write_json(path, model if isinstance(model, list) else model.raw)
