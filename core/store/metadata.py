"""Typed views of the workspace's JSON metadata that keep unknown keys on rewrite.

Each model wraps the parsed JSON (``raw``) and is its only source of truth: accessors read
from it, mutators write into it, and saving dumps it back, so keys and values parqctl does
not know survive a rewrite unchanged and in their original order.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import MetadataError
from core.safety import atomic, untrusted_json
from core.store.layout import Venue

TICKERS_FILE = "tickers.json"
INTERVALS_FILE = "intervals.json"
STORAGE_CONFIG_FILE = "storage_config.json"
MIGRATION_PLAN_FILE = "migration_plan.json"


# The most parqctl reads of one metadata file: tickers.json of thousands of tickers is a
# few MiB. A file beyond this (or one growing while it is read) is refused, not loaded.
MAX_METADATA_BYTES = 256 * 1024 * 1024
_READ_CHUNK = 1024 * 1024


class NotRegularFileError(OSError):
    """The path is a FIFO, a device, a directory or a socket: never read as a file."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(f"{path} is not a regular file ({kind})")
        self.kind = kind


class FileTooLargeError(OSError):
    def __init__(self, path: Path, limit: int) -> None:
        super().__init__(f"{path} is larger than {describe_size(limit)}")
        self.limit = limit


def describe_size(n: int) -> str:
    """``256 MiB``, ``64 KiB``, ``100 bytes``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n:,} bytes"


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages: ``a FIFO``, ``a character device``..."""
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return kind
    return f"file type {stat.S_IFMT(mode):o}"


def read_regular_file(path: Path, limit: int, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes.

    A FIFO, device, directory or socket is refused without blocking and without reading
    (stat before opening, so a device is not even opened; opened with ``O_NONBLOCK`` and
    checked again with ``fstat`` in case it was swapped in between); at most ``limit + 1``
    bytes are read. A symbolic link is followed (to a regular file only) unless
    ``follow_symlinks`` is False, when it is refused as ``a symbolic link``.

    Raises FileNotFoundError, NotRegularFileError, FileTooLargeError or another OSError.
    """
    st = os.stat(path, follow_symlinks=follow_symlinks)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(path, file_kind(st.st_mode))
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_symlinks and exc.errno == errno.ELOOP:
            raise NotRegularFileError(path, "a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(path, file_kind(st.st_mode))
        if st.st_size > limit:
            raise FileTooLargeError(path, limit)
        os.set_blocking(fd, True)
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(_READ_CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise FileTooLargeError(path, limit)
        return b"".join(chunks)
    finally:
        os.close(fd)


def exists(path: Path) -> bool:
    """Whether there is anything at ``path``: a dangling symbolic link counts (it is
    reported, never taken for a missing file)."""
    return os.path.lexists(path)


def read_text_file(path: Path, limit: int, what_to_do: str) -> str:
    """A metadata file's UTF-8 text; every failure is a one-line MetadataError naming it."""
    try:
        data = read_regular_file(path, limit)
    except FileNotFoundError:
        if os.path.islink(path):
            raise MetadataError(
                f"{path} is a symbolic link to {os.readlink(path)}, which is missing",
                "mount or restore its target, or replace the link with the file",
            ) from None
        raise MetadataError(f"{path} not found", "check the workspace path") from None
    except NotRegularFileError as exc:
        raise MetadataError(
            f"cannot read {path}: it is not a regular file ({exc.kind})",
            "replace it with the file it should be; parqctl never reads a FIFO or a device",
        ) from None
    except FileTooLargeError as exc:
        raise MetadataError(
            f"{path} is larger than {describe_size(exc.limit)}: not read", what_to_do
        ) from None
    except OSError as exc:
        raise MetadataError(
            f"cannot read {path}: {exc.strerror or exc}", "check its permissions"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetadataError(f"{path} is not UTF-8 text (byte {exc.start})", what_to_do) from None


def load_json(path: Path, *, limit: int = MAX_METADATA_BYTES) -> Any:
    """Parse a JSON file; errors name the file (and line and column) and say what to do.

    Only a regular file of at most ``limit`` bytes is read (a FIFO or a device never
    blocks or floods parqctl)."""
    text = read_text_file(path, limit, "restore it from a backup")
    try:
        return untrusted_json.loads(text)
    except json.JSONDecodeError as exc:
        raise MetadataError(
            f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            "fix the file by hand or restore it from a backup",
        ) from None
    except RecursionError:
        raise MetadataError(
            f"{path}: JSON nested too deeply to read", "restore it from a backup"
        ) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise MetadataError(
            f"{path}: malformed JSON: {exc}", "fix the file by hand or restore it from a backup"
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


PLAN_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class _Object:
    """A JSON object: the listed keys checked when present, ``each`` every value."""

    keys: dict[str, Any] = field(default_factory=dict)
    each: Any = None
    nullable: bool = False
    expected: str = "an object"


@dataclass(frozen=True)
class _List:
    each: Any = None
    nullable: bool = False
    expected: str = "a list"


@dataclass(frozen=True)
class _Scalar:
    types: tuple[type, ...]
    expected: str
    nullable: bool = True


_COUNT = _Scalar((int,), "a whole number or null")
_TEXT = _Scalar((str,), "text or null")
_NAMES = _List(_Scalar((str,), "text", nullable=False), nullable=True, expected="a list of names")
_RECORD = _Object(nullable=True, expected="an object or null")
_LEGACY_FILE = _Object(
    {"size": _COUNT, "mtime_ns": _COUNT, "rows": _COUNT, "digest": _TEXT},
    nullable=True,
    expected="an object or null",
)
# parqctl's records (the ``parqctl`` key of an interval and of a venue), as far as the
# commands read them; whatever else they hold is kept and not looked at.
_TICKER_RECORD = _Object(
    {
        "state": _TEXT,
        "legacy": _LEGACY_FILE,
        "rows": _COUNT,
        "partition_rows": _COUNT,
        "own_files": _TEXT,
        "verify": _Object({"legacy": _LEGACY_FILE}, nullable=True, expected="an object or null"),
    }
)
_ACTIVATION = _Object(
    {
        "block": _RECORD,
        "blocks_set": _NAMES,
        "replaced": _Object(each=_Object(), nullable=True, expected="an object or null"),
        "created_entries": _NAMES,
        "unregistered": _NAMES,
        "without_legacy": _NAMES,
    },
    nullable=True,
    expected="an object or null",
)
_INTERVAL_OURS = _Object(
    {
        "tickers": _Object(each=_TICKER_RECORD),
        "activation": _ACTIVATION,
        "activating": _ACTIVATION,
        "verify": _RECORD,
        "output_ratio": _RECORD,
        "legacy_deleting": _Object({"files": _NAMES}, nullable=True, expected="an object or null"),
        "legacy_deleted": _Object(
            {"deleted": _NAMES, "failed": _RECORD}, nullable=True, expected="an object or null"
        ),
    }
)
# The collector's fields: its own parser (yf_parqed.common.migration_plan) requires the
# objects; parqctl also reads them when null, as it does null counters.
_INTERVAL = _Object(
    {
        "legacy_path": _TEXT,
        "partition_path": _TEXT,
        "totals": _Object(
            {"legacy_rows": _COUNT, "partition_rows": _COUNT},
            nullable=True,
            expected="an object or null",
        ),
        "jobs": _Object(
            {"total": _COUNT, "completed": _COUNT}, nullable=True, expected="an object or null"
        ),
        "verification": _Object(
            {"method": _TEXT, "verified_at": _TEXT}, nullable=True, expected="an object or null"
        ),
        "parqctl": _INTERVAL_OURS,
    }
)
_VENUE = _Object(
    {
        "id": _Scalar((str,), "text", nullable=False),
        "intervals": _Object(each=_INTERVAL),
        "parqctl": _Object({"switch_before": _RECORD}, nullable=True, expected="an object or null"),
    }
)
_PLAN = _Object({"venues": _List(_VENUE)}, expected="an object")


def key_path(parent: str, key: str) -> str:
    """``parent.key`` for messages; a key with control characters is shown escaped."""
    shown = key if key.isprintable() and key else json.dumps(key)
    return f"{parent}.{shown}" if parent else shown


def _check_shape(path: Path, value: Any, where: str, spec: Any) -> None:
    """Refuse, naming the key path (``venues[0].intervals.1d.jobs``), a value whose type
    parqctl's commands would trip over. The recursion is as deep as the schema, never
    as deep as the data."""
    if value is None and spec.nullable:
        return
    if isinstance(spec, _Scalar):
        ok = isinstance(value, spec.types) and not isinstance(value, bool)
        _require(ok, path, where, spec.expected)
    elif isinstance(spec, _List):
        _require(isinstance(value, list), path, where, spec.expected)
        if spec.each is not None:
            for i, item in enumerate(value):
                _check_shape(path, item, f"{where}[{i}]", spec.each)
    else:
        _require(isinstance(value, dict), path, where or "the top level", spec.expected)
        for key, sub in spec.keys.items():
            if key in value:
                _check_shape(path, value[key], key_path(where, key), sub)
        if spec.each is not None:
            for key, item in value.items():
                _check_shape(path, item, key_path(where, key), spec.each)


@dataclass
class MigrationPlan:
    """migration_plan.json in the collector's schema (schema_version 1)."""

    raw: dict[str, Any]

    @classmethod
    def from_json(cls, path: Path, data: Any) -> MigrationPlan:
        """The plan, its shape checked once here so that no command trips over a wrong
        type later: each refusal is one line naming the key path. A plan of another
        schema version is refused (and so never rewritten); one without the key is read
        as version 1."""
        _require(isinstance(data, dict), path, "the top level", "an object")
        version = data.get("schema_version", PLAN_SCHEMA_VERSION)
        if type(version) is not int or version != PLAN_SCHEMA_VERSION:
            shown = json.dumps(version)
            shown = shown if len(shown) <= 40 else shown[:40] + "..."
            raise MetadataError(
                f"{path}: unknown schema_version {shown}: this parqctl reads "
                f"version {PLAN_SCHEMA_VERSION}",
                "use the parqctl that wrote it, or move the plan aside; it was not changed",
            )
        _check_shape(path, data, "", _PLAN)
        plan = cls(data)
        for venue, interval, record in plan.interval_states(with_index=True):
            ours = record.get("parqctl") or {}
            for ticker, entry in (ours.get("tickers") or {}).items():
                if entry.get("state") != "done":
                    continue
                tickers = key_path(key_path(f"{venue}.intervals", interval), "parqctl.tickers")
                where = key_path(tickers, ticker)
                legacy = entry.get("legacy")
                _require(
                    isinstance(legacy, dict) and type(legacy.get("rows")) is int,
                    path,
                    f"{where}.legacy",
                    'an object with the legacy file\'s "rows" (the ticker is "done")',
                )
                _require(
                    type(entry.get("partition_rows", 0)) is int,
                    path,
                    f"{where}.partition_rows",
                    'a whole number (the ticker is "done")',
                )
        return plan

    def interval_states(self, *, with_index: bool = False) -> list[tuple[str, str, dict[str, Any]]]:
        """(venue id, interval, that interval's raw record) for every interval in the plan;
        ``with_index``: ``venues[i]`` in place of the venue id (for messages)."""
        return [
            (f"venues[{i}]" if with_index else str(venue.get("id", "?")), interval, record)
            for i, venue in enumerate(self.raw.get("venues", []))
            for interval, record in venue.get("intervals", {}).items()
        ]


def load_tickers(path: Path) -> TickerRegistry:
    return TickerRegistry.from_json(path, load_json(path)) if exists(path) else TickerRegistry()


def load_intervals(path: Path) -> list[str]:
    """intervals.json's names, each once, in their first order (a file repeating one
    name thousands of times must not make every command repeat its work)."""
    if not exists(path):
        return []
    data = load_json(path)
    _require(
        isinstance(data, list) and all(isinstance(x, str) for x in data),
        path,
        "the top level",
        'a list of interval names such as ["1d", "1h"]',
    )
    return list(dict.fromkeys(data))


def load_storage_config(path: Path) -> StorageConfig:
    if not exists(path):
        return StorageConfig(exists=False)
    return StorageConfig.from_json(path, load_json(path))


def load_migration_plan(path: Path) -> MigrationPlan | None:
    return MigrationPlan.from_json(path, load_json(path)) if exists(path) else None


def save(path: Path, model: TickerRegistry | StorageConfig | MigrationPlan | list[str]) -> None:
    """Atomically rewrite a metadata file from its model (unknown keys included)."""
    atomic.write_json(path, model if isinstance(model, list) else model.raw)
